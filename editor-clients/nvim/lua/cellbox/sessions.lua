--- Sessions (session mode): a document's Python blocks run in one Jupyter
--- kernel in the sandbox, which keeps their state. The server names a
--- document's session by the document's path and reports it in each block's
--- result (`session`) and in `cellbox.status` (state idle/busy/dead, blocks
--- run). This keeps, per buffer, the session its blocks ran in and what the
--- server last said of it, for the status line and :CellboxRestartSession.
local clients = require("cellbox.clients")
local vocabulary = require("cellbox.vocabulary")

local api = vim.api
local M = {}

local session_of_buffer = {} -- bufnr -> the session its last block with one ran in
local infos = {} -- session name -> what cellbox.status said of it
local names_of_client = {} -- client id -> the session names its last status answer listed
local asked = 0 -- status requests sent
local applied = 0 -- the newest request whose answer is in `infos`

--- A block of `bufnr` ran in session `name`.
function M.remember(bufnr, name)
  session_of_buffer[bufnr] = name
end

--- Whether a block of `bufnr` ran in a session.
function M.known(bufnr)
  return session_of_buffer[bufnr] ~= nil
end

--- The session of `bufnr`: the one its blocks ran in, else the one the
--- server would give it (named by the document's path).
function M.name_of(bufnr)
  return session_of_buffer[bufnr] or api.nvim_buf_get_name(bufnr)
end

--- Take in a `cellbox.status` answer of `client_id`'s server.
--- Two kernels of one session as one: busy if either is, dead if both are;
--- their blocks and memory added up.
local function merged(one, other)
  local state = (one.state == "busy" or other.state == "busy") and "busy"
    or (one.state == "dead" and other.state == "dead") and "dead"
    or "idle"
  local memory = nil
  if type(one.memoryBytes) == "number" or type(other.memoryBytes) == "number" then
    memory = (tonumber(one.memoryBytes) or 0) + (tonumber(other.memoryBytes) or 0)
  end
  return {
    name = one.name,
    state = state,
    blocksRun = (tonumber(one.blocksRun) or 0) + (tonumber(other.blocksRun) or 0),
    memoryBytes = memory,
  }
end

function M.update(client_id, answer)
  for _, name in ipairs(names_of_client[client_id] or {}) do
    infos[name] = nil
  end
  -- A session has a kernel per language (Python, bash): one line for all,
  -- merged within this answer only (what earlier answers said is replaced).
  local fresh, names = {}, {}
  for _, sandbox in ipairs(answer.sandboxes or {}) do
    for _, session in ipairs(sandbox.sessions or {}) do
      if fresh[session.name] then
        fresh[session.name] = merged(fresh[session.name], session)
      else
        fresh[session.name] = session
        table.insert(names, session.name)
      end
    end
  end
  for name, session in pairs(fresh) do
    infos[name] = session
  end
  names_of_client[client_id] = names
end

--- Ask the server of `bufnr` for its sessions' state again, when a block of
--- `bufnr` ran in a session (script mode asks nothing); then redraw the
--- status lines. Answers that come after a newer one are dropped.
function M.refresh(bufnr)
  if not M.known(bufnr) then
    return
  end
  asked = asked + 1
  local number = asked
  local client_id = clients.command(bufnr, vocabulary.commands.STATUS, vim.empty_dict(), function(err, answer)
    if err or number < applied then
      return
    end
    applied = number
    M.update(client_id, answer)
    vim.schedule(function()
      vim.cmd("redrawstatus!")
    end)
  end)
end

--- What the server last said of `bufnr`'s session, else nil.
function M.info(bufnr)
  if not M.known(bufnr) then
    return nil
  end
  return infos[M.name_of(bufnr)]
end

--- The status line's words for `bufnr`: "cellbox: session idle · 2 blocks";
--- "cellbox: no session" once the server no longer has the one its blocks
--- ran in (the sandbox was restarted or stopped); "" when none of its blocks
--- ran in a session.
function M.statusline(bufnr)
  if not M.known(bufnr) then
    return ""
  end
  local info = M.info(bufnr)
  if not info then
    return "cellbox: no session"
  end
  local words = "cellbox: session " .. tostring(info.state)
  if type(info.blocksRun) == "number" then
    words = words .. (" · %d block%s"):format(info.blocksRun, info.blocksRun == 1 and "" or "s")
  end
  if type(info.memoryBytes) == "number" then
    words = words .. (" · %.0f MB"):format(info.memoryBytes / 1e6)
  end
  return words
end

--- Drop what is kept for a buffer that is gone.
function M.forget(bufnr)
  session_of_buffer[bufnr] = nil
end

return M
