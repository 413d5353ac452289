--- cellbox for Neovim: run a document's code blocks in the workspace's
--- Docker sandbox through `cellbox serve`, and see their output under them.
---
--- This module is the public face: setup(), and one function per command.
--- The server finds the blocks, runs them and maps errors to lines; the
--- plugin only asks, and draws what it is told (see :help cellbox).
local clients = require("cellbox.clients")
local commands = require("cellbox.commands")
local config = require("cellbox.config")
local display = require("cellbox.display")
local results = require("cellbox.results")
local runs = require("cellbox.runs")
local sessions = require("cellbox.sessions")
local steps = require("cellbox.steps")
local vocabulary = require("cellbox.vocabulary")

local api = vim.api
local M = {}

local function notify(message, level)
  vim.notify("cellbox: " .. message, level or vim.log.levels.INFO)
end

local function current_buffer()
  return api.nvim_get_current_buf()
end

function M.setup(options)
  config.set(options)
  display.define_highlights()
  -- A colour scheme clears highlight groups: define ours again after it.
  api.nvim_create_autocmd("ColorScheme", {
    group = api.nvim_create_augroup("cellbox_highlights", { clear = true }),
    callback = display.define_highlights,
  })
  commands.define()
  -- Attach buffers of the configured filetypes as they open, and those
  -- already open (the plugin may be loaded late). Cleared each time, so
  -- that calling setup() again does not attach twice.
  api.nvim_create_autocmd("FileType", {
    group = api.nvim_create_augroup("cellbox_filetypes", { clear = true }),
    pattern = config.options.filetypes,
    callback = function(event)
      M.attach(event.buf)
    end,
  })
  local buffers = api.nvim_create_augroup("cellbox_forget", { clear = true })
  api.nvim_create_autocmd("BufWipeout", {
    group = buffers,
    callback = function(event)
      results.forget(event.buf)
      sessions.forget(event.buf)
    end,
  })
  -- :e!, or a file changed on disk and read again: results follow their blocks.
  api.nvim_create_autocmd({ "TextChanged", "TextChangedI" }, {
    group = buffers,
    callback = function(event)
      results.remember_blocks(event.buf)
    end,
  })
  api.nvim_create_autocmd("BufReadPost", {
    group = buffers,
    callback = function(event)
      results.after_reload(event.buf)
    end,
  })
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(config.options.filetypes, vim.bo[bufnr].filetype) then
      M.attach(bufnr)
    end
  end
end

--- Attach a buffer to its workspace's server (starting it if needed) and
--- give it the mappings. Commands attach the current buffer themselves.
function M.attach(bufnr)
  bufnr = bufnr == 0 and api.nvim_get_current_buf() or bufnr
  -- Hover windows and other scratch buffers have filetype markdown too:
  -- only files on disk have a workspace.
  if vim.bo[bufnr].buftype ~= "" or api.nvim_buf_get_name(bufnr) == "" then
    return nil
  end
  local client_id, message = clients.attach(bufnr)
  if not client_id then
    notify(message, vim.log.levels.WARN)
    return nil
  end
  commands.map_keys(bufnr)
  return client_id
end

--- Run the block under the cursor.
function M.run()
  local row = api.nvim_win_get_cursor(0)[1] - 1
  return runs.start(current_buffer(), { position = { line = row, character = 0 } }, { row = row })
end

--- Run lines `first`..`last` (1-based, inclusive) as one block.
function M.run_lines(first, last)
  local range = { start = { line = first - 1, character = 0 }, ["end"] = { line = last, character = 0 } }
  return runs.start(current_buffer(), { range = range }, { row = last - 1 })
end

--- Run every block of the buffer, in order, stopping at the first failure.
function M.run_all()
  return runs.start(current_buffer(), { all = true }, { row = 0 })
end

--- Cancel the buffer's latest run.
function M.cancel()
  runs.cancel(current_buffer())
end

--- Send `command` for the current buffer's workspace (with `extra`
--- arguments), and say `done_message(answer)`, or the server's error.
local function sandbox_command(command, done_message, extra)
  local bufnr = current_buffer()
  local client_id, root = clients.of_buffer(bufnr)
  if not client_id then
    notify(root, vim.log.levels.ERROR)
    return
  end
  clients.command(bufnr, command, vim.tbl_extend("force", { workspace = root }, extra or {}), function(err, answer)
    if err then
      notify(err.message or tostring(err), vim.log.levels.ERROR)
    else
      notify(done_message(answer))
    end
  end)
end

--- Restart the workspace's sandbox (what runs in it is killed, sessions
--- included; files stay).
function M.restart()
  local bufnr = current_buffer()
  sandbox_command(vocabulary.commands.RESTART, function(answer)
    sessions.refresh(bufnr)
    return ("sandbox %s restarted: %s"):format(answer.container, answer.state)
  end)
end

--- Restart the current buffer's session (session mode): its kernel is
--- killed and a new one started; its variables are gone. Other documents'
--- sessions and the sandbox stay.
function M.restart_session()
  local bufnr = current_buffer()
  local name = sessions.name_of(bufnr)
  sandbox_command(vocabulary.commands.RESTART, function()
    sessions.refresh(bufnr)
    return ("session %s restarted: its state is gone"):format(vim.fn.fnamemodify(name, ":~:."))
  end, { session = name })
end

--- Stop the workspace's sandbox.
function M.stop()
  local bufnr = current_buffer()
  sandbox_command(vocabulary.commands.STOP, function(answer)
    sessions.refresh(bufnr)
    return ("sandbox %s %s"):format(answer.container, answer.state)
  end)
end

--- Approve the loosening settings that the workspace's cellbox.toml and
--- pyproject.toml ask for now (network, capabilities, raised limits...):
--- the server ignores them until the user does this or answers "Allow".
function M.trust()
  sandbox_command(vocabulary.commands.TRUST, function(answer)
    if #(answer.settings or {}) == 0 then
      return ("%s asks for no loosening settings: nothing to allow"):format(answer.workspace)
    end
    return ("allowed for %s: %s (from %s)"):format(
      answer.workspace,
      table.concat(answer.settings, ", "),
      table.concat(answer.files or {}, ", ")
    )
  end)
end

--- Show the sandboxes this buffer's server knows and their state.
function M.status()
  clients.command(current_buffer(), vocabulary.commands.STATUS, vim.empty_dict(), function(err, answer)
    if err then
      notify(err.message or tostring(err), vim.log.levels.ERROR)
      return
    end
    local lines = {}
    for _, sandbox in ipairs(answer.sandboxes or {}) do
      table.insert(lines, ("%s  %s  %s  (%s)"):format(sandbox.state, sandbox.workspace, sandbox.container, sandbox.image))
      for _, session in ipairs(sandbox.sessions or {}) do
        table.insert(lines, ("  session %s  %s  %d block%s run"):format(
          session.state, session.name, session.blocksRun or 0, session.blocksRun == 1 and "" or "s"
        ))
      end
    end
    if #lines == 0 then
      lines = { "no sandbox" }
    end
    notify(table.concat(lines, "\n"))
  end)
end

--- The status line's words for the current buffer: the server's step while
--- one goes ("cellbox: building environment (step 3/6): RUN …"), else its
--- session's, e.g. "cellbox: session idle · 2 blocks"; "" when there is
--- neither. For 'statusline': %{v:lua.require'cellbox'.statusline()}
function M.statusline()
  local bufnr = current_buffer()
  local step = steps.current(clients.attached(bufnr))
  if step then
    return "cellbox: " .. step
  end
  return sessions.statusline(bufnr)
end

--- Open an output of the block under the cursor (else of the last block
--- that ran) that text cannot show (an image, a table...), with the
--- configured opener: the `number`th, else the only one, else ask which.
function M.open(number)
  local displays = require("cellbox.displays")
  local bufnr = current_buffer()
  local row = api.nvim_win_get_cursor(0)[1] - 1
  local result = results.at_row(bufnr, row) or results.latest(bufnr)
  local openable = displays.openable(result and result.displays)
  if #openable == 0 then
    notify(result and "this block has no image or other output to open" or "no output in this buffer yet")
    return
  end
  if number then
    local entry = openable[number]
    if not entry then
      notify(("this block has %d output%s to open, not %d"):format(#openable, #openable == 1 and "" or "s", number), vim.log.levels.ERROR)
      return
    end
    return displays.open(entry.path, entry.mime)
  end
  if #openable == 1 then
    return displays.open(openable[1].path, openable[1].mime)
  end
  vim.ui.select(openable, {
    prompt = "cellbox: open which output?",
    format_item = function(entry)
      return entry.mime .. "  " .. vim.fn.fnamemodify(entry.path, ":~")
    end,
  }, function(entry)
    if entry then
      displays.open(entry.path, entry.mime)
    end
  end)
end

--- Remove the buffer's results from view, and their outcomes from the lenses.
function M.clear()
  local bufnr = current_buffer()
  results.clear(bufnr)
  require("cellbox.lenses").refresh(bufnr)
end

--- Open the whole output of the block under the cursor (else of the last
--- block that ran in this buffer) in a scratch split.
function M.output()
  local bufnr = current_buffer()
  local row = api.nvim_win_get_cursor(0)[1] - 1
  local result = results.at_row(bufnr, row) or results.latest(bufnr)
  if not result then
    notify("no output in this buffer yet")
    return
  end
  return require("cellbox.full_output").open(result)
end

return M
