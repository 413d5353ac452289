-- A block that prints over three seconds: its output shows up under it
-- while it still runs, with a moving "running…" clock, before the outcome.
local H = require("helpers")

local function running_seconds(text)
  return tonumber(text and text:match("running… ([%d.]+) s"))
end

H.run(function()
  H.setup()
  local bufnr = H.open("stream.md")

  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.cmd("CellboxRun")
  -- The block is rows 1-5 (fences on rows 0 and 6): its result hangs from row 6.
  local partial = H.wait_for_running_text(bufnr, 6, "tick 1")
  H.note("partial", partial)
  local clock = running_seconds(partial)
  local later = H.wait_for("the running clock to move", 10000, bufnr, function()
    local text = H.text_at(bufnr, 6)
    local now = running_seconds(text)
    return now and clock and now > clock and text
  end)
  H.note("later", later)

  H.note("final", H.wait_for_outcome(bufnr, 6))
end)
