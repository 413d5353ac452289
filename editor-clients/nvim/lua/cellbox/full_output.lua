--- :CellboxOutput: a result's whole output in a scratch split, stderr in
--- its highlight, its outcome on the first line, and a line for each image
--- or HTML output at the end, as under the block (<CR> on one opens it).
local display = require("cellbox.display")
local displays = require("cellbox.displays")

local api = vim.api
local M = {}

local count = 0

function M.open(result)
  local header
  if result.failure then
    header = "✗ " .. result.failure
  elseif result.status then
    header = (display.outcome(result.status))
  else
    header = "running…"
  end
  local lines = { header }
  local stderr_spans = {} -- { row, start column, end column }
  for _, pieces in ipairs(result.output:all_lines()) do
    local text = ""
    for _, piece in ipairs(pieces) do
      if piece[2] == "stderr" then
        table.insert(stderr_spans, { #lines, #text, #text + #piece[1] })
      end
      text = text .. piece[1]
    end
    table.insert(lines, text)
  end
  local openable = displays.openable(result.displays)
  local first_display = #lines
  for number, entry in ipairs(openable) do
    table.insert(lines, displays.label(entry, number, #openable))
  end

  vim.cmd("botright new")
  local bufnr = api.nvim_get_current_buf()
  count = count + 1
  api.nvim_buf_set_name(bufnr, ("cellbox://output/%d"):format(count))
  vim.bo[bufnr].buftype = "nofile"
  vim.bo[bufnr].bufhidden = "wipe"
  vim.bo[bufnr].swapfile = false
  api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  local highlight = "CellboxInfo"
  if result.status then
    highlight = select(2, display.outcome(result.status))
  elseif result.failure then
    highlight = "CellboxError"
  end
  api.nvim_buf_add_highlight(bufnr, display.namespace, highlight, 0, 0, -1)
  for row = first_display, #lines - 1 do
    api.nvim_buf_add_highlight(bufnr, display.namespace, "CellboxDisplay", row, 0, -1)
  end
  for _, span in ipairs(stderr_spans) do
    api.nvim_buf_add_highlight(bufnr, display.namespace, "CellboxStderr", span[1], span[2], span[3])
  end
  vim.bo[bufnr].modifiable = false
  vim.keymap.set("n", "q", "<cmd>close<CR>", { buffer = bufnr, nowait = true, desc = "Close cellbox output" })
  if #openable > 0 then
    -- <CR> on an output's line opens it, as :CellboxOpen would under the block.
    vim.keymap.set("n", "<CR>", function()
      local entry = openable[api.nvim_win_get_cursor(0)[1] - first_display]
      if entry then
        displays.open(entry.path, entry.mime)
      end
    end, { buffer = bufnr, desc = "cellbox: open the output on this line" })
  end
  return bufnr
end

return M
