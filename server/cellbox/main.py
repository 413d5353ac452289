"""The program `cellbox`'s entry point. An editor's start of `cellbox serve`
(or `serve --connect`) goes straight to the server or the bridge; everything
else, and any option this does not know, goes to the click program
(program.py). click and the command line's modules cost ~80 ms of an
editor's wait for its first answer, and the bridge's whole budget is 100 ms.
"""

from __future__ import annotations

import os
import sys

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def serve_arguments(args: list[str]) -> dict[str, object] | None:
    """`cellbox serve [--connect] [--eager] [--log-level L]` as its options;
    None for anything else (help, another command, an unknown option, a
    bad level), which the click program then handles as it always did."""
    if args[:1] != ["serve"] or any(name.startswith("_CELLBOX_COMPLETE") for name in os.environ):
        return None  # bare `cellbox` (also serve) and shell completion stay click's
    options: dict[str, object] = {"connect": False, "eager": False, "log_level": "INFO"}
    rest = args[1:]
    while rest:
        arg = rest.pop(0)
        if arg in ("--connect", "--eager"):
            options[arg[2:]] = True
        elif arg == "--log-level" and rest:
            options["log_level"] = rest.pop(0).upper()
        elif arg.startswith("--log-level="):
            options["log_level"] = arg.partition("=")[2].upper()
        else:
            return None
    if options["log_level"] not in LOG_LEVELS:
        return None
    if os.environ.get("CELLBOX_IDLE_TIMEOUT"):
        return None  # the program checks its value and says what is wrong with it
    return options


def main() -> None:
    options = serve_arguments(sys.argv[1:])
    if options is None:
        from cellbox.program import main as program

        program()
    elif options["connect"]:
        from cellbox.cli.bridge import run_bridge
        from cellbox.project import DEFAULT_IDLE_TIMEOUT

        sys.exit(run_bridge(DEFAULT_IDLE_TIMEOUT))
    else:
        from cellbox.lsp.stdio import serve_stdio

        serve_stdio(str(options["log_level"]), eager=bool(options["eager"]))
