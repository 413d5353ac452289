-- A block at the bottom of the window: its output, which would stream below
-- the window, shows in a float at the window's bottom while it runs and
-- while the cursor stays in the block; moving away takes the float away.
local H = require("helpers")

H.run(function()
  H.setup()
  local bufnr = H.open("long.md")
  -- Forty lines of prose, then the block: rows 40-42, its code on row 41.
  -- The code's line at the window's bottom: the closing fence is below it.
  vim.api.nvim_win_set_cursor(0, { 42, 0 })
  vim.cmd("normal! zb")
  H.note("view", { top = vim.fn.line("w0"), bottom = vim.fn.line("w$"), height = vim.api.nvim_win_get_height(0) })
  vim.cmd("CellboxRun")
  H.wait_for_running_text(bufnr, 42, "line 3")
  H.note("running", H.wait_for("a float with the running output", 5000, bufnr, function()
    local floats = H.floats()
    local text = floats[1] and table.concat(floats[1].lines, "\n")
    return text and text:find("line 3", 1, true) and text:find("running…", 1, true) and floats
  end))
  H.note("finished_inline", H.wait_for_outcome(bufnr, 42))
  H.note("finished", H.wait_for("the float's outcome", 5000, bufnr, function()
    local floats = H.floats()
    local text = floats[1] and table.concat(floats[1].lines, "\n")
    return text and text:find("✓", 1, true) and floats
  end))

  -- The cursor leaves the block (as a user's motion would, which fires CursorMoved).
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd("doautocmd CursorMoved")
  H.note("left", H.floats())

  -- Back in the block, its fence mid-window: room for some of the lines only.
  vim.api.nvim_win_set_cursor(0, { 42, 0 })
  vim.cmd("normal! zz")
  vim.cmd("doautocmd CursorMoved")
  H.note("scrolled", H.floats())

  -- Run again with the block low in the window, two lines of room below it,
  -- and the cursor up in the prose: the float covers neither the block's
  -- lines nor the cursor's.
  local height = vim.api.nvim_win_get_height(0)
  vim.fn.winrestview({ topline = 43 - (height - 3), lnum = 42, col = 0 })
  vim.cmd("CellboxRun")
  vim.api.nvim_win_set_cursor(0, { vim.fn.line("w0") + 2, 0 })
  vim.cmd("doautocmd CursorMoved")
  local function screen_line(lnum)
    return vim.fn.screenpos(0, lnum, 1).row - vim.fn.win_screenpos(0)[1]
  end
  H.note("low_view", { first = screen_line(41), last = screen_line(43), cursor = screen_line(vim.fn.line(".")) })
  H.note("low", H.wait_for("a float while the block runs low in the window", 5000, bufnr, function()
    local floats = H.floats()
    local text = floats[1] and table.concat(floats[1].lines, "\n")
    return text and text:find("line 6", 1, true) and floats
  end))
end)
