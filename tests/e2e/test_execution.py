"""What running blocks does: languages, files, ordering, output and timeouts."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.conftest import containers_of


async def test_languages_run_with_their_interpreter(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(
        ("python", "import sys; print(sys.argv[0].endswith('.py'))"),
        ("bash", "echo ${BASH_VERSION:+bash}"),
        ("sh", "echo sh"),
        ("shell", "echo shell"),
    )
    assert [b["output"] for b in result["blocks"]] == ["True\n", "bash\n", "sh\n", "shell\n"]
    assert result["output"] == "True\nbash\nsh\nshell\n"
    assert all(b["executed"] for b in result["blocks"])


async def test_aliases_and_case_are_normalised(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("py", "print('py')"), ("PYTHON", "print('upper')"), ("JS", "console.log(1)"))
    assert [b["language"] for b in result["blocks"]] == ["python", "python", "javascript"]
    assert [b["output"] for b in result["blocks"][:2]] == ["py\n", "upper\n"]


async def test_saved_only_languages_are_written_not_run(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("javascript", "console.log(1)"), ("html", "<p>hi</p>"), ("css", "p {}"))
    assert result["exitCode"] == 0
    for block in result["blocks"]:
        assert block["executed"] is False
        assert block["output"].startswith(f"Code saved to {block['codeFile']}\n{block['language']} blocks are only saved")
    assert (workspace / result["blocks"][1]["codeFile"]).read_text() == "<p>hi</p>"


async def test_unnamed_blocks_go_to_the_daemon_s_folder_not_the_workspace(workspace, start_daemon, private_xdg):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", "print(1)\nprint(__file__)"))
    code_file = Path(result["codeFile"])
    assert private_xdg in code_file.parents and workspace not in code_file.parents
    assert code_file.read_text() == "print(1)\nprint(__file__)"
    assert result["output"] == f"1\n/cellbox/blocks/{code_file.name}\n"
    assert sorted(p.name for p in workspace.iterdir()) == ["cellbox.toml"]
    # Read-only inside: a block cannot replace another's file, link it or make it a FIFO.
    tamper = await daemon.execute(("sh", f"echo 'print(666)' > /cellbox/blocks/{code_file.name}"))
    assert "Read-only file system" in tamper["output"]
    assert code_file.read_text() == "print(1)\nprint(__file__)"


async def test_the_run_stops_at_the_first_failure(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(
        ("python", "print('one')"),
        ("bash", "echo two; exit 3"),
        ("python", "open('never', 'w')"),
    )
    assert result["exitCode"] == 3
    assert result["output"] == "one\ntwo\n"
    assert [b["exitCode"] for b in result["blocks"]] == [0, 3]
    assert not (workspace / "never").exists()
    assert result["codeFile"] == result["blocks"][0]["codeFile"]


async def test_a_python_error_reports_the_traceback_and_exit_code(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", "def f():\n    raise ValueError('boom')\nf()\n"))
    assert result["exitCode"] == 1
    assert "ValueError: boom" in result["output"]
    assert 'line 2, in f' in result["output"]


async def test_an_unsupported_language_stops_the_run(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", "print(1)"), ("Ruby", "puts 1"), ("python", "print(2)"))
    assert result["exitCode"] == 1
    refusal = result["blocks"][1]["output"]
    assert refusal.startswith("Unsupported language ruby: cellbox runs bash, ")
    assert result["output"] == "1\n" + refusal
    assert result["blocks"][1] == {
        "language": "ruby", "exitCode": 1, "output": refusal, "codeFile": None,
        "executed": False, "timedOut": False, "durationMs": result["blocks"][1]["durationMs"],
        "status": "not_executed", "truncated": False, "range": None, "extent": None, "blockNumber": None,
        "originalOutput": None, "stateLost": False, "displays": [], "session": None,
    }
    assert len(result["blocks"]) == 2
    assert result["skipped"] == [{"blockIndex": 2, "blockNumber": None, "language": "python", "range": None, "extent": None}]


@pytest.mark.parametrize(
    ("language", "first_line", "saved_as"),
    [
        ("python", "# filename: pkg/hello.py", "pkg/hello.py"),
        ("python", "# hello.py", "hello.py"),
        ("javascript", "// filename: app.js", "app.js"),
        ("css", "/* filename: style.css */", "style.css"),
        ("html", "<!-- filename: page.html -->", "page.html"),
        ("bash", "# filename: run.sh", "run.sh"),
    ],
)
async def test_a_filename_comment_saves_the_block_under_that_name(
    workspace, start_daemon, language, first_line, saved_as
):
    daemon = await start_daemon(workspace)
    code = f"{first_line}\n" + ("print('named')\n" if language == "python" else "echo named\n")
    result = await daemon.execute((language, code))
    assert result["codeFile"] == str(workspace / saved_as)
    assert (workspace / saved_as).read_text() == code
    if language in ("python", "bash"):
        assert result["output"] == "named\n"


async def test_an_ordinary_first_comment_is_not_a_filename(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", "# compute fib\nprint('fib')"))
    assert result["output"] == "fib\n"
    assert "/blocks/tmp_code_" in result["codeFile"]
    assert not (workspace / "compute fib").exists()


@pytest.mark.parametrize("name", ["../escape.py", "/etc/cellbox-escape.py", "link/escape.py"])
async def test_a_filename_outside_the_workspace_is_refused(workspace, start_daemon, name, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "link").symlink_to(outside)
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", f"# filename: {name}\nprint('escaped')"), ("python", "print(2)"))
    assert result["exitCode"] == 1
    assert result["output"] == "Filename is not in the workspace"
    assert len(result["blocks"]) == 1 and result["blocks"][0]["executed"] is False
    assert result["codeFile"] is None
    assert not (tmp_path / "escape.py").exists() and list(outside.iterdir()) == []


async def test_blocks_run_in_the_workspace_and_share_its_files(workspace, start_daemon):
    (workspace / "data.txt").write_text("from the host\n")
    daemon = await start_daemon(workspace)
    result = await daemon.execute(
        ("python", "import os; print(os.getcwd()); print(open('data.txt').read(), end='')"),
        ("sh", "echo made in the sandbox > made.txt"),
    )
    assert result["output"] == "/workspace\nfrom the host\n"
    assert (workspace / "made.txt").read_text() == "made in the sandbox\n"


async def test_each_block_is_a_fresh_process(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    first = await daemon.execute(("python", "x = 41\nprint(x)"))
    second = await daemon.execute(("python", "print('x' in globals())"))
    assert (first["output"], second["output"]) == ("41\n", "False\n")


async def test_pip_install_lines_are_quieted(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("bash", "pip install nothing-at-all || true\necho after"))
    with open(result["codeFile"]) as saved:
        assert saved.read().startswith("pip install -qqq nothing-at-all")


async def test_invalid_utf8_output_is_replaced_not_fatal(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(
        ("python", "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe caf\\xc3\\xa9\\n')"),
    )
    assert result["exitCode"] == 0
    assert result["output"] == "ok \ufffd\ufffd café\n"
    assert (await daemon.execute(("python", "print('still serving')")))["output"] == "still serving\n"


async def test_stdout_and_stderr_are_both_in_the_output(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("bash", "echo out; echo err >&2; exit 2"))
    assert result["exitCode"] == 2
    assert sorted(result["output"].splitlines()) == ["err", "out"]


async def test_the_sandbox_has_no_network(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    # Read from inside, never by sending a packet: only loopback may exist.
    result = await daemon.execute(("sh", "ls /sys/class/net"))
    assert result["output"].split() == ["lo"]
    (container,) = containers_of(engine, workspace)
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"


RUNNER_PROGRAM = "from cellbox.container.runner import main"
"""In the arguments of the container's main process, its shell and the runner
(the runner's source travels in them): never a block's leftover, whatever
words that source holds."""
ZYGOTE_WORDS = "The warm Python interpreter"
"""In the warm Python interpreter's arguments as ps shows them (zygote.TITLE)."""
PYTHON_BLOCK = r"python3? \S*\.py$"
"""A Python block's process as ps shows it, spawned or forked (the warm
interpreter writes the block's arguments over its own)."""


def processes_in(engine, workspace) -> list[str]:
    """The arguments of each process in the workspace's sandbox but `ps` and the
    warm Python interpreter (the runner's own child, kept between runs like it)."""
    (container,) = containers_of(engine, workspace)
    listing = container.exec_run(["ps", "-eo", "pid=,ppid=,args="]).output.decode()
    rows = [line.split(None, 2) for line in listing.splitlines() if len(line.split(None, 2)) == 3]
    runners = {pid for pid, _, args in rows if RUNNER_PROGRAM in args and args.startswith("python3 -I")}
    return [
        args.strip() for _, ppid, args in rows
        if not args.startswith("ps ") and not (ppid in runners and ZYGOTE_WORDS in args)
    ]


def surviving(engine, workspace, pattern: str) -> list[str]:
    """Processes matching `pattern` (but the runner's own), given one second
    to finish dying: a process killed on a loaded machine can take a moment
    to leave the table (seen once in a full CI-like run); one that was never
    killed stays."""
    deadline = time.monotonic() + 1.0
    while True:
        found = [p for p in processes_in(engine, workspace) if re.search(pattern, p) and RUNNER_PROGRAM not in p]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


async def test_a_timeout_kills_the_run_and_everything_it_started(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    code = (
        "sleep 301 &\n"                       # a background job
        "setsid sleep 302 &\n"                # one that left the process group
        "python -c 'import time; time.sleep(303)' &\n"
        "echo started\n"
        "sleep 304\n"
    )
    result = await daemon.execute(("bash", code), ("python", "print('never')"), timeout=2)
    assert result["exitCode"] == 124
    assert result["timedOut"] is True and result["blocks"][0]["timedOut"] is True
    assert result["output"] == "started\n\nTimeout"
    assert len(result["blocks"]) == 1
    assert 1900 < result["blocks"][0]["durationMs"] < 10_000
    assert surviving(engine, workspace, r"sleep.*30[1-4]") == []


async def test_a_python_timeout_uses_the_configured_default(make_workspace, start_daemon):
    from tests.conftest import TEST_IMAGE

    workspace = make_workspace("short", f'image = "{TEST_IMAGE}"\ntimeout = 1\n')
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", "import time\nprint('a', flush=True)\ntime.sleep(20)"))
    assert (result["exitCode"], result["timedOut"], result["output"]) == (124, True, "a\n\nTimeout")


async def test_background_jobs_left_by_a_finished_block_do_not_hang_the_run(workspace, start_daemon, engine):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("bash", "sleep 305 &\necho done"), timeout=30)
    assert (result["exitCode"], result["output"]) == (0, "done\n")
    assert result["durationMs"] < 5_000  # not the engine's wait for the job's stdout, nor the timeout
    assert surviving(engine, workspace, "sleep 305") == []
