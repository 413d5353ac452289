-- Session mode (issue 14): a Markdown file whose Python blocks share one
-- kernel. :CellboxRunAll runs them: the second sees the first's variable,
-- the third's figure and the fourth's DataFrame each get a line naming
-- their file, which :CellboxOpen opens (with an opener that records what it
-- was given, and image.nvim stood in for by a recorder); the status line
-- shows the session's state; :CellboxRestartSession loses the state.
local H = require("helpers")

local opened = {}
local pictures = {}

-- A stand-in for image.nvim: records what the plugin asks it to draw.
package.preload["image"] = function()
  return {
    from_file = function(path, options)
      local picture = { path = path, y = options.y, buffer = options.buffer, rendered = false, cleared = false }
      table.insert(pictures, picture)
      return {
        render = function()
          picture.rendered = true
        end,
        clear = function()
          picture.cleared = true
        end,
      }
    end,
  }
end

local function message_containing(needle)
  return function()
    for _, message in ipairs(H.messages()) do
      if message.message:find(needle, 1, true) then
        return message.message
      end
    end
  end
end

-- What a file starts with (its first bytes), else nil when it is not there.
local function head(path, size)
  local file = io.open(path, "rb")
  if not file then
    return nil
  end
  local bytes = file:read(size)
  file:close()
  return bytes
end

local function open_at(line)
  vim.api.nvim_win_set_cursor(0, { line, 0 })
  local before = #opened
  vim.cmd("CellboxOpen")
  local entry = opened[before + 1]
  if not entry then
    return { nothing = true }
  end
  local bytes = head(entry.path, 100000)
  return {
    path = entry.path,
    mime = entry.mime,
    png = bytes ~= nil and bytes:sub(1, 4) == "\137PNG",
    table = bytes ~= nil and bytes:find("<table", 1, true) ~= nil,
  }
end

H.run(function()
  H.setup({
    open = function(path, mime)
      table.insert(opened, { path = path, mime = mime })
    end,
  })
  -- The status line as a user would set it.
  vim.o.statusline = "%{v:lua.require'cellbox'.statusline()}"
  local bufnr = H.open("session.md")
  H.note("statusline_before", require("cellbox").statusline())
  H.note("open_mapping", vim.fn.maparg("<localleader>v", "n"))

  vim.cmd("CellboxRunAll")
  -- Blocks end on rows 4, 8, 14, 19 and 25 (their closing fences).
  for _, row in ipairs({ 4, 8, 14, 19, 25 }) do
    H.wait_for_outcome(bufnr, row, 180000)
  end
  H.wait_for_idle(bufnr)
  H.note("results", H.results(bufnr))

  local statusline = H.wait_for("the session's state in the status line", 30000, bufnr, function()
    local text = require("cellbox").statusline()
    return text:find("session idle", 1, true) and text
  end)
  H.note("statusline", statusline)
  H.note("statusline_drawn", vim.api.nvim_eval_statusline(vim.o.statusline, { fillchar = " " }).str)

  H.note("open_figure", open_at(13))
  H.note("open_table", open_at(18))
  H.note("open_none", open_at(8))
  H.note("pictures", pictures)

  -- :CellboxOutput of the figure's block ends with its line; <CR> there opens it.
  vim.api.nvim_win_set_cursor(0, { 13, 0 })
  vim.cmd("CellboxOutput")
  local scratch = vim.api.nvim_get_current_buf()
  vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(scratch), 0 })
  local before = #opened
  vim.cmd([[execute "normal \<CR>"]])
  H.note("full_output", { lines = H.lines(scratch), opened = opened[before + 1] or vim.NIL })
  vim.cmd("close")

  vim.api.nvim_win_set_cursor(0, { 8, 0 })
  vim.cmd("CellboxRestartSession")
  H.note("restart_message", H.wait_for("the restart's message", 60000, bufnr, message_containing("restarted")))

  -- The second block again: x is gone with the old kernel.
  vim.cmd("CellboxRun")
  H.wait_for("the second block to fail", 120000, bufnr, function()
    local text = H.text_at(bufnr, 8)
    return text and text:find("✗", 1, true) and not text:find("running…", 1, true)
  end)
  H.note("after_restart", H.text_at(bufnr, 8))
  H.note("statusline_after", H.wait_for("the status line after the restart", 30000, bufnr, function()
    local text = require("cellbox").statusline()
    return text:find("session idle", 1, true) and text
  end))

  -- The last block naps: meanwhile the session is busy.
  vim.api.nvim_win_set_cursor(0, { 23, 0 })
  vim.cmd("CellboxRun")
  H.wait_for_running_text(bufnr, 25, "napping", 60000)
  H.note("statusline_busy", H.wait_for("a busy session in the status line", 10000, bufnr, function()
    local text = require("cellbox").statusline()
    return text:find("session busy", 1, true) and text
  end))
  H.wait_for_outcome(bufnr, 25)
  H.note("statusline_done", H.wait_for("an idle session after the nap", 30000, bufnr, function()
    local text = require("cellbox").statusline()
    return text:find("session idle", 1, true) and text
  end))
end)
