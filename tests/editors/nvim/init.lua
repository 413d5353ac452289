-- The whole Neovim configuration of the tests: the plugin on the
-- runtimepath (so its plugin/ file loads as it would for a user), no swap
-- files, and the spec's helpers on package.path.
local plugin = assert(os.getenv("CELLBOX_NVIM_PLUGIN"), "CELLBOX_NVIM_PLUGIN is not set")
local specs = assert(os.getenv("CELLBOX_NVIM_SPECS"), "CELLBOX_NVIM_SPECS is not set")
vim.opt.runtimepath:prepend(plugin)
vim.opt.swapfile = false
package.path = specs .. "/?.lua;" .. package.path
