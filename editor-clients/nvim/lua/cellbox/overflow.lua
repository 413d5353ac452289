--- Results that would fall below the window. Virtual lines under a block
--- near the window's bottom are cut off by it: a streaming block showed
--- only its first line. When a result's lines do not all fit between its
--- block's end and the bottom of the window showing it, their last lines
--- are shown in a floating window at the window's bottom, over the inline
--- lines that cannot be seen (or, when too few can, over the last lines of
--- text, or at the window's top when that would hide the cursor's line),
--- as molten shows output in floats. It stays while the block runs and, once it has
--- ended, while the cursor is in the block; scrolling so that the lines
--- fit, or moving the block out of view, takes it away.
local api = vim.api
local M = {}

M.namespace = api.nvim_create_namespace("cellbox_overflow")

local floats = {} -- result -> { win, buf, over (the window it sits in) }

--- The window showing `bufnr`: the current one, else the first in the tab.
local function window_of(bufnr)
  local current = api.nvim_get_current_win()
  if api.nvim_win_get_buf(current) == bufnr then
    return current
  end
  for _, win in ipairs(api.nvim_tabpage_list_wins(0)) do
    if api.nvim_win_get_config(win).relative == "" and api.nvim_win_get_buf(win) == bufnr then
      return win
    end
  end
  return nil
end

--- Screen lines of `win` left below the block first..anchor (0-based rows),
--- 0 when its end is below the window; nil when the block is not in view.
local function room_below(win, first, anchor)
  local top = vim.fn.line("w0", win) - 1
  local bottom = vim.fn.line("w$", win) - 1
  if anchor < top or first > bottom then
    return nil
  end
  if anchor > bottom then
    return 0
  end
  local bufnr = api.nvim_win_get_buf(win)
  local text = api.nvim_buf_get_lines(bufnr, anchor, anchor + 1, false)[1] or ""
  -- The anchor's last screen line (a long line wraps), counted from the window's top.
  local at = vim.fn.screenpos(win, anchor + 1, math.max(1, #text)).row
  if at == 0 then
    return 0
  end
  return api.nvim_win_get_height(win) - (at - vim.fn.win_screenpos(win)[1]) - 1
end

function M.close(result)
  local float = floats[result]
  floats[result] = nil
  if float and api.nvim_win_is_valid(float.win) then
    api.nvim_win_close(float.win, true)
  end
end

local function fill(buf, lines)
  local texts, highlights = {}, {}
  for row, chunks in ipairs(lines) do
    local text = ""
    for _, chunk in ipairs(chunks) do
      table.insert(highlights, { row - 1, #text, #text + #chunk[1], chunk[2] })
      text = text .. chunk[1]
    end
    texts[row] = text
  end
  api.nvim_buf_set_lines(buf, 0, -1, false, texts)
  api.nvim_buf_clear_namespace(buf, M.namespace, 0, -1)
  for _, span in ipairs(highlights) do
    api.nvim_buf_add_highlight(buf, M.namespace, span[4], span[1], span[2], span[3])
  end
end

--- Buffer line `line` (0-based)'s first screen line in `win`, counted from the
--- window's top; nil when it is not in view.
local function screen_line(win, line)
  local at = vim.fn.screenpos(win, line + 1, 1).row
  return at > 0 and at - vim.fn.win_screenpos(win)[1] or nil
end

--- The cursor's screen line in `win`, counted from the window's top.
local function cursor_line(win)
  local cursor = api.nvim_win_get_cursor(win)
  local at = vim.fn.screenpos(win, cursor[1], cursor[2] + 1).row
  return at > 0 and at - vim.fn.win_screenpos(win)[1] or nil
end

--- Where the float goes: its first screen line in `win` and its height. Never
--- over the block's own lines (first..anchor) nor the cursor's line, where
--- the window has room for that: below the block, over the place of the
--- inline lines it stands for, when that holds as many lines as above it;
--- else at the window's top, over at most its upper half.
local function place(win, room, first, count)
  local height = api.nvim_win_get_height(win)
  local half = math.floor(height / 2)
  local below = { size = room }
  local above = { size = math.min(screen_line(win, first) or 0, half) }
  local cursor = cursor_line(win)
  local function holds_cursor(region, rows)
    local top = region == below and height - rows or 0
    return cursor ~= nil and cursor >= top and cursor < top + rows
  end
  local order = room >= math.min(count, above.size) and { below, above } or { above, below }
  for _, region in ipairs(order) do
    local rows = math.min(count, region.size)
    if rows > 0 and not holds_cursor(region, rows) then
      return (region == below and height - rows or 0), rows
    end
  end
  -- The block fills the window: over its lower half, or its top when the
  -- cursor is down there.
  local rows = math.min(count, math.max(half, 1), height)
  if cursor and cursor >= height - rows and cursor >= rows then
    return 0, rows
  end
  return height - rows, rows
end

local function show(result, win, room, first, lines)
  local row, rows = place(win, room, first, #lines)
  local textoff = (vim.fn.getwininfo(win)[1] or {}).textoff or 0
  local config = {
    relative = "win",
    win = win,
    row = row,
    col = textoff,
    width = math.max(1, api.nvim_win_get_width(win) - textoff),
    height = rows,
  }
  local float = floats[result]
  if float and (float.over ~= win or not api.nvim_win_is_valid(float.win)) then
    M.close(result)
    float = nil
  end
  if not float then
    local buf = api.nvim_create_buf(false, true)
    vim.bo[buf].bufhidden = "wipe"
    local options = vim.tbl_extend("force", config, { style = "minimal", focusable = false, zindex = 40, noautocmd = true })
    float = { win = api.nvim_open_win(buf, false, options), buf = buf, over = win }
    -- Drawn like the inline lines it stands for, not as a popup.
    vim.wo[float.win].winhighlight = "NormalFloat:Normal"
    floats[result] = float
  else
    api.nvim_win_set_config(float.win, config)
  end
  fill(float.buf, vim.list_slice(lines, #lines - rows + 1, #lines))
end

--- After `result` was drawn with `lines` under the block first..anchor.
function M.update(result, first, anchor, lines)
  local win = window_of(result.bufnr)
  local room = win and first and room_below(win, first, anchor)
  local running = not (result.status or result.failure)
  local cursor = win and api.nvim_win_get_cursor(win)[1] - 1
  local wanted = room ~= nil and #lines > room and (running or (cursor >= first and cursor <= anchor))
  if not wanted then
    M.close(result)
    return
  end
  show(result, win, room, first, lines)
end

--- The view changed (scrolled, cursor moved, resized, other window):
--- check each float against it, and the current buffer's results (the
--- cursor may have come back into a block whose lines do not fit).
function M.recheck()
  local display = require("cellbox.display")
  local check = {}
  for result in pairs(floats) do
    check[result] = true
  end
  for _, result in ipairs(require("cellbox.results").shown_in(api.nvim_get_current_buf())) do
    check[result] = true
  end
  for result in pairs(check) do
    local first, anchor = display.rows(result)
    if result.erased or not first then
      M.close(result)
    else
      M.update(result, first, anchor, display.lines(result))
    end
  end
end

--- The floats shown now: { result = ..., win = ... } (for tests and :CellboxOutput).
function M.shown()
  local list = {}
  for result, float in pairs(floats) do
    table.insert(list, { result = result, win = float.win })
  end
  return list
end

api.nvim_create_autocmd({ "WinScrolled", "CursorMoved", "CursorMovedI", "VimResized", "WinEnter", "BufEnter" }, {
  group = api.nvim_create_augroup("cellbox_overflow", { clear = true }),
  callback = function()
    M.recheck()
  end,
})

return M
