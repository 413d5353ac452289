"""The command-line client, run as a user runs it: output, summaries, exit
codes, --json, Ctrl-C, with and without the project's daemon."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import time

import pytest

from tests.conftest import containers_of
from tests.e2e.daemon_support import CONSOLE_SCRIPT, cellbox
from tests.e2e.test_execution import surviving

NOTES = """# Notes

```python
print("hello from python")
```

Some prose.

```bash
echo "to stderr" >&2
exit 3
```

```sh
echo never reached
```
"""

BLOCK_FIELDS = {"language", "exitCode", "output", "codeFile", "executed", "timedOut", "durationMs",
                "status", "truncated", "range", "extent", "blockNumber", "originalOutput", "stateLost", "displays",
                "session"}
RESULT_FIELDS = {"exitCode", "output", "codeFile", "timedOut", "durationMs", "workspace", "container",
                 "blocks", "skipped", "status", "truncated", "runId"}


@pytest.fixture(params=["own-server", "daemon"])
def project(request, workspace, runtime_dir):
    """A project with notes.md, run through a `cellbox serve` of the CLI's own
    or through the project's daemon."""
    (workspace / "notes.md").write_text(NOTES)
    if request.param == "daemon":
        assert cellbox("daemon", "start", str(workspace)).returncode == 0
    return workspace


def test_run_streams_output_summarises_each_block_and_exits_with_the_first_failure(project):
    result = cellbox("run", "notes.md", cwd=project)
    assert result.returncode == 3
    assert result.stdout == "hello from python\n"
    assert "to stderr\n" in result.stderr
    lines = result.stderr.splitlines()
    assert "▶ block 1 · python · line 4" in lines
    assert any(line.startswith("✓ block 1 (line 4) · exit 0 · ") for line in lines)
    assert any(line.startswith("✗ block 2 (lines 10-11) · error · exit 3 · ") for line in lines)
    assert "never reached" not in result.stdout + result.stderr
    assert lines[-1] == "skipped after block 2: block 3 (line 15)"  # Run All says what it left out


def test_blocks_are_called_by_their_number_in_the_document(project):
    by_number = cellbox("run", "notes.md", "--block", "3", cwd=project)
    lines = by_number.stderr.splitlines()
    assert lines[0] == "▶ block 3 · sh · line 15"
    assert lines[-1].startswith("✓ block 3 (line 15) · exit 0 · ")
    by_line = cellbox("run", "notes.md", "--line", "10", cwd=project)
    assert by_line.stderr.splitlines()[0] == "▶ block 2 · bash · lines 10-11"
    snippet = cellbox("exec", "-L", "sh", "-c", "true", cwd=project)  # given as text: its place in the request
    assert snippet.stderr.splitlines()[0] == "▶ block 1 · sh"


def test_run_picks_one_block_by_number_or_line(project):
    by_number = cellbox("run", "notes.md", "--block", "3", cwd=project)
    assert (by_number.returncode, by_number.stdout) == (0, "never reached\n")
    by_line = cellbox("run", str(project / "notes.md"), "--line", "4")
    assert (by_line.returncode, by_line.stdout) == (0, "hello from python\n")
    outside = cellbox("run", "notes.md", "--line", "7", cwd=project)
    assert outside.returncode == 1
    assert "line 7 of" in outside.stderr and "is not in a runnable block" in outside.stderr
    too_far = cellbox("run", "notes.md", "--block", "9", cwd=project)
    assert too_far.returncode == 1 and "has blocks 1 to 3; got 9" in too_far.stderr
    both = cellbox("run", "notes.md", "--block", "1", "--all", cwd=project)
    assert both.returncode == 2 and "give one of --block, --line, --all" in both.stderr


def test_run_json_prints_the_protocol_result_and_nothing_else(project):
    result = cellbox("run", "notes.md", "--json", cwd=project)
    assert result.returncode == 3
    assert result.stderr == ""
    answer = json.loads(result.stdout)
    assert set(answer) == RESULT_FIELDS
    assert [set(b) for b in answer["blocks"]] == [BLOCK_FIELDS, BLOCK_FIELDS]
    assert [b["status"] for b in answer["blocks"]] == ["ok", "error"]
    assert [b["blockNumber"] for b in answer["blocks"]] == [1, 2]
    assert answer["skipped"] == [{
        "blockIndex": 2, "blockNumber": 3, "language": "sh",
        "range": {"start": {"line": 14, "character": 0}, "end": {"line": 15, "character": 0}},
        "extent": {"start": {"line": 13, "character": 0}, "end": {"line": 16, "character": 0}},
    }]
    assert answer["blocks"][1]["range"] == {"start": {"line": 9, "character": 0}, "end": {"line": 11, "character": 0}}
    # The whole block, fences included: a client draws its result under line 12's closing fence.
    assert answer["blocks"][1]["extent"] == {"start": {"line": 8, "character": 0}, "end": {"line": 12, "character": 0}}
    assert answer["workspace"] == str(project)


def test_a_timeout_exits_124(project):
    (project / "slow.py").write_text("import time\ntime.sleep(30)\n")
    result = cellbox("run", "slow.py", "--timeout", "1", cwd=project)
    assert result.returncode == 124
    assert "⏱ block 1 (lines 1-2) · timed out after" in result.stderr


def test_exec_runs_code_a_file_or_stdin(project):
    code = cellbox("exec", "--lang", "python", "-c", "print(6 * 7)", cwd=project)
    assert (code.returncode, code.stdout) == (0, "42\n")
    (project / "job.sh").write_text("echo from a file; exit 5\n")
    from_file = cellbox("exec", "job.sh", cwd=project)
    assert (from_file.returncode, from_file.stdout) == (5, "from a file\n")
    from_stdin = cellbox("exec", "-L", "bash", "-", input="echo piped\n", cwd=project)
    assert (from_stdin.returncode, from_stdin.stdout) == (0, "piped\n")
    as_json = json.loads(cellbox("exec", "-L", "sh", "-c", "echo j", "--json", cwd=project).stdout)
    assert as_json["output"] == "j\n" and as_json["blocks"][0]["range"] is None


def test_exec_says_what_is_missing(project):
    no_language = cellbox("exec", "-c", "print(1)", cwd=project)
    assert no_language.returncode == 2 and "give --lang" in no_language.stderr
    nothing = cellbox("exec", cwd=project)
    assert nothing.returncode == 2 and "give either -c CODE or a FILE" in nothing.stderr
    unknown = cellbox("exec", "-L", "cobol", "-c", "x", cwd=project)
    assert unknown.returncode == 1 and "cobol" in unknown.stderr


def test_status_restart_stop(project, engine):
    assert cellbox("exec", "-L", "sh", "-c", "true", cwd=project).returncode == 0
    status = json.loads(cellbox("status", "--json", cwd=project).stdout)
    (row,) = [s for s in status["sandboxes"] if s["workspace"] == str(project)]
    assert row["state"] in ("running", "absent")  # absent: the CLI's own server stopped it
    text = cellbox("status", cwd=project).stdout
    assert str(project) in text

    restarted = json.loads(cellbox("restart", "--json", cwd=project).stdout)
    assert restarted["workspace"] == str(project) and restarted["state"] == "running"
    stopped = cellbox("stop", cwd=project)
    assert stopped.returncode == 0 and stopped.stdout.startswith(f"{project}: stopped")
    assert all(c.status != "running" for c in containers_of(engine, project))


def test_ctrl_c_cancels_the_run_in_the_sandbox_and_exits_130(project, engine):
    (project / "long.sh").write_text("echo started\nsleep 300\n")
    run = subprocess.Popen([CONSOLE_SCRIPT, "run", "long.sh"], cwd=project, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline() == "started\n"
        run.send_signal(signal.SIGINT)
        _out, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 130
    assert "cancelling" in err and "⊘ block 1" in err
    assert all(not surviving(engine, project, "sleep 300") for c in containers_of(engine, project)
               if c.status == "running")


def test_the_spinner_shows_on_a_terminal_only(project):
    args = [CONSOLE_SCRIPT, "exec", "-L", "sh", "-c", "sleep 1; echo done"]
    controller, terminal = pty.openpty()
    try:
        on_tty = subprocess.run(args, cwd=project, stdout=subprocess.PIPE, stderr=terminal, timeout=120)
        os.set_blocking(controller, False)
        seen = b""
        with_deadline = time.monotonic() + 5
        while time.monotonic() < with_deadline:
            try:
                chunk = os.read(controller, 65536)
            except BlockingIOError:
                break
            seen += chunk
    finally:
        os.close(controller)
        os.close(terminal)
    assert on_tty.stdout == b"done\n"
    assert "block 1 · 0." in seen.decode(errors="replace")  # the elapsed time, redrawn
    plain = cellbox("exec", "-L", "sh", "-c", "sleep 1; echo done", cwd=project)
    assert "\r" not in plain.stderr and "\x1b[" not in plain.stderr


def test_every_command_has_help_and_completion_works():
    for command in (["run"], ["exec"], ["restart"], ["stop"], ["status"], ["serve"], ["completion"],
                    ["daemon"], ["daemon", "start"], ["daemon", "stop"], ["daemon", "status"]):
        shown = cellbox(*command, "--help")
        assert shown.returncode == 0 and shown.stdout.startswith(f"Usage: cellbox {' '.join(command)}"), command
    script = cellbox("completion", "bash")
    assert "_CELLBOX_COMPLETE=bash_complete" in script.stdout
    completed = cellbox(env={"_CELLBOX_COMPLETE": "bash_complete", "COMP_WORDS": "cellbox da", "COMP_CWORD": "1"})
    assert completed.stdout.split() == ["plain,daemon"]
    options = cellbox(env={"_CELLBOX_COMPLETE": "bash_complete", "COMP_WORDS": "cellbox run --bl", "COMP_CWORD": "2"})
    assert "plain,--block" in options.stdout.split()


def test_an_unreachable_engine_is_one_clear_line_and_exit_1(workspace, runtime_dir):
    failed = cellbox("exec", "-L", "sh", "-c", "true", cwd=workspace, env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("cellbox: ")]
    assert len(errors) == 1 and "Cannot reach the Docker engine at tcp://127.0.0.1:1 (from DOCKER_HOST)" in errors[0]
    assert "Traceback" not in failed.stderr  # the server's own log stays out of the user's way


def test_a_traceback_names_the_document_and_its_lines(project):
    (project / "fails.md").write_text("# Fails\n\n```python\nimport json\n\njson.loads('{')\n```\n")
    result = cellbox("run", "fails.md", cwd=project)
    assert result.returncode == 1
    assert '  File "fails.md", line 6, in <module>\n' in result.stderr
    assert "tmp_code_" not in result.stderr
    answer = json.loads(cellbox("run", "fails.md", "--json", cwd=project).stdout)
    (block,) = answer["blocks"]
    assert '"fails.md", line 6, in <module>' in block["output"]
    assert '/cellbox/blocks/tmp_code_' in block["originalOutput"] and '", line 3, in <module>' in block["originalOutput"]
    snippet = cellbox("exec", "-L", "python", "-c", "print(1)\nprint(1 / 0)", cwd=project)
    assert '  File "<block 1>", line 2, in <module>\n' in snippet.stderr


def test_a_restart_during_a_run_says_it_ended_the_block(workspace, runtime_dir):
    # Through the project's daemon, which the run and the restart share.
    assert cellbox("daemon", "start", str(workspace)).returncode == 0
    (workspace / "long.sh").write_text("echo started\nsleep 300\n")
    run = subprocess.Popen([CONSOLE_SCRIPT, "run", "long.sh"], cwd=workspace, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline() == "started\n"
        assert cellbox("restart", cwd=workspace).returncode == 0
        _, stderr = run.communicate(timeout=30)
    finally:
        run.kill()
    assert "cellbox: the sandbox was restarted while this block ran, which ended it\n" in stderr
    assert stderr.splitlines()[-1].startswith("↻ block 1 (lines 1-2) · interrupted · exit 137 · ")
    assert run.returncode == 137


def test_a_named_session_keeps_state_across_commands_through_the_daemon(workspace, runtime_dir):
    assert cellbox("daemon", "start", str(workspace)).returncode == 0
    assert cellbox("exec", "-L", "python", "--session", "nb", "-c", "x = 41", cwd=workspace).returncode == 0
    kept = cellbox("exec", "-L", "python", "--session", "nb", "-c", "print(x + 1)", cwd=workspace)
    assert (kept.returncode, kept.stdout) == (0, "42\n")
    plot = cellbox(
        "exec", "-L", "python", "-s", "nb", "-c", "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
        cwd=workspace,
    )
    assert plot.returncode == 0
    (saved,) = [line.split(": ", 1)[1] for line in plot.stderr.splitlines() if "↳ image/png: " in line]
    assert saved.endswith(".png") and open(saved, "rb").read(4) == b"\x89PNG"
    status = cellbox("status", cwd=workspace).stdout
    assert "session nb  idle  3 blocks" in status
    assert cellbox("restart", "--session", "nb", cwd=workspace).returncode == 0
    lost = cellbox("exec", "-L", "python", "-s", "nb", "-c", "print(x)", cwd=workspace)
    assert lost.returncode == 1 and "NameError" in lost.stdout + lost.stderr
