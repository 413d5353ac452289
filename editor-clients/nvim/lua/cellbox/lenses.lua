--- The server's code lenses in a buffer: "▶ Run" on each block, and the
--- outcome of its last run ("✓ 0.12 s", "⊘ cancelled"). The plugin asks for
--- them itself and shows a block's outcome lens only while its finished
--- result is shown: not while the block runs again, not after :CellboxClear.
--- Neovim 0.12+ keeps lenses with vim.lsp.codelens.enable(), which takes no
--- filter: there the server's lenses are shown as they come.
local clients = require("cellbox.clients")
local compat = require("cellbox.compat")
local results = require("cellbox.results")
local vocabulary = require("cellbox.vocabulary")

local api = vim.api
local M = {}

local asking = {} -- bufnr -> true while a request is out; "again" when asked meanwhile

local function is_outcome(lens)
  local title = lens.command and lens.command.title or ""
  for _, glyph in pairs(vocabulary.glyphs) do
    if title:sub(1, #glyph) == glyph then
      return true
    end
  end
  return false
end

--- The lenses of `bufnr` to show, of those the server sent.
function M.shown(bufnr, lenses)
  local kept = {}
  for _, lens in ipairs(lenses or {}) do
    local argument = lens.command and lens.command.arguments and lens.command.arguments[1]
    local row = type(argument) == "table" and type(argument.position) == "table" and argument.position.line
    if not is_outcome(lens) or (row and results.finished_at(bufnr, row)) then
      table.insert(kept, lens)
    end
  end
  return kept
end

local function ask(bufnr)
  local client_id = clients.of_buffer(bufnr)
  if not client_id then
    asking[bufnr] = nil
    return
  end
  clients.when_ready(client_id, function(client)
    local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) } }
    local sent = compat.request(client, "textDocument/codeLens", params, function(err, lenses, ctx)
      local again = asking[bufnr] == "again"
      asking[bufnr] = nil
      if api.nvim_buf_is_loaded(bufnr) then
        ctx.bufnr, ctx.client_id = bufnr, client.id
        vim.lsp.codelens.on_codelens(err, err == nil and M.shown(bufnr, lenses) or nil, ctx)
      end
      if again then
        M.refresh(bufnr)
      end
    end, bufnr)
    if not sent then
      asking[bufnr] = nil
    end
  end)
end

--- Ask for a buffer's lenses again. One request at a time per buffer; one
--- asked for meanwhile follows it, so that the latest state is what shows.
function M.refresh(bufnr)
  if compat.native_lenses() or not api.nvim_buf_is_loaded(bufnr) then
    return
  end
  if asking[bufnr] then
    asking[bufnr] = "again"
    return
  end
  asking[bufnr] = true
  ask(bufnr)
end

--- Keep a buffer's code lenses shown and up to date: on open and after edits.
function M.enable(bufnr, group)
  if compat.native_lenses() then
    vim.lsp.codelens.enable(true, { bufnr = bufnr })
    return
  end
  M.refresh(bufnr)
  api.nvim_create_autocmd({ "BufEnter", "InsertLeave", "TextChanged" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.refresh(bufnr)
    end,
  })
end

return M
