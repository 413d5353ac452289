--- The server's slow steps before a block can run (pulling an image,
--- building the workspace's environment, starting a session's kernel), as
--- its work-done progress tells them: what each client's server is doing
--- now. A run waiting for its first block shows it on its "running…" line
--- (display.lua), and the status line too (init.lua).
---
--- It sees `$/progress` through the client's own handler, which then hands
--- every message to the global one: Neovim's own progress (the
--- LspProgressUpdate event on 0.7-0.9, LspProgress and vim.lsp.status()
--- since 0.10) and other plugins still see all of it.
local M = {}

local going = {} -- client id -> list of { token, text }, oldest first

local function find(client_id, token)
  for index, step in ipairs(going[client_id] or {}) do
    if step.token == token then
      return index, step
    end
  end
  return nil
end

local function changed()
  -- A status line that shows the step is drawn again with it.
  vim.schedule(function()
    vim.cmd("redrawstatus!")
  end)
end

--- Take in one `$/progress` message of `client_id`.
function M.on_progress(client_id, params)
  local value = type(params) == "table" and params.value
  if type(value) ~= "table" then
    return
  end
  if value.kind == "begin" then
    -- A run's own progress (the block and its clock) is cancellable, and
    -- the blocks already show it; a step is not.
    if value.cancellable then
      return
    end
    going[client_id] = going[client_id] or {}
    table.insert(going[client_id], { token = params.token, text = value.message or value.title })
    changed()
    return
  end
  local index, step = find(client_id, params.token)
  if not index then
    return
  end
  if value.kind == "end" then
    table.remove(going[client_id], index)
    changed()
  elseif value.kind == "report" and type(value.message) == "string" then
    step.text = value.message
    changed()
  end
end

--- The `$/progress` handler for a client's config: notes the step, then
--- calls the global handler (looked up now: a plugin may have replaced it).
function M.handler(err, params, ctx, config)
  M.on_progress(ctx.client_id, params)
  local default = vim.lsp.handlers["$/progress"]
  if default then
    return default(err, params, ctx, config)
  end
end

--- What `client_id`'s server is doing now before a block can run, e.g.
--- "building environment (step 3/6): RUN sleep 3"; nil when nothing.
function M.current(client_id)
  local steps = client_id and going[client_id]
  local latest = steps and steps[#steps]
  return latest and latest.text or nil
end

--- The server of `client_id` is gone: so are its steps.
function M.forget(client_id)
  going[client_id] = nil
end

return M
