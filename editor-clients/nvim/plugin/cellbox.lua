-- Loaded at start-up: only the :Cellbox* commands, so they exist before
-- setup() is called (they then use the defaults). Attaching buffers, the
-- mappings and the options come with require("cellbox").setup{}.
if vim.g.loaded_cellbox then
  return
end
vim.g.loaded_cellbox = true

if vim.fn.has("nvim-0.7") == 0 then
  vim.notify("cellbox needs Neovim 0.7 or later", vim.log.levels.ERROR)
  return
end

require("cellbox.commands").define()
