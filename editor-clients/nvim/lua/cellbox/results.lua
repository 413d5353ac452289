--- The results shown in each buffer, one per block that ran, placed where
--- the server's `range` says the block is. A new result replaces the ones
--- it overlaps (running a block again replaces its old result). Finds the
--- result under a line for :CellboxOutput, and clears a buffer's results.
local compat = require("cellbox.compat")
local display = require("cellbox.display")
local Output = require("cellbox.output")

local api = vim.api
local M = {}

local by_buffer = {} -- bufnr -> list of results, oldest first

--- First and last row of an LSP range whose end is exclusive.
local function rows_of(range)
  local first = range.start.line
  local last = range["end"].line
  if range["end"].character == 0 and last > first then
    last = last - 1
  end
  return first, math.max(first, last)
end

local function overlaps(a_first, a_last, b_first, b_last)
  return a_first <= b_last and b_first <= a_last
end

function M.remove(result)
  display.erase(result)
  local list = by_buffer[result.bufnr] or {}
  for i, each in ipairs(list) do
    if each == result then
      table.remove(list, i)
      break
    end
  end
end

--- A new, running result for the block at `range` of `bufnr`, drawn under
--- the last row of its `extent` (the whole block as the server sees it, a
--- Markdown block's closing fence included); under its code without one.
function M.open(bufnr, range, extent, run_id, block_index)
  local first, last = rows_of(range)
  local anchor = last
  if type(extent) == "table" then
    local _, extent_last = rows_of(extent)
    anchor = math.max(last, extent_last)
  end
  for _, old in ipairs(vim.list_extend({}, by_buffer[bufnr] or {})) do
    local old_first, old_anchor = display.rows(old)
    if old_first == nil or overlaps(first, anchor, old_first, old_anchor) then
      M.remove(old)
    end
  end
  local result = {
    bufnr = bufnr,
    run_id = run_id,
    block_index = block_index,
    output = Output.new(),
    status = nil, -- the server's result block, once it has ended
    failure = nil, -- a message, when the run failed without a result
    started = compat.uv.hrtime(),
  }
  display.place(result, first, anchor)
  by_buffer[bufnr] = by_buffer[bufnr] or {}
  table.insert(by_buffer[bufnr], result)
  return result
end

--- A marker under `row` for a run that has not reached its first block yet
--- (the server may be starting a container). Not a result: it is dropped
--- when the first block starts.
function M.open_waiting(bufnr, row)
  local marker = { bufnr = bufnr, started = compat.uv.hrtime() }
  display.place(marker, row, row)
  display.keep_ticking(marker)
  return marker
end

--- The newest result whose block spans `row`, else nil.
function M.at_row(bufnr, row)
  local list = by_buffer[bufnr] or {}
  for i = #list, 1, -1 do
    local first, anchor = display.rows(list[i])
    if first and first <= row and row <= anchor then
      return list[i]
    end
  end
  return nil
end

function M.latest(bufnr)
  local list = by_buffer[bufnr] or {}
  return list[#list]
end

--- Drop what is kept for a buffer that is gone (no API calls: it may be mid-wipe).
function M.forget(bufnr)
  by_buffer[bufnr] = nil
end

function M.clear(bufnr)
  for _, result in ipairs(by_buffer[bufnr] or {}) do
    display.erase(result)
  end
  by_buffer[bufnr] = nil
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, display.namespace, 0, -1)
    api.nvim_buf_clear_namespace(bufnr, display.span_namespace, 0, -1)
  end
end

return M
