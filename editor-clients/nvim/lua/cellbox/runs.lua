--- Runs: each `cellbox.execute` the plugin sends, under a runId it makes up
--- so that it can be cancelled, and what the server says while it goes
--- (block started, output) and when it ends (the result). Turns those into
--- results in the buffer; drawing them is display.lua's job.
local clients = require("cellbox.clients")
local compat = require("cellbox.compat")
local display = require("cellbox.display")
local lenses = require("cellbox.lenses")
local results = require("cellbox.results")
local sessions = require("cellbox.sessions")
local vocabulary = require("cellbox.vocabulary")

local M = {}

local runs_by_id = {} -- runId -> run, while it goes
local latest_by_buffer = {} -- bufnr -> the buffer's latest run
local count = 0

local function notify(message, level)
  vim.notify("cellbox: " .. message, level or vim.log.levels.INFO)
end

local function new_run_id()
  count = count + 1
  return ("nvim-%d-%d"):format(compat.uv.getpid(), count)
end

local function drop_waiting(run)
  if run.waiting then
    results.drop_waiting(run.waiting)
    run.waiting = nil
  end
end

-- How often a run in a session asks the server for its session's state
-- (the status line's "busy"), while the run goes.
local SESSION_POLL_MS = 1000

local function poll_session(run)
  if run.done then
    return
  end
  sessions.refresh(run.bufnr) -- nothing until a block of the buffer ran in a session
  vim.defer_fn(function()
    poll_session(run)
  end, SESSION_POLL_MS)
end

--- Ask the server to run `target` of `bufnr`: { position = ... }, { range = ... }
--- or { all = true }, as cellbox.execute takes them. `waiting.row` is where
--- to show "running…" until the first block starts.
function M.start(bufnr, target, waiting)
  local run = { id = new_run_id(), bufnr = bufnr, blocks = {}, done = false }
  local argument = vim.tbl_extend("force", target, { uri = vim.uri_from_bufnr(bufnr), runId = run.id })
  run.waiting = results.open_waiting(bufnr, waiting.row)
  runs_by_id[run.id] = run
  latest_by_buffer[bufnr] = run
  run.client_id = clients.command(bufnr, vocabulary.commands.EXECUTE, argument, function(err, result)
    M.finish(run, err, result)
  end)
  if run.waiting then
    -- Until its first block starts, the marker shows the server's step
    -- (building the environment...) from this client.
    run.waiting.client_id = run.client_id
  end
  vim.defer_fn(function()
    poll_session(run)
  end, SESSION_POLL_MS)
  return run
end

--- Run what a code lens says (its argument is cellbox.execute's, with the document's uri).
function M.run_lens(bufnr, argument)
  local target = vim.deepcopy(argument)
  target.uri = nil
  local row = target.position and target.position.line or 0
  return M.start(bufnr, target, { row = row })
end

function M.on_block_started(params)
  local run = runs_by_id[params.runId]
  if not run then
    return
  end
  drop_waiting(run)
  if type(params.range) ~= "table" then
    return -- a block given as text, not one of the document's
  end
  local result = results.open(run.bufnr, params.range, params.extent, run.id, params.blockIndex)
  run.blocks[params.blockIndex] = result
  display.keep_ticking(result)
  -- The block's last outcome ("⊘ cancelled") is not this run's: take it off its lens.
  lenses.refresh(run.bufnr)
  -- A session's state ("busy") for the status line.
  sessions.refresh(run.bufnr)
end

function M.on_output(params)
  local run = runs_by_id[params.runId]
  local result = run and run.blocks[params.blockIndex]
  if result then
    result.output:append(params.stream, params.text)
    display.schedule_draw(result)
  end
end

--- A rich output of a running block (session mode): an image, a table...
function M.on_display(params)
  local run = runs_by_id[params.runId]
  local result = run and run.blocks[params.blockIndex]
  if result and type(params.display) == "table" then
    table.insert(result.displays, params.display)
    display.schedule_draw(result)
  end
end

--- The execute request's answer: each block's outcome, or an error.
function M.finish(run, err, answer)
  if run.done then
    return
  end
  run.done = true
  runs_by_id[run.id] = nil
  drop_waiting(run)
  if err then
    local message = err.message or tostring(err)
    for _, result in pairs(run.blocks) do
      if not result.status then
        result.failure = message
        display.draw(result)
      end
    end
    -- The server tells the person itself of what is not the request's fault
    -- (the engine is down, the image is missing...): say it once.
    if not clients.server_said("cellbox: " .. message) then
      notify(message, vim.log.levels.ERROR)
    end
    return
  end
  for position, block in ipairs(answer.blocks or {}) do
    local index = position - 1
    local result = run.blocks[index]
    -- A block that printed nothing before it ended (e.g. one only saved,
    -- not run) may not have been announced: place it from the result's range.
    if not result and type(block.range) == "table" then
      result = results.open(run.bufnr, block.range, block.extent, run.id, index)
      run.blocks[index] = result
    end
    if result then
      result.output:catch_up(block.output)
      -- The answer's displays are all of them, those no notification brought included.
      if type(block.displays) == "table" and #block.displays >= #result.displays then
        result.displays = block.displays
      end
      result.status = block
      display.draw(result)
    end
    if type(block.session) == "string" then
      sessions.remember(run.bufnr, block.session)
    end
  end
  sessions.refresh(run.bufnr)
end

--- Cancel the latest run of `bufnr`, if it still goes.
function M.cancel(bufnr)
  local run = latest_by_buffer[bufnr]
  if not run or run.done then
    notify("no run is going in this buffer")
    return
  end
  clients.command(bufnr, vocabulary.commands.CANCEL, { runId = run.id }, function(err, answer)
    if err then
      notify(err.message or tostring(err), vim.log.levels.ERROR)
    elseif not answer.cancelled and not run.done then
      notify("the run had already ended")
    end
  end)
end

--- The server went away: its runs will never answer.
function M.on_server_exit(client_id, code, signal)
  for _, run in pairs(vim.tbl_values(runs_by_id)) do
    if run.client_id == client_id then
      M.finish(run, { message = ("the cellbox server stopped (exit code %s, signal %s)"):format(code, signal) })
    end
  end
end

function M.latest(bufnr)
  return latest_by_buffer[bufnr]
end

return M
