-- Runs requested right after another has ended, in fresh workspaces (each
-- its own server and a sandbox started by the first run): the next block's
-- output shows, and so does a block's own second run.
local H = require("helpers")

local function output_under(bufnr, row, needle, unlike)
  local ok = vim.wait(20000, function()
    local text = H.text_at(bufnr, row)
    return text ~= nil and text ~= unlike and text:find(needle, 1, true) ~= nil
  end, 5)
  return ok and H.text_at(bufnr, row) or vim.NIL
end

H.run(function()
  H.setup()
  local rounds = {}
  for round = 1, tonumber(os.getenv("CELLBOX_TEST_ROUNDS")) do
    -- Blocks: rows 0-2 and 4-6; requested at once, before the server is up.
    local bufnr = H.open(("round%d/notes.md"):format(round))
    vim.api.nvim_win_set_cursor(0, { 2, 0 })
    vim.cmd("CellboxRun")
    local first = H.wait_for_outcome(bufnr, 2, 120000)
    -- The moment the first run's outcome shows: the next block.
    vim.api.nvim_win_set_cursor(0, { 6, 0 })
    vim.cmd("CellboxRun")
    local second = output_under(bufnr, 6, "second ", nil)
    H.wait_for_idle(bufnr)
    -- And the first block again, the moment that one has ended.
    vim.api.nvim_win_set_cursor(0, { 2, 0 })
    vim.cmd("CellboxRun")
    local again = output_under(bufnr, 2, "first ", first)
    H.wait_for_idle(bufnr)
    table.insert(rounds, { first = first, second = second, again = again })
  end
  H.note("rounds", rounds)
end)
