--- One block's output as it streams in: its text, split into lines whose
--- pieces remember the stream (stdout or stderr) they came from, so that a
--- line can be drawn with stderr in its own highlight. No Neovim API here.
local Output = {}
Output.__index = Output

function Output.new()
  return setmetatable({
    lines = {}, -- finished lines: each a list of { text, stream } pieces
    partial = {}, -- the line still being written (no newline yet)
    received = {}, -- every chunk as it came, for the full text
    size = 0, -- bytes received
  }, Output)
end

--- Add a chunk of a stream ("stdout" or "stderr").
function Output:append(stream, text)
  if text == nil or text == "" then
    return
  end
  table.insert(self.received, text)
  self.size = self.size + #text
  local start = 1
  while true do
    local newline = text:find("\n", start, true)
    local piece = text:sub(start, newline and newline - 1 or -1)
    if piece ~= "" then
      table.insert(self.partial, { piece, stream })
    end
    if not newline then
      return
    end
    table.insert(self.lines, self.partial)
    self.partial = {}
    start = newline + 1
  end
end

--- The server's final `output` of the block may hold what no notification
--- carried (e.g. when output arrived before we knew the block): add the part
--- not yet received, as stdout.
function Output:catch_up(full)
  if type(full) ~= "string" or #full <= self.size then
    return
  end
  if full:sub(1, self.size) == self:text() then
    self:append("stdout", full:sub(self.size + 1))
  end
end

function Output:line_count()
  return #self.lines + (#self.partial > 0 and 1 or 0)
end

--- The last `max` lines, and how many lines come before them.
function Output:tail(max)
  local total = self:line_count()
  local first = math.max(1, total - max + 1)
  local shown = {}
  for i = first, total do
    table.insert(shown, self.lines[i] or self.partial)
  end
  return shown, first - 1
end

--- Every line, the unfinished one included.
function Output:all_lines()
  local lines = {}
  for i, line in ipairs(self.lines) do
    lines[i] = line
  end
  if #self.partial > 0 then
    table.insert(lines, self.partial)
  end
  return lines
end

function Output:text()
  return table.concat(self.received)
end

return Output
