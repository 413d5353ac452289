--- The :Cellbox* user commands and the buffer-local mappings.
local config = require("cellbox.config")

local api = vim.api
local M = {}

-- Required when called, not at load: cellbox (init.lua) requires this module.
local function cellbox()
  return require("cellbox")
end

local COMMANDS = {
  CellboxRun = {
    function(opts)
      if opts.range > 0 then
        cellbox().run_lines(opts.line1, opts.line2)
      else
        cellbox().run()
      end
    end,
    { range = true, desc = "cellbox: run the block under the cursor, or the selected lines" },
  },
  CellboxRunAll = { function() cellbox().run_all() end, { desc = "cellbox: run every block of the buffer" } },
  CellboxCancel = { function() cellbox().cancel() end, { desc = "cellbox: cancel the buffer's latest run" } },
  CellboxRestart = { function() cellbox().restart() end, { desc = "cellbox: restart the workspace's sandbox" } },
  CellboxStop = { function() cellbox().stop() end, { desc = "cellbox: stop the workspace's sandbox" } },
  CellboxStatus = { function() cellbox().status() end, { desc = "cellbox: show the sandboxes and their state" } },
  CellboxTrust = {
    function() cellbox().trust() end,
    { desc = "cellbox: allow the loosening settings of the workspace's cellbox.toml / pyproject.toml" },
  },
  CellboxClear = { function() cellbox().clear() end, { desc = "cellbox: remove the buffer's results" } },
  CellboxOutput = { function() cellbox().output() end, { desc = "cellbox: open a block's whole output" } },
  CellboxOpen = {
    function(opts)
      local number = nil
      if opts.args ~= "" then
        number = tonumber(opts.args)
        if not number then
          vim.notify("cellbox: :CellboxOpen takes the number of an output, e.g. :CellboxOpen 2", vim.log.levels.ERROR)
          return
        end
      end
      cellbox().open(number)
    end,
    { nargs = "?", desc = "cellbox: open an image or HTML output of the block under the cursor" },
  },
  CellboxRestartSession = {
    function() cellbox().restart_session() end,
    { desc = "cellbox: restart the buffer's session (its kernel; its state is lost)" },
  },
}

function M.define()
  for name, command in pairs(COMMANDS) do
    api.nvim_create_user_command(name, command[1], command[2])
  end
end

-- action -> { modes and what they run, description }
local MAPPINGS = {
  run = { { n = "<cmd>CellboxRun<CR>", x = ":CellboxRun<CR>" }, "cellbox: run block / selection" },
  run_all = { { n = "<cmd>CellboxRunAll<CR>" }, "cellbox: run all blocks" },
  cancel = { { n = "<cmd>CellboxCancel<CR>" }, "cellbox: cancel the run" },
  output = { { n = "<cmd>CellboxOutput<CR>" }, "cellbox: whole output" },
  clear = { { n = "<cmd>CellboxClear<CR>" }, "cellbox: clear results" },
  open = { { n = "<cmd>CellboxOpen<CR>" }, "cellbox: open an image or HTML output" },
}

--- Give `bufnr` the configured mappings (once).
function M.map_keys(bufnr)
  local keymaps = config.options.keymaps
  if not keymaps or vim.b[bufnr].cellbox_mapped then
    return
  end
  vim.b[bufnr].cellbox_mapped = true
  for action, mapping in pairs(MAPPINGS) do
    local lhs = keymaps[action]
    if lhs then
      for mode, rhs in pairs(mapping[1]) do
        vim.keymap.set(mode, lhs, rhs, { buffer = bufnr, silent = true, desc = mapping[2] })
      end
    end
  end
end

return M
