--- Rich outputs of a block (session mode): what a Jupyter kernel displayed
--- (a figure, a DataFrame's table...), as the server sends them in
--- `cellbox/display` and in a block's `displays`: a MIME bundle (`data`) and
--- each type saved as a file on the server's side (`files`). Text shows
--- inline already (the server puts each display's text/plain form in the
--- block's output); what text cannot show gets one line naming its file,
--- which :CellboxOpen opens, and a PNG is drawn with image.nvim when that
--- is installed.
local config = require("cellbox.config")

local api = vim.api
local M = {}

-- The types worth a line, richest first, and the glyph of each. A display's
-- line names the first of these it has a file for.
local SHOWN = {
  { "image/png", "▣" },
  { "image/jpeg", "▣" },
  { "image/svg+xml", "▣" },
  { "text/html", "▦" },
  { "text/markdown", "◇" },
  { "application/json", "◇" },
}

local function files_of(item)
  return type(item) == "table" and type(item.files) == "table" and item.files or {}
end

--- The MIME type and file of `item` (a display) to show and open, else nil
--- (a display with only text: it is in the output already).
function M.file_of(item)
  local files = files_of(item)
  for _, shown in ipairs(SHOWN) do
    local path = files[shown[1]]
    if type(path) == "string" and path ~= "" then
      return shown[1], path, shown[2]
    end
  end
  return nil
end

--- The displays of `list` that have a file to open: { mime, path, glyph, item } each.
function M.openable(list)
  local found = {}
  for _, item in ipairs(list or {}) do
    local mime, path, glyph = M.file_of(item)
    if mime then
      table.insert(found, { mime = mime, path = path, glyph = glyph, item = item })
    end
  end
  return found
end

--- The words of an openable display's line, e.g.
--- "▣ image/png · :CellboxOpen · ~/.local/state/cellbox/…/display.png"
--- (the path last: a long one is cut at the window's edge, not the rest).
function M.label(entry, number, count)
  local kind = entry.mime
  local data = type(entry.item.data) == "table" and entry.item.data or {}
  if entry.mime == "text/html" and type(data["text/html"]) == "string" and data["text/html"]:find("<table", 1, true) then
    kind = "table (text/html)"
  end
  local how = count > 1 and (":CellboxOpen %d"):format(number) or ":CellboxOpen"
  return ("%s %s · %s · %s"):format(entry.glyph, kind, how, vim.fn.fnamemodify(entry.path, ":~"))
end

--- Open `path` (of type `mime`) with the configured opener.
function M.open(path, mime)
  local opener = config.options.open
  if type(opener) == "function" then
    return opener(path, mime)
  end
  if opener == nil and vim.ui.open then
    return vim.ui.open(path)
  end
  local command = opener and vim.deepcopy(opener) or { vim.fn.has("mac") == 1 and "open" or "xdg-open" }
  table.insert(command, path)
  local ok, job = pcall(vim.fn.jobstart, command, { detach = true })
  if not ok or job <= 0 then
    vim.notify(("cellbox: could not run %s"):format(table.concat(command, " ")), vim.log.levels.ERROR)
  end
end

-- image.nvim (https://github.com/3rd/image.nvim), when installed: PNGs drawn
-- under their block. Optional; any error of it only loses the picture.
local function image_api()
  if not config.options.display.images then
    return nil
  end
  local ok, image = pcall(require, "image")
  if ok and type(image) == "table" and type(image.from_file) == "function" then
    return image
  end
  return nil
end

--- Clear the pictures drawn for `result`.
function M.clear_images(result)
  for _, picture in ipairs(result.images or {}) do
    pcall(function()
      picture:clear()
    end)
  end
  result.images = nil
end

--- Draw `result`'s PNG displays under row `anchor` with image.nvim (once
--- each), when it is installed and the buffer is in a window.
function M.draw_images(result, anchor)
  local image = image_api()
  if not image or not api.nvim_buf_is_valid(result.bufnr) then
    return
  end
  result.drawn_images = result.drawn_images or {}
  local window = vim.fn.bufwinid(result.bufnr)
  if window == -1 then
    return
  end
  for _, entry in ipairs(M.openable(result.displays)) do
    if entry.mime == "image/png" and not result.drawn_images[entry.path] then
      result.drawn_images[entry.path] = true
      local ok, picture = pcall(image.from_file, entry.path, {
        window = window,
        buffer = result.bufnr,
        x = 0,
        y = anchor + 1, -- the row below the block's last, as image.nvim's users place one under a line
        inline = true,
        with_virtual_padding = true,
      })
      if ok and picture then
        pcall(function()
          picture:render()
        end)
        result.images = result.images or {}
        table.insert(result.images, picture)
      end
    end
  end
end

return M
