-- A `# %%` Python file: :CellboxRunAll runs the cells in order and stops at
-- the failing one; a long output is capped under its cell; the failing
-- cell's error comes back as a diagnostic on the line that raised.
local H = require("helpers")

H.run(function()
  -- Mappings turned off, one rebound: only that one is made.
  H.setup({ keymaps = { run = false, run_all = false, cancel = false, output = false, clear = "<leader>X" } })
  local bufnr = H.open("cells.py")
  H.note("mappings", { run = vim.fn.maparg("<localleader>r", "n"), clear = vim.fn.maparg("<leader>X", "n") })

  vim.cmd("CellboxRunAll")
  -- The last cell (rows 7-11) fails; its result hangs below its last line.
  H.wait_for_outcome(bufnr, 11)
  H.wait_for_idle(bufnr)
  H.note("results", H.results(bufnr))

  H.wait_for("the traceback's diagnostic", 30000, bufnr, function()
    return #H.diagnostics(bufnr) > 0
  end)
  H.note("diagnostics", H.diagnostics(bufnr))

  -- The capped cell's whole output.
  vim.api.nvim_win_set_cursor(0, { 6, 0 })
  vim.cmd("CellboxOutput")
  H.note("full_output", H.lines(vim.api.nvim_get_current_buf()))
  vim.cmd("close")

  -- Fixing the cell and running it again clears its diagnostic.
  vim.api.nvim_buf_set_lines(bufnr, 11, 12, false, { "print(divide(5))" })
  vim.api.nvim_win_set_cursor(0, { 12, 0 })
  vim.cmd("CellboxRun")
  H.wait_for_idle(bufnr)
  H.wait_for("the diagnostic to go", 30000, bufnr, function()
    return #H.diagnostics(bufnr) == 0
  end)
  H.note("fixed", H.text_at(bufnr, 11))
end)
