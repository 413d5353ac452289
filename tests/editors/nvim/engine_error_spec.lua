-- The engine does not answer (the server's DOCKER_HOST points nowhere): the
-- person is told once, and nothing is left running under the block.
local H = require("helpers")

H.run(function()
  H.setup()
  local bufnr = H.open("notes.md")
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.cmd("CellboxRun")
  H.wait_for("the engine's error", 60000, bufnr, function()
    for _, message in ipairs(H.messages()) do
      if message.level == vim.log.levels.ERROR then
        return true
      end
    end
  end)
  H.wait_for_idle(bufnr, 10000)
  -- Time for a second telling of the same error to arrive, if one comes.
  vim.wait(1500)
  H.note("results", H.results(bufnr))
  H.note("printed", vim.fn.execute("messages"))
end)
