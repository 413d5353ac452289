-- A shell file with a slow cell: :CellboxCancel stops it; :CellboxRestart
-- kills it too and leaves a working sandbox; :CellboxStatus and :CellboxStop
-- say what they did.
local H = require("helpers")

local function message_containing(needle)
  return function()
    for _, message in ipairs(H.messages()) do
      if message.message:find(needle, 1, true) then
        return message.message
      end
    end
  end
end

H.run(function()
  H.setup()
  local bufnr = H.open("slow.sh")

  -- Nothing to cancel yet.
  vim.cmd("CellboxCancel")
  H.note("cancel_idle", H.wait_for("a message", 5000, bufnr, message_containing("no run")))

  -- The slow cell is rows 0-3: its result hangs from row 3.
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.cmd("CellboxRun")
  H.wait_for_running_text(bufnr, 3, "started")
  vim.cmd("CellboxCancel")
  H.note("cancelled", H.wait_for_outcome(bufnr, 3))

  vim.cmd("CellboxRun")
  H.wait_for_running_text(bufnr, 3, "started")
  vim.cmd("CellboxRestart")
  H.note("restarted", H.wait_for_outcome(bufnr, 3))
  H.note("restart_message", H.wait_for("the restart's message", 30000, bufnr, message_containing("restarted")))

  -- The sandbox works after the restart: the quick cell (rows 4-5).
  vim.api.nvim_win_set_cursor(0, { 6, 0 })
  vim.cmd("CellboxRun")
  H.note("after_restart", H.wait_for_outcome(bufnr, 5))

  vim.cmd("CellboxStatus")
  H.note("status", H.wait_for("the status", 30000, bufnr, message_containing(H.workspace)))
  vim.cmd("CellboxStop")
  H.note("stop", H.wait_for("the stop's message", 30000, bufnr, message_containing("stopped")))
end)
