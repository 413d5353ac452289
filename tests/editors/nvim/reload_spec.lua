-- The file changes on disk and is read again (:e!): each result moves with
-- its block, a running block's output keeps coming under it, and a result
-- whose block was changed on disk goes.
local H = require("helpers")

local function write(lines)
  local file = assert(io.open(H.workspace .. "/reload.md", "w"))
  file:write(table.concat(lines, "\n") .. "\n")
  file:close()
end

local ONE = { "```python", 'print("block one")', "```" }
local TWO = { "```bash", "echo two-start", "sleep 2", "echo two-end", "```" }

H.run(function()
  H.setup()
  local bufnr = H.open("reload.md")

  -- Block one is rows 0-2, block two rows 4-8.
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.cmd("CellboxRun")
  H.wait_for_outcome(bufnr, 2)
  vim.api.nvim_win_set_cursor(0, { 6, 0 })
  vim.cmd("CellboxRun")
  H.wait_for_running_text(bufnr, 8, "two-start")

  -- Three lines of prose come in above both blocks, on disk.
  write(vim.list_extend(vim.list_extend({ "# Title", "", "Prose." }, ONE), vim.list_extend({ "" }, TWO)))
  vim.cmd("edit!")
  H.note("reloaded", H.results(bufnr))
  H.wait_for_outcome(bufnr, 11)
  H.note("finished", H.results(bufnr))

  -- Block one's code changes on disk: its result no longer belongs to it.
  write(vim.list_extend({ "# Title", "", "Prose.", "```python", 'print("changed")', "```", "" }, TWO))
  vim.cmd("edit!")
  H.note("changed", H.results(bufnr))
end)
