-- Against the stub server (tests/editors/stub_server.py), which records what
-- it receives: :CellboxTrust sends cellbox.trust for the buffer's workspace
-- and shows what was allowed; the server's approval question
-- (window/showMessageRequest) reaches the user through Neovim's own handler,
-- which the plugin leaves alone, and the choice typed goes back to it.
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
  local bufnr = H.open("notes.md")
  H.wait_for("the server", 30000, bufnr, function()
    return #(vim.lsp.get_clients or vim.lsp.get_active_clients)() > 0
  end)
  local client = (vim.lsp.get_clients or vim.lsp.get_active_clients)()[1]
  H.note("prompt_handler_overridden", client.handlers["window/showMessageRequest"] ~= nil)

  vim.cmd("CellboxTrust")
  H.note("trusted", H.wait_for("the trust's message", 30000, bufnr, message_containing("allowed for")))

  -- The stub asks before it answers a run. Neovim's handler lists the
  -- actions with inputlist(); type the number as a user would.
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.api.nvim_feedkeys("1\r", "t", false)
  vim.cmd("CellboxRun")
  H.note("allowed", H.wait_for_outcome(bufnr, 1, 30000))

  vim.api.nvim_feedkeys("2\r", "t", false)
  vim.cmd("CellboxRun")
  H.wait_for("the second answer", 30000, bufnr, function()
    local text = H.text_at(bufnr, 1)
    return text and text:find("Not now", 1, true)
  end)
  H.note("not_now", H.text_at(bufnr, 1))
  -- What Neovim printed of the question (0.7 prints the message, then lists the actions).
  H.note("printed", vim.fn.execute("messages"))
end)
