--- Draws results in the buffer: virtual lines under a block with its output
--- (the last lines of it), then "running… 1.2 s" while it runs (and the
--- server's step, "· building environment (step 3/6): …", while a run
--- waits for one before its first block), or its outcome (✓/✗/⏱/⊘, exit
--- code, duration) once it has ended. Owns the extmark namespace, the
--- highlight groups and the timer that keeps running results' clocks
--- moving. What a result holds is results.lua's business.
local compat = require("cellbox.compat")
local config = require("cellbox.config")
local displays = require("cellbox.displays")
local overflow = require("cellbox.overflow")
local steps = require("cellbox.steps")
local vocabulary = require("cellbox.vocabulary")

local api = vim.api
local M = {}

--- The namespace of the result lines (one extmark per result, below its block).
M.namespace = api.nvim_create_namespace("cellbox")
--- Where each result's block starts (extmarks that follow edits; no text).
M.span_namespace = api.nvim_create_namespace("cellbox_spans")

-- Links used unless the colour scheme or the user defines the group.
local LINKS = {
  CellboxBorder = "Comment",
  CellboxOutput = "Normal",
  CellboxStderr = "DiagnosticWarn",
  CellboxRunning = "DiagnosticInfo",
  CellboxError = "DiagnosticError",
  CellboxWarn = "DiagnosticWarn",
  CellboxInfo = "DiagnosticInfo",
  CellboxMore = "Comment",
  CellboxDisplay = "Special",
}

function M.define_highlights()
  for group, target in pairs(LINKS) do
    vim.cmd(("highlight default link %s %s"):format(group, target))
  end
  -- DiagnosticOk only exists from 0.10: give success its own green.
  vim.cmd("highlight default CellboxSuccess ctermfg=2 guifg=#3fb950")
end

local STREAM_HIGHLIGHT = { stdout = "CellboxOutput", stderr = "CellboxStderr" }

local status = vocabulary.statuses

-- Words and highlight for each `status` the server reports (its glyph is the vocabulary's).
local OUTCOMES = {
  [status.OK] = { nil, "CellboxSuccess" },
  [status.ERROR] = { nil, "CellboxError" },
  [status.TIMEOUT] = { "timeout", "CellboxError" },
  [status.CANCELLED] = { "cancelled", "CellboxWarn" },
  [status.OOM] = { "out of memory", "CellboxError" },
  [status.OUTPUT_LIMIT] = { "file size limit", "CellboxError" },
  [status.NOT_EXECUTED] = { "not executed", "CellboxInfo" },
}

local function seconds(ms)
  return ("%.2f s"):format((ms or 0) / 1000)
end

--- The outcome line of a finished block, e.g. "✓ exit 0 · 0.12 s", and its highlight.
function M.outcome(block)
  local known = OUTCOMES[block.status] or { block.status, "CellboxInfo" }
  local parts = { vocabulary.glyphs[block.status] or "?" }
  if known[1] then
    table.insert(parts, known[1])
  end
  local words = table.concat(parts, " ")
  local details = {}
  if block.status ~= status.NOT_EXECUTED then
    table.insert(details, "exit " .. tostring(block.exitCode))
  end
  table.insert(details, seconds(block.durationMs))
  if block.truncated then
    table.insert(details, "output truncated")
  end
  if block.stateLost then
    table.insert(details, "session state lost")
  end
  if #parts == 1 then
    return words .. " " .. table.concat(details, " · "), known[2]
  end
  return words .. " · " .. table.concat(details, " · "), known[2]
end

-- Virtual text shows a tab as one cell and control bytes as ^X: expand tabs,
-- drop colour escapes and other control characters.
local function printable(text)
  return (text:gsub("\t", "    "):gsub("\27%[[%d;?]*[%a]", ""):gsub("[%z\1-\31\127]", ""))
end

local function elapsed(result)
  return (compat.uv.hrtime() - result.started) / 1e9
end

--- The virtual lines of a result (or of a run not yet at its first block).
function M.lines(result)
  local options = config.options.display
  local prefix = { options.prefix, "CellboxBorder" }
  local lines = {}
  if result.output then
    local shown, hidden = result.output:tail(options.max_lines)
    if hidden > 0 then
      local more = ("… %d more line%s, :CellboxOutput for all"):format(hidden, hidden == 1 and "" or "s")
      table.insert(lines, { prefix, { more, "CellboxMore" } })
    end
    for _, pieces in ipairs(shown) do
      local line = { prefix }
      for _, piece in ipairs(pieces) do
        table.insert(line, { printable(piece[1]), STREAM_HIGHLIGHT[piece[2]] or "CellboxOutput" })
      end
      table.insert(lines, line)
    end
  end
  -- One line for each output that text cannot show (an image, a table...).
  local openable = displays.openable(result.displays)
  for number, entry in ipairs(openable) do
    table.insert(lines, { prefix, { displays.label(entry, number, #openable), "CellboxDisplay" } })
  end
  if result.failure then
    table.insert(lines, { prefix, { "✗ " .. result.failure, "CellboxError" } })
  elseif result.status then
    local text, highlight = M.outcome(result.status)
    table.insert(lines, { prefix, { text, highlight } })
  else
    local running = ("running… %.1f s"):format(elapsed(result))
    -- A run not at its first block yet waits for the server's step, if any.
    local step = result.client_id and steps.current(result.client_id)
    if step then
      running = running .. " · " .. printable(step)
    end
    table.insert(lines, { prefix, { running, "CellboxRunning" } })
  end
  return lines
end

local function clamp_row(bufnr, row)
  return math.max(0, math.min(row, api.nvim_buf_line_count(bufnr) - 1))
end

--- Put a result's marks in the buffer: the lines below `anchor_row`, and a
--- mark on `start_row` so the block's span follows edits.
function M.place(result, start_row, anchor_row)
  local bufnr = result.bufnr
  result.mark = api.nvim_buf_set_extmark(bufnr, M.namespace, clamp_row(bufnr, anchor_row), 0, {
    virt_lines = M.lines(result),
  })
  result.start_mark = api.nvim_buf_set_extmark(bufnr, M.span_namespace, clamp_row(bufnr, start_row), 0, {})
end

--- Put a result's marks on other rows (its block moved in a reload).
function M.move(result, start_row, anchor_row)
  local bufnr = result.bufnr
  api.nvim_buf_set_extmark(bufnr, M.span_namespace, clamp_row(bufnr, start_row), 0, { id = result.start_mark })
  api.nvim_buf_set_extmark(bufnr, M.namespace, clamp_row(bufnr, anchor_row), 0, {
    id = result.mark,
    virt_lines = M.lines(result),
  })
end

--- The result's block as rows now, after any edits: start, and the row its lines hang from.
function M.rows(result)
  if not api.nvim_buf_is_valid(result.bufnr) then
    return nil
  end
  local start = api.nvim_buf_get_extmark_by_id(result.bufnr, M.span_namespace, result.start_mark, {})
  local anchor = api.nvim_buf_get_extmark_by_id(result.bufnr, M.namespace, result.mark, {})
  if not start[1] or not anchor[1] then
    return nil
  end
  return start[1], anchor[1]
end

function M.draw(result)
  if result.erased or not api.nvim_buf_is_valid(result.bufnr) then
    return
  end
  local at = api.nvim_buf_get_extmark_by_id(result.bufnr, M.namespace, result.mark, {})
  if not at[1] then
    return
  end
  local lines = M.lines(result)
  api.nvim_buf_set_extmark(result.bufnr, M.namespace, at[1], 0, {
    id = result.mark,
    virt_lines = lines,
  })
  local start = api.nvim_buf_get_extmark_by_id(result.bufnr, M.span_namespace, result.start_mark, {})
  overflow.update(result, start[1] or at[1], at[1], lines)
  if result.displays and #result.displays > 0 then
    displays.draw_images(result, at[1])
  end
end

function M.erase(result)
  result.erased = true
  overflow.close(result)
  displays.clear_images(result)
  if api.nvim_buf_is_valid(result.bufnr) then
    pcall(api.nvim_buf_del_extmark, result.bufnr, M.namespace, result.mark)
    pcall(api.nvim_buf_del_extmark, result.bufnr, M.span_namespace, result.start_mark)
  end
end

-- Output can come as thousands of small notifications: draw each result at
-- most once per turn of the event loop.
local dirty = {}
local draw_scheduled = false

function M.schedule_draw(result)
  dirty[result] = true
  if draw_scheduled then
    return
  end
  draw_scheduled = true
  vim.schedule(function()
    draw_scheduled = false
    local drawing = dirty
    dirty = {}
    for each in pairs(drawing) do
      M.draw(each)
    end
  end)
end

-- Results whose "running…" clock must move; one timer serves them all and
-- stops when none is left.
local ticking = {}
local timer = nil

local function tick()
  local any = false
  for result in pairs(ticking) do
    if result.status or result.failure or result.erased then
      ticking[result] = nil
    else
      any = true
      -- One result that cannot be drawn must not stop every other clock.
      local ok, err = pcall(M.draw, result)
      if not ok then
        ticking[result] = nil
        vim.notify("cellbox: " .. tostring(err), vim.log.levels.DEBUG)
      end
    end
  end
  if not any and timer then
    timer:stop()
    timer:close()
    timer = nil
  end
end

function M.keep_ticking(result)
  ticking[result] = true
  if timer then
    return
  end
  local interval = config.options.display.tick_ms
  timer = compat.uv.new_timer()
  timer:start(interval, interval, vim.schedule_wrap(tick))
end

return M
