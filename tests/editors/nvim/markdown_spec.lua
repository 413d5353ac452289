-- A Markdown file: run a Python block and a failing shell block with
-- :CellboxRun; run one again (its result is replaced, not doubled); run a
-- selection; then :CellboxOutput and :CellboxClear.
local H = require("helpers")

H.run(function()
  H.setup()
  local bufnr = H.open("notes.md")
  H.note("lines", H.lines(bufnr))
  H.note("mappings", {
    run = vim.fn.maparg("<localleader>r", "n"),
    run_visual = vim.fn.maparg("<localleader>r", "x"),
    cancel = vim.fn.maparg("<localleader>c", "n"),
  })

  -- Lenses come from the server as soon as the buffer is attached.
  H.wait_for("the Run lenses", 30000, bufnr, function()
    return #H.lenses(bufnr) >= 3
  end)
  H.note("lenses_before", H.lenses(bufnr))

  -- A scratch buffer with filetype markdown (as LSP hover windows have) is
  -- left alone: no server, no warning.
  vim.cmd("new")
  vim.bo.buftype = "nofile"
  vim.bo.filetype = "markdown"
  vim.cmd("close")

  -- The title line is in no block: the server says so, nothing is drawn.
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd("CellboxRun")
  H.wait_for("the server's refusal", 30000, bufnr, function()
    return #H.messages() > 0
  end)
  H.wait_for_idle(bufnr)
  H.note("outside", { messages = vim.deepcopy(H.messages()), results = H.results(bufnr) })

  -- The Python block: fence on line 3 (row 2), code on row 3, closing fence row 4.
  vim.api.nvim_win_set_cursor(0, { 4, 0 })
  vim.cmd("CellboxRun")
  H.wait_for_outcome(bufnr, 4)
  H.note("python", H.results(bufnr))

  -- The shell block writes to both streams, then fails.
  vim.api.nvim_win_set_cursor(0, { 8, 0 })
  vim.cmd("CellboxRun")
  H.wait_for_outcome(bufnr, 10)
  H.note("shell", H.results(bufnr))

  -- The server then refreshes the lenses with each block's last outcome.
  H.wait_for("the outcome lenses", 30000, bufnr, function()
    for _, lens in ipairs(H.lenses(bufnr)) do
      if lens.title:find("exit 3", 1, true) then
        return true
      end
    end
  end)
  H.note("lenses_after", H.lenses(bufnr))
  H.note("diagnostics", H.diagnostics(bufnr))

  -- Running the Python block again replaces its result.
  vim.api.nvim_win_set_cursor(0, { 4, 0 })
  vim.cmd("CellboxRun")
  H.wait_for_idle(bufnr)
  H.note("rerun", H.results(bufnr))

  -- A selection runs as one block in the fence's language.
  vim.cmd("14,15CellboxRun")
  H.wait_for_outcome(bufnr, 14)
  H.note("selection", H.results(bufnr))

  -- The "▶ Run" lens on the third fence (line 13) runs the whole block
  -- through the plugin; its result replaces the selection's, which it overlaps.
  vim.api.nvim_win_set_cursor(0, { 13, 0 })
  vim.lsp.codelens.run()
  H.wait_for_outcome(bufnr, 16)
  H.wait_for_idle(bufnr)
  H.note("lens_run", H.results(bufnr))

  -- The whole output of the block under the cursor, in a split.
  vim.api.nvim_win_set_cursor(0, { 8, 0 })
  vim.cmd("CellboxOutput")
  local scratch = vim.api.nvim_get_current_buf()
  H.note("full_output", {
    lines = H.lines(scratch),
    buftype = vim.bo[scratch].buftype,
    windows = #vim.api.nvim_list_wins(),
  })
  vim.cmd("close")

  vim.cmd("CellboxClear")
  H.note("cleared", H.results(bufnr))
end)
