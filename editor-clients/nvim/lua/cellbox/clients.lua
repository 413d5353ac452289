--- One `cellbox serve` per workspace root, and the buffers attached to it.
--- Finds a buffer's root, starts the root's server on first need, sends
--- cellbox commands once the server has answered `initialize`, and routes
--- the server's own notifications (output, displays, block started) to
--- runs.lua, and its progress to steps.lua.
local compat = require("cellbox.compat")
local config = require("cellbox.config")
local steps = require("cellbox.steps")
local vocabulary = require("cellbox.vocabulary")

local api = vim.api
local M = {}

local client_of_root = {} -- root -> client id
local root_of_client = {} -- client id -> root
local ready = {} -- client id -> true once `initialize` has been answered
local waiting = {} -- client id -> callbacks to call once ready
local buffers_of_client = {} -- client id -> { [bufnr] = true }

local augroup = api.nvim_create_augroup("cellbox_buffers", { clear = true })

-- LSP language ids the server knows for Neovim's filetypes (its own list:
-- markdown, quarto, python, shellscript); other filetypes are sent as they are.
local LANGUAGE_IDS = { sh = "shellscript", bash = "shellscript" }

--- The workspace root of a file: the nearest folder, going up from the
--- file's own, holding one of the root markers; else the file's folder.
function M.root_of(path)
  local folder = vim.fn.fnamemodify(path, ":p:h")
  local dir = folder
  while true do
    for _, marker in ipairs(config.options.root_markers) do
      if compat.uv.fs_stat(dir .. "/" .. marker) then
        return compat.uv.fs_realpath(dir) or dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      return compat.uv.fs_realpath(folder) or folder
    end
    dir = parent
  end
end

local said = {} -- message -> when the server showed it (hrtime)
-- How long a message of the server stands for the same error of a request.
local SAID_WITHIN_NS = 30e9

local MESSAGE_LEVELS = {
  [1] = vim.log.levels.ERROR,
  [2] = vim.log.levels.WARN,
  [3] = vim.log.levels.INFO,
  [4] = vim.log.levels.DEBUG,
}

--- Whether the server has just shown `message` itself (each showing
--- answers for one error).
function M.server_said(message)
  local when = said[message]
  said[message] = nil
  return when ~= nil and compat.uv.hrtime() - when < SAID_WITHIN_NS
end

--- Handlers for what the server sends besides standard LSP, and the
--- standard ones the plugin does its own way.
local function handlers()
  local runs = function()
    return require("cellbox.runs")
  end
  local by_method = {
    [vocabulary.notifications.OUTPUT] = function(_, params)
      runs().on_output(params)
    end,
    [vocabulary.notifications.BLOCK_STARTED] = function(_, params)
      runs().on_block_started(params)
    end,
    [vocabulary.notifications.DISPLAY] = function(_, params)
      runs().on_display(params)
    end,
    -- Pulling an image, building the environment...: shown on the runs
    -- that wait for it; Neovim's own handler still gets every message.
    ["$/progress"] = steps.handler,
  }
  if not compat.native_lenses() then
    -- The server asks for fresh lenses after a run (an outcome lens such as
    -- "✓ 0.12 s" appears); lenses.lua asks, and shows what it should. A
    -- request needs an answer: null.
    by_method["workspace/codeLens/refresh"] = function(_, _, ctx)
      for bufnr in pairs(buffers_of_client[ctx.client_id] or {}) do
        require("cellbox.lenses").refresh(bufnr)
      end
      return vim.NIL
    end
  end
  -- The server's own messages (the engine is down, a setting was left
  -- out...), through vim.notify like the plugin's, and remembered so that a
  -- failed run does not say the same again.
  by_method["window/showMessage"] = function(_, params)
    said[params.message] = compat.uv.hrtime()
    vim.notify(params.message, MESSAGE_LEVELS[params.type] or vim.log.levels.INFO)
  end
  return by_method
end

local function forget(client_id)
  local root = root_of_client[client_id]
  if root and client_of_root[root] == client_id then
    client_of_root[root] = nil
  end
  root_of_client[client_id] = nil
  ready[client_id] = nil
  waiting[client_id] = nil
  buffers_of_client[client_id] = nil
  steps.forget(client_id)
end

local function server_config(root)
  local options = config.options
  return {
    name = "cellbox",
    cmd = options.cmd,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    init_options = options.init_options,
    capabilities = compat.capabilities(),
    handlers = handlers(),
    -- A "▶ Run" lens runs through the plugin, so the run is drawn like any other.
    commands = {
      [vocabulary.commands.EXECUTE] = function(command, context)
        require("cellbox.runs").run_lens(context.bufnr, command.arguments[1])
      end,
    },
    get_language_id = function(_, filetype)
      return LANGUAGE_IDS[filetype] or filetype
    end,
    on_init = function(client)
      ready[client.id] = true
      -- After this callback Neovim sends didOpen for the attached buffers;
      -- commands queued meanwhile must follow it.
      vim.schedule(function()
        local queued = waiting[client.id] or {}
        waiting[client.id] = nil
        for _, callback in ipairs(queued) do
          callback(client)
        end
      end)
    end,
    on_attach = function(_, bufnr)
      require("cellbox.lenses").enable(bufnr, augroup)
    end,
    on_exit = function(code, signal, client_id)
      -- Called from libuv, outside the main loop: no API calls here.
      vim.schedule(function()
        forget(client_id)
        require("cellbox.runs").on_server_exit(client_id, code, signal)
      end)
    end,
  }
end

local function file_of(bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  if name == "" or vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  return name
end

--- Attach `bufnr` to its root's server, starting that server if needed.
--- Returns the client id, or nil and why not.
function M.attach(bufnr)
  bufnr = bufnr == 0 and api.nvim_get_current_buf() or bufnr
  local file = file_of(bufnr)
  if not file then
    return nil, "this buffer is not a file"
  end
  local root = M.root_of(file)
  local client_id = client_of_root[root]
  if client_id and vim.lsp.get_client_by_id(client_id) == nil and ready[client_id] then
    forget(client_id) -- it has gone away
    client_id = nil
  end
  if client_id then
    vim.lsp.buf_attach_client(bufnr, client_id)
  else
    local message
    client_id, message = compat.start_client(server_config(root), bufnr)
    if not client_id then
      return nil, ("could not start %s: %s"):format(table.concat(config.options.cmd, " "), message)
    end
    client_of_root[root] = client_id
    root_of_client[client_id] = root
  end
  buffers_of_client[client_id] = buffers_of_client[client_id] or {}
  buffers_of_client[client_id][bufnr] = true
  return client_id
end

--- The client id and root of `bufnr`'s server, attaching it if needed.
function M.of_buffer(bufnr)
  local client_id, message = M.attach(bufnr)
  if not client_id then
    return nil, message
  end
  return client_id, root_of_client[client_id]
end

--- The client id of the server `bufnr` is attached to, else nil (without attaching it).
function M.attached(bufnr)
  for client_id, buffers in pairs(buffers_of_client) do
    if buffers[bufnr] then
      return client_id
    end
  end
  return nil
end

--- Call `callback(client)` once the client has been initialized.
function M.when_ready(client_id, callback)
  if ready[client_id] then
    local client = vim.lsp.get_client_by_id(client_id)
    if client then
      callback(client)
      return
    end
  end
  waiting[client_id] = waiting[client_id] or {}
  table.insert(waiting[client_id], callback)
end

--- Send a cellbox command for `bufnr`'s workspace; `on_answer(err, result)`.
function M.command(bufnr, command, argument, on_answer)
  local client_id, root_or_message = M.of_buffer(bufnr)
  if not client_id then
    on_answer({ message = root_or_message })
    return
  end
  M.when_ready(client_id, function(client)
    local sent = compat.request(client, "workspace/executeCommand", {
      command = command,
      arguments = { argument },
    }, function(err, result)
      on_answer(err, result)
    end, bufnr)
    if not sent then
      -- The server is going away: no answer will come; say so now.
      on_answer({ message = "the cellbox server has stopped" })
    end
  end)
  return client_id, root_or_message
end

--- Stop every server (used by tests and on reconfiguration).
function M.stop_all()
  for client_id in pairs(root_of_client) do
    local client = vim.lsp.get_client_by_id(client_id)
    if client then
      compat.stop(client)
    end
  end
end

return M
