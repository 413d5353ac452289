-- A block's lens outcome belongs to the result shown under it: it goes
-- while the block runs again, and with :CellboxClear.
local H = require("helpers")

local function outcome_lenses(bufnr)
  local found = {}
  for _, lens in ipairs(H.lenses(bufnr)) do
    if not lens.title:find("▶", 1, true) then
      table.insert(found, lens.title)
    end
  end
  return found
end

local function wait_for_lenses(what, bufnr, predicate)
  return H.wait_for(what, 15000, bufnr, function()
    local titles = outcome_lenses(bufnr)
    return predicate(titles) and titles
  end)
end

H.run(function()
  H.setup()
  local bufnr = H.open("labels.md")

  -- The block is rows 0-3: its result hangs from row 3.
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.cmd("CellboxRun")
  H.wait_for_running_text(bufnr, 3, "started")
  vim.cmd("CellboxCancel")
  H.wait_for_outcome(bufnr, 3)
  H.note("cancelled", wait_for_lenses("the cancelled lens", bufnr, function(titles)
    return vim.tbl_contains(titles, "⊘ cancelled")
  end))

  -- It runs again: its old outcome leaves the lens while it runs.
  vim.cmd("CellboxRun")
  H.wait_for_running_text(bufnr, 3, "started")
  H.note("running", wait_for_lenses("no outcome lens while the block runs", bufnr, function(titles)
    return #titles == 0
  end))
  H.note("still_running", H.text_at(bufnr, 3))
  vim.cmd("CellboxCancel")
  H.wait_for_outcome(bufnr, 3)
  H.note("cancelled_again", wait_for_lenses("the cancelled lens again", bufnr, function(titles)
    return vim.tbl_contains(titles, "⊘ cancelled")
  end))

  -- :CellboxClear takes the outcome off the lens too.
  vim.cmd("CellboxClear")
  H.note("cleared", wait_for_lenses("no outcome lens after :CellboxClear", bufnr, function(titles)
    return #titles == 0
  end))
  H.note("cleared_results", H.results(bufnr))
  H.note("run_lenses", H.lenses(bufnr))
end)
