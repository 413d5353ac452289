--- The results shown in each buffer, one per block that ran, placed where
--- the server's `range` says the block is. A new result replaces the ones
--- it overlaps (running a block again replaces its old result). Finds the
--- result under a line for :CellboxOutput, clears a buffer's results, and
--- finds each block again when the buffer is reloaded from disk.
local compat = require("cellbox.compat")
local display = require("cellbox.display")
local Output = require("cellbox.output")

local api = vim.api
local M = {}

local by_buffer = {} -- bufnr -> list of results, oldest first
local waiting_by_buffer = {} -- bufnr -> { [marker] = true }: runs not at their first block yet

-- A reload (:e!, or the file changed on disk and was read again) replaces
-- every line, and extmarks keep their row numbers: a result would hang
-- wherever its old row now falls. So each result keeps its block's lines
-- (as of the last change to the buffer: when the reload's autocommands
-- come, the old text is already gone), and finds them again after the
-- reload: the result moves with its block, or goes with it.
local function shown_in(bufnr)
  local shown = vim.list_extend({}, by_buffer[bufnr] or {})
  return vim.list_extend(shown, vim.tbl_keys(waiting_by_buffer[bufnr] or {}))
end
--- The results of `bufnr`, and its runs' markers until their first block starts.
M.shown_in = shown_in

local function remember_block(result)
  local first, anchor = display.rows(result)
  if first then
    result.block = { first = first, lines = api.nvim_buf_get_lines(result.bufnr, first, anchor + 1, false) }
  end
end

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
    displays = {}, -- rich outputs (session mode), as the server sends them
    status = nil, -- the server's result block, once it has ended
    failure = nil, -- a message, when the run failed without a result
    started = compat.uv.hrtime(),
  }
  display.place(result, first, anchor)
  remember_block(result)
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
  remember_block(marker)
  display.keep_ticking(marker)
  waiting_by_buffer[bufnr] = waiting_by_buffer[bufnr] or {}
  waiting_by_buffer[bufnr][marker] = true
  return marker
end

function M.drop_waiting(marker)
  display.erase(marker)
  if waiting_by_buffer[marker.bufnr] then
    waiting_by_buffer[marker.bufnr][marker] = nil
  end
end

--- The result, ended with an outcome from the server, whose block starts
--- at `row`, else nil: a run's outcome is shown (in the lens too) only
--- while its result is. (A run that failed without one, e.g. the engine
--- was down, leaves no outcome of its own on the server.)
function M.finished_at(bufnr, row)
  local list = by_buffer[bufnr] or {}
  for i = #list, 1, -1 do
    local first = display.rows(list[i])
    if first == row then
      return list[i].status and list[i] or nil
    end
  end
  return nil
end

--- The buffer's text changed: remember what each result's block reads now.
function M.remember_blocks(bufnr)
  for _, result in ipairs(shown_in(bufnr)) do
    remember_block(result)
  end
end

--- Where `lines` start in `text` (0-based), nearest `near`; nil when they are not there.
local function find_lines(text, lines, near)
  local best = nil
  for start = 1, #text - #lines + 1 do
    local same = true
    for i, line in ipairs(lines) do
      if text[start + i - 1] ~= line then
        same = false
        break
      end
    end
    if same and (best == nil or math.abs(start - 1 - near) < math.abs(best - near)) then
      best = start - 1
    end
  end
  return best
end

function M.after_reload(bufnr)
  if not api.nvim_buf_is_valid(bufnr) then
    return
  end
  local text = api.nvim_buf_get_lines(bufnr, 0, -1, false)
  for _, result in ipairs(shown_in(bufnr)) do
    local before = result.block
    local first = before and #before.lines > 0 and find_lines(text, before.lines, before.first) or nil
    if first then
      display.move(result, first, first + #before.lines - 1)
      remember_block(result)
    elseif result.output then
      M.remove(result) -- its block is gone or was changed on disk
    else
      M.drop_waiting(result)
    end
  end
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
  waiting_by_buffer[bufnr] = nil
end

function M.clear(bufnr)
  for _, result in ipairs(shown_in(bufnr)) do
    display.erase(result)
  end
  by_buffer[bufnr] = nil
  waiting_by_buffer[bufnr] = nil
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, display.namespace, 0, -1)
    api.nvim_buf_clear_namespace(bufnr, display.span_namespace, 0, -1)
  end
end

return M
