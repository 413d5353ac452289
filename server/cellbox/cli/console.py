"""What `cellbox run` and `cellbox exec` show on a terminal: each block's
output as it streams (stdout to stdout, stderr to stderr), a header and a
one-line summary per block on stderr, and on a TTY a spinner with the elapsed
time while a block runs. Everything here is presentation; the run itself is
the server's."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from cellbox.vocabulary import GLYPHS, Status, last_line_of_range

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def lines_of(range_: dict | None) -> str:
    """`lines 8-10` for a range."""
    if not range_:
        return ""
    start, end = range_["start"], range_["end"]
    first = start["line"] + 1
    last = last_line_of_range(start["line"], end["line"], end["character"]) + 1
    return f"line {first}" if last <= first else f"lines {first}-{last}"


def block_name(index: int, block: dict) -> str:
    """How a block is called: by its number in its document ("block 3"), a
    selection as such, and a block given as text by its place in the request."""
    number = block.get("blockNumber")
    if number is not None:
        return f"block {number}"
    if block.get("range"):
        return "selection"
    return f"block {index + 1}"


def exit_code_of(result: dict) -> int:
    """The first failing block's exit code; 0 when every block passed."""
    for block in result["blocks"]:
        if block["exitCode"] != 0:
            return block["exitCode"]
        if block["status"] not in (Status.OK, Status.NOT_EXECUTED):
            return 1
    return 0


class RunDisplay:
    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr, live: bool | None = None) -> None:
        self.out = out
        self.err = err
        self.live = err.isatty() if live is None else live
        """Whether to draw the spinner: only on a terminal; plain lines in logs and pipes."""
        self._at_line_start = True
        self._spinner_shown = False
        self._block: str | None = None
        self._block_started = 0.0
        self._frame = 0
        self._step = ""
        """The current step of a slow server step (progress), while one goes."""

    # ---------------------------------------------------------- notifications

    def block_started(self, params: dict) -> None:
        where = lines_of(params.get("range"))
        self._block = block_name(params["blockIndex"], params)
        self._block_started = time.monotonic()
        self._note(f"▶ {self._block} · {params['language']}" + (f" · {where}" if where else ""))

    def output(self, params: dict) -> None:
        self._erase_spinner()
        stream = self.err if params["stream"] == "stderr" else self.out
        text = params["text"]
        stream.write(text)
        stream.flush()
        self._at_line_start = text.endswith("\n")

    def progress(self, params: dict) -> None:
        """The server's progress on a slow step before a block runs (an image
        pulled, an environment built, a kernel started): its title, then its
        current step ("building environment (step 3/5): RUN ..."), shown by
        the spinner. The run's own progress is the spinner's already."""
        token, value = str(params.get("token")), params.get("value")
        if token.startswith("cellbox-run-") or not isinstance(value, dict):
            return
        if value.get("kind") == "begin":
            self._note(str(value.get("title")))
            self._step = ""
        elif value.get("kind") == "report" and value.get("message"):
            self._step = str(value["message"])
        elif value.get("kind") == "end":
            self._step = ""
            self._erase_spinner()

    def tick(self) -> None:
        """Redraw the spinner (every 0.1 s on a TTY), only on a line of its own."""
        if not self.live or (self._block is None and not self._step) or not self._at_line_start:
            return
        self._frame = (self._frame + 1) % len(SPINNER)
        elapsed = time.monotonic() - self._block_started
        doing = f"{self._step[:90]}" if self._step else f"{self._block} · {elapsed:.1f} s"
        self.err.write(f"\r\x1b[K{SPINNER[self._frame]} {doing}")
        self.err.flush()
        self._spinner_shown = True

    def note(self, text: str) -> None:
        self._note(text)

    # ---------------------------------------------------------------- results

    def summary(self, result: dict) -> None:
        self._block = None
        for index, block in enumerate(result["blocks"]):
            self._note(summary_line(index, block))
            for line in display_lines(block):
                self._note(line)
        if result.get("skipped") and result["blocks"]:
            self._note(skipped_line(len(result["blocks"]) - 1, result["blocks"][-1], result["skipped"]))

    def _note(self, text: str) -> None:
        self._erase_spinner()
        if not self._at_line_start:
            self.err.write("\n")  # output without a final newline: our line starts afresh
            self._at_line_start = True
        self.err.write(text + "\n")
        self.err.flush()

    def _erase_spinner(self) -> None:
        if self._spinner_shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._spinner_shown = False


def summary_line(index: int, block: dict) -> str:
    status = block["status"]
    mark = GLYPHS.get(status, GLYPHS[Status.ERROR])
    seconds = block["durationMs"] / 1000
    where = lines_of(block.get("range"))
    name = block_name(index, block) + (f" ({where})" if where else "")
    if status == Status.OK:
        detail = f"exit 0 · {seconds:.2f} s"
    elif status == Status.TIMEOUT:
        detail = f"timed out after {seconds:.1f} s (exit {block['exitCode']})"
    elif status == Status.NOT_EXECUTED:
        saved = block["executed"] is False and block["exitCode"] == 0
        detail = "saved, not run" if saved else f"refused (exit {block['exitCode']})"
    else:
        detail = f"{status} · exit {block['exitCode']} · {seconds:.2f} s"
    if block["truncated"]:
        detail += " · output truncated"
    if block.get("stateLost"):
        detail += " · session state lost"
    return f"{mark} {name} · {detail}"


RICH_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "text/html", "text/markdown", "application/json")
"""What a terminal cannot show: each is named with the file it was saved to."""


def display_lines(block: dict) -> list[str]:
    """A line per rich output of a block (a plot, a table): its type and the
    file it was saved to, for a terminal that cannot show it."""
    lines = []
    for display in block.get("displays", []):
        files = display.get("files", {})
        for mime in RICH_TYPES:
            if mime in files:
                lines.append(f"  ↳ {mime}: {files[mime]}")
                break
    return lines


def skipped_line(stop_index: int, stopped_at: dict, skipped: list[dict]) -> str:
    """The blocks a run never started, after the one that stopped it (whose
    summary line says why): "skipped after block 2: block 3 (line 15), block 4 (lines 19-20)"."""
    names = []
    for block in skipped:
        where = lines_of(block.get("range"))
        names.append(block_name(block["blockIndex"], block) + (f" ({where})" if where else ""))
    return f"skipped after {block_name(stop_index, stopped_at)}: " + ", ".join(names)


def status_lines(result: dict) -> list[str]:
    rows = result["sandboxes"]
    if not rows:
        return ["no sandbox"]
    lines = []
    for row in rows:
        lines.append(f"{row['workspace']}  {row['state']}  {row['container']}  {row['image']}")
        for session in row.get("sessions", []):
            memory = f"  {session['memoryBytes'] / (1 << 20):.0f} MiB" if session.get("memoryBytes") else ""
            language = f" ({session['language']})" if session.get("language", "python") != "python" else ""
            lines.append(
                f"  session {session['name']}{language}  {session['state']}  {session['blocksRun']} blocks{memory}"
            )
    return lines


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False)
