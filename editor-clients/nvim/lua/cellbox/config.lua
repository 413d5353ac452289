--- The plugin's options: the defaults, and setup{}'s options merged over them.
local M = {}

M.defaults = {
  -- The server; one runs per workspace root.
  cmd = { "cellbox", "serve", "--eager" },
  -- Buffers of these filetypes get a server attached when they open.
  filetypes = { "markdown", "python", "sh" },
  -- A buffer's workspace root is the nearest folder holding one of these,
  -- else the file's own folder.
  root_markers = { "cellbox.toml", "pyproject.toml", ".git" },
  -- Sent as initializationOptions: cellbox settings in camelCase, e.g.
  -- { timeout = 30, image = "python:3-slim" }; they win over cellbox.toml.
  init_options = nil,
  -- Buffer-local mappings; false turns them all off, and false for one
  -- action turns that one off.
  keymaps = {
    run = "<localleader>r", -- normal: the block under the cursor; visual: the selection
    run_all = "<localleader>a",
    cancel = "<localleader>c",
    output = "<localleader>o",
    clear = "<localleader>x",
    open = "<localleader>v", -- an image or HTML output of the block under the cursor
  },
  display = {
    -- Output lines shown under a block; the rest is behind :CellboxOutput.
    max_lines = 20,
    -- Drawn before every line of a result, so that it reads as output, not code.
    prefix = "│ ",
    -- How often the "running… 1.2s" line is redrawn.
    tick_ms = 100,
    -- Draw PNG outputs in the buffer with image.nvim, when it is installed.
    images = true,
  },
  -- How :CellboxOpen opens an output's file: nil for the system's opener
  -- (vim.ui.open where Neovim has it, else xdg-open, or open on macOS), a
  -- command as a list (the path is added at its end), or a function(path, mime).
  open = nil,
}

M.options = vim.deepcopy(M.defaults)

-- Lists a user gives replace the defaults' instead of being merged by index.
local LISTS = { "cmd", "filetypes", "root_markers", "open" }

function M.set(user)
  user = user or {}
  -- (vim.validate's table form is deprecated in current releases and its
  -- new form does not exist on 0.7: check by hand.)
  local kinds = { cmd = "table", filetypes = "table", root_markers = "table", display = "table" }
  if user.open ~= nil and type(user.open) ~= "table" and type(user.open) ~= "function" then
    error(("cellbox.setup: open must be a list or a function, got %s"):format(type(user.open)), 3)
  end
  for key, kind in pairs(kinds) do
    if user[key] ~= nil and type(user[key]) ~= kind then
      error(("cellbox.setup: %s must be a %s, got %s"):format(key, kind, type(user[key])), 3)
    end
  end
  if user.keymaps ~= nil and type(user.keymaps) ~= "table" and type(user.keymaps) ~= "boolean" then
    error("cellbox.setup: keymaps must be a table or false", 3)
  end
  local options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), user)
  for _, key in ipairs(LISTS) do
    if user[key] ~= nil then
      options[key] = user[key]
    end
  end
  if user.keymaps == true then
    options.keymaps = vim.deepcopy(M.defaults.keymaps)
  end
  M.options = options
end

return M
