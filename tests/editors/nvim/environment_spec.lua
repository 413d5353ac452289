-- A workspace whose declared environment is built at its first run (the
-- test's settings, given as the client's own: trusted): while the build
-- goes, the run's "running…" line and the status line say which step; then
-- the block's output, and the line and status line are back to normal.
local H = require("helpers")

H.run(function()
  H.setup({ init_options = vim.json.decode(assert(os.getenv("CELLBOX_TEST_INIT_OPTIONS"))) })
  local bufnr = H.open("notes.md")

  -- The block's code is row 1 (fences on rows 0 and 2): the run waits under row 1.
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.cmd("CellboxRun")
  H.note("building", H.wait_for_running_text(bufnr, 1, "building environment (step", 120000))
  -- The line follows the build's steps, to the slow one.
  H.note("slow_step", H.wait_for_running_text(bufnr, 1, "RUN sleep 3", 60000))
  H.note("statusline_building", require("cellbox").statusline())

  H.note("final", H.wait_for_outcome(bufnr, 2, 120000))
  H.note("results", H.results(bufnr))
  H.note("statusline_after", require("cellbox").statusline())
end)
