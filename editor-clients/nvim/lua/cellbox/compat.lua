--- Every difference between Neovim 0.7 (Debian 12's, which CI tests) and
--- current releases that the plugin meets, in one place, so that the other
--- modules call one function whatever the version.
local M = {}

---@param version string e.g. "0.11"
local function has(version)
  return vim.fn.has("nvim-" .. version) == 1
end

--- libuv: `vim.loop` everywhere, `vim.uv` (its new name) since 0.10.
M.uv = vim.uv or vim.loop

--- Start a language server and attach `bufnr` to it; returns the client id,
--- or nil and a message when the server cannot be spawned.
function M.start_client(config, bufnr)
  local ok, id
  if has("0.10") then
    -- vim.lsp.start_client is deprecated from 0.11; vim.lsp.start attaches
    -- the buffer itself. The caller already knows there is no client for
    -- this root, so never reuse one.
    ok, id = pcall(vim.lsp.start, config, {
      bufnr = bufnr,
      reuse_client = function()
        return false
      end,
    })
  else
    -- 0.7: no vim.lsp.start; start, then attach.
    ok, id = pcall(vim.lsp.start_client, config)
    if ok and id then
      vim.lsp.buf_attach_client(bufnr, id)
    end
  end
  if not ok then
    return nil, tostring(id)
  end
  if not id then
    return nil, "could not spawn " .. table.concat(config.cmd, " ")
  end
  return id
end

--- client.request(...) on 0.7-0.10; client:request(...) since 0.11, where
--- the dot form is deprecated.
function M.request(client, method, params, handler, bufnr)
  if has("0.11") then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- Stop a client: client.stop() before 0.11, client:stop() since.
function M.stop(client)
  if has("0.11") then
    return client:stop()
  end
  return client.stop()
end

--- Client capabilities. Neovim 0.7 does not declare
--- `workspace/codeLens/refresh`; we handle it (see clients.lua), so say so,
--- and the server then asks us to refresh the lenses after each run.
function M.capabilities()
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.workspace = capabilities.workspace or {}
  if capabilities.workspace.codeLens == nil then
    capabilities.workspace.codeLens = { refreshSupport = true }
  end
  return capabilities
end

--- True on 0.12+, where vim.lsp.codelens.enable() keeps a buffer's lenses
--- (and answers `workspace/codeLens/refresh`); before, lenses.lua does.
function M.native_lenses()
  return vim.lsp.codelens.enable ~= nil
end

return M
