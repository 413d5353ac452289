--- The names this plugin shares with the server: its commands, its
--- notifications, why a block ended (a result's `status`) and the one glyph
--- each status is drawn with. The server defines them in
--- server/cellbox/vocabulary.py; this is the plugin's one copy, and
--- tests/unit/test_vocabulary.py fails when the two differ.
local M = {}

--- The server's commands, sent with workspace/executeCommand.
M.commands = {
  EXECUTE = "cellbox.execute",
  CANCEL = "cellbox.cancel",
  RESTART = "cellbox.restart",
  STOP = "cellbox.stop",
  STATUS = "cellbox.status",
  TRUST = "cellbox.trust",
}

--- What the server sends during a run besides standard LSP.
M.notifications = {
  BLOCK_STARTED = "cellbox/blockStarted",
  OUTPUT = "cellbox/output",
  DISPLAY = "cellbox/display",
}

--- Why a block ended: the `status` of a block in a result.
M.statuses = {
  OK = "ok",
  ERROR = "error",
  TIMEOUT = "timeout",
  CANCELLED = "cancelled",
  OOM = "oom",
  OUTPUT_LIMIT = "output_limit",
  NOT_EXECUTED = "not_executed",
  INTERRUPTED = "interrupted",
}

--- The glyph of each status, as everywhere cellbox shows one.
M.glyphs = {
  ok = "✓",
  error = "✗",
  timeout = "⏱",
  cancelled = "⊘",
  oom = "✗",
  output_limit = "✗",
  not_executed = "•",
  interrupted = "↻",
}

return M
