-- What the specs share: set the plugin up against the server the test
-- names, wait for what a user would see, take snapshots of it (the result
-- lines' text and highlights, diagnostics, lenses, messages), and write
-- them as JSON facts for pytest. A wait that runs out, or any Lua error,
-- ends Neovim with exit code 1 and a report saying what was awaited and
-- what the buffer showed instead.
local H = {}

local api = vim.api
local facts = { notes = {} }
local messages = {}

H.workspace = assert(os.getenv("CELLBOX_WORKSPACE"), "CELLBOX_WORKSPACE is not set")
local report_path = assert(os.getenv("CELLBOX_NVIM_REPORT"), "CELLBOX_NVIM_REPORT is not set")

-- Keep every message the plugin shows, to assert on them.
vim.notify = function(message, level)
  table.insert(messages, { message = message, level = level or vim.log.levels.INFO })
end

local function write_report(extra)
  local report = vim.tbl_extend("force", { facts = facts, messages = messages }, extra or {})
  local file = assert(io.open(report_path, "w"))
  file:write(vim.json.encode(report))
  file:close()
end

function H.setup(options)
  options = options or {}
  options.cmd = vim.json.decode(assert(os.getenv("CELLBOX_SERVER_CMD")))
  require("cellbox").setup(options)
end

--- Open a file of the workspace in the current window.
function H.open(name)
  vim.cmd("edit " .. vim.fn.fnameescape(H.workspace .. "/" .. name))
  return api.nvim_get_current_buf()
end

--- The result lines in `bufnr`: for each block with a result, the row its
--- lines hang from and each line's text and highlight groups.
function H.results(bufnr)
  local namespace = api.nvim_get_namespaces()["cellbox"]
  local shown = {}
  for _, mark in ipairs(api.nvim_buf_get_extmarks(bufnr, namespace, 0, -1, { details = true })) do
    local lines = {}
    for _, chunks in ipairs(mark[4].virt_lines or {}) do
      local text, groups = "", {}
      for _, chunk in ipairs(chunks) do
        text = text .. chunk[1]
        table.insert(groups, { chunk[1], chunk[2] })
      end
      table.insert(lines, { text = text, chunks = groups })
    end
    table.insert(shown, { row = mark[2], lines = lines })
  end
  return shown
end

--- The text of the result hanging from `row` (lines joined with newlines), or nil.
function H.text_at(bufnr, row)
  for _, result in ipairs(H.results(bufnr)) do
    if result.row == row then
      local texts = {}
      for _, line in ipairs(result.lines) do
        table.insert(texts, line.text)
      end
      return table.concat(texts, "\n")
    end
  end
  return nil
end

--- The floating windows open now: where each sits in the window it is
--- relative to, and the text it shows.
function H.floats()
  local found = {}
  for _, win in ipairs(api.nvim_list_wins()) do
    local config = api.nvim_win_get_config(win)
    if config.relative ~= "" then
      local row = config.row
      if type(row) == "table" then
        row = row[false] -- 0.7 returns { [false] = n } for a float's row and col
      end
      table.insert(found, {
        relative = config.relative,
        row = row,
        height = api.nvim_win_get_height(win),
        over_height = config.win and api.nvim_win_get_height(config.win) or vim.NIL,
        lines = api.nvim_buf_get_lines(api.nvim_win_get_buf(win), 0, -1, false),
      })
    end
  end
  return found
end

function H.diagnostics(bufnr)
  local found = {}
  for _, diagnostic in ipairs(vim.diagnostic.get(bufnr)) do
    table.insert(found, {
      line = diagnostic.lnum,
      message = diagnostic.message,
      severity = diagnostic.severity,
      source = diagnostic.source,
    })
  end
  table.sort(found, function(a, b)
    return a.line < b.line
  end)
  return found
end

function H.lenses(bufnr)
  local found = {}
  local lenses
  if not vim.lsp.codelens.enable then
    lenses = vim.lsp.codelens.get(bufnr)
  else
    -- Releases with codelens.enable() take a filter and return { client_id, lens } items.
    lenses = vim.tbl_map(function(item)
      return item.lens
    end, vim.lsp.codelens.get({ bufnr = bufnr }))
  end
  for _, lens in ipairs(lenses) do
    local title = lens.command and lens.command.title or ""
    table.insert(found, { line = lens.range.start.line, title = title })
  end
  table.sort(found, function(a, b)
    return a.line < b.line or (a.line == b.line and a.title < b.title)
  end)
  return found
end

function H.lines(bufnr)
  return api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

--- The messages shown so far ({ message, level }).
function H.messages()
  return messages
end

--- Record a fact under `name` for pytest.
function H.note(name, value)
  facts[name] = value
end

--- Wait up to `timeout_ms` for `predicate()` to return a true value and
--- return it; else end the test, saying `what` was awaited and showing `bufnr`.
function H.wait_for(what, timeout_ms, bufnr, predicate)
  local value
  local ok = vim.wait(timeout_ms, function()
    value = predicate()
    return value and true or false
  end, 20)
  if not ok then
    error(("timed out after %d ms waiting for %s; the buffer showed: %s; diagnostics: %s"):format(
      timeout_ms,
      what,
      vim.inspect(bufnr and H.results(bufnr) or {}),
      vim.inspect(bufnr and H.diagnostics(bufnr) or {})
    ), 0)
  end
  return value
end

--- Wait for the result at `row` to contain `needle` (plain text) and return its text.
function H.wait_for_text(bufnr, row, needle, timeout_ms)
  return H.wait_for(("%q in the result under line %d"):format(needle, row + 1), timeout_ms or 60000, bufnr, function()
    local text = H.text_at(bufnr, row)
    return text and text:find(needle, 1, true) and text
  end)
end

--- Like wait_for_text, while the block still runs (not an older result's text).
function H.wait_for_running_text(bufnr, row, needle, timeout_ms)
  return H.wait_for(("%q in the running result under line %d"):format(needle, row + 1), timeout_ms or 60000, bufnr, function()
    local text = H.text_at(bufnr, row)
    return text and text:find(needle, 1, true) and text:find("running…", 1, true) and text
  end)
end

--- Wait for the result at `row` to show an outcome (the run has ended) and return its text.
function H.wait_for_outcome(bufnr, row, timeout_ms)
  return H.wait_for(("an outcome under line %d"):format(row + 1), timeout_ms or 60000, bufnr, function()
    local text = H.text_at(bufnr, row)
    if not text or text:find("running…", 1, true) then
      return nil
    end
    for _, icon in pairs(require("cellbox.vocabulary").glyphs) do
      if text:find(icon, 1, true) then
        return text
      end
    end
  end)
end

--- Wait until nothing in `bufnr` shows "running…" (every run has ended).
function H.wait_for_idle(bufnr, timeout_ms)
  H.wait_for("every run to end", timeout_ms or 60000, bufnr, function()
    for _, result in ipairs(H.results(bufnr)) do
      for _, line in ipairs(result.lines) do
        if line.text:find("running…", 1, true) then
          return false
        end
      end
    end
    return true
  end)
end

--- Run the spec `body`, then write the facts and quit: exit code 0 when the
--- body ran to its end, 1 (with the error in the report) when it did not.
function H.run(body)
  local ok, err = xpcall(body, debug.traceback)
  -- Let the servers shut down (and stop their sandboxes) before Neovim
  -- exits, rather than be killed in the middle of it.
  require("cellbox.clients").stop_all()
  vim.wait(15000, function()
    return #(vim.lsp.get_clients or vim.lsp.get_active_clients)() == 0
  end, 50)
  if ok then
    write_report()
    vim.cmd("qall!")
  else
    write_report({ error = tostring(err) })
    vim.cmd("cquit 1")
  end
end

return H
