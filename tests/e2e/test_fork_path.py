"""The fork path: a Python block forked from the sandbox's warm interpreter
must be what `python FILE` in a fresh process is. Each test runs the same
block both ways in the same sandbox, spawned (`warm_python = false`) and
forked, and compares what the user sees; then the limits, the timeout,
cancel, OOM and the leftover sweep, on the fork path."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import TEST_IMAGE, containers_of
from tests.e2e.test_cancel import wait_for_output
from tests.e2e.test_execution import PYTHON_BLOCK, RUNNER_PROGRAM, ZYGOTE_WORDS, surviving

PARENT_IS_ZYGOTE = (
    "import os\n"
    f"print({ZYGOTE_WORDS.encode()!r} in open(f'/proc/{{os.getppid()}}/cmdline', 'rb').read())\n"
)


def zygote_pid(engine, workspace) -> int | None:
    """The warm interpreter's pid: the runner's child whose arguments are zygote.py."""
    (container,) = containers_of(engine, workspace)
    listing = container.exec_run(["ps", "-eo", "pid=,ppid=,args="]).output.decode()
    rows = [line.split(None, 2) for line in listing.splitlines() if line.strip()]
    runners = {pid for pid, _, args in rows if RUNNER_PROGRAM in args and args.startswith("python3 -I")}
    found = [int(pid) for pid, ppid, args in rows if ppid in runners and ZYGOTE_WORDS in args]
    assert len(found) <= 1, listing
    return found[0] if found else None


async def until_forking(daemon, workspace: str | None = None) -> None:
    """Run Python blocks until one is forked from the warm interpreter, which
    is started after the sandbox's first Python block has ended."""
    where = {"workspace": workspace} if workspace else {}
    for _ in range(100):
        probe = await daemon.execute(("python", PARENT_IS_ZYGOTE), **where)
        if probe["output"] == "True\n":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("blocks never forked from the warm interpreter")


class TwoWays:
    """One workspace's sandbox, its blocks run spawned or forked at will."""

    def __init__(self, daemon, workspace, engine) -> None:
        self.daemon, self.workspace, self.engine = daemon, workspace, engine
        self.config = (workspace / "cellbox.toml").read_text()

    def _config(self, warm: bool) -> None:
        (self.workspace / "cellbox.toml").write_text(self.config + ("" if warm else "warm_python = false\n"))

    async def spawned(self, code: str, **params) -> dict:
        self._config(warm=False)
        return (await self.daemon.execute(("python", code), **params))["blocks"][0]

    async def forked(self, code: str, **params) -> dict:
        """Run `code` forked: wait until blocks fork, then check the same warm
        interpreter is there after the run (the run went through it)."""
        self._config(warm=True)
        await until_forking(self.daemon)
        before = zygote_pid(self.engine, self.workspace)
        block = (await self.daemon.execute(("python", code), **params))["blocks"][0]
        assert before is not None and zygote_pid(self.engine, self.workspace) == before
        return block

    async def both(self, code: str, **params) -> tuple[dict, dict]:
        return await self.spawned(code, **params), await self.forked(code, **params)


@pytest.fixture
async def two_ways(workspace, start_daemon, engine) -> TwoWays:
    daemon = await start_daemon(workspace)
    return TwoWays(daemon, workspace, engine)


def seen(block: dict) -> tuple:
    """What the user sees of a block's run."""
    return block["status"], block["exitCode"], block["output"]


FACTS = r'''
import sys
modules = sorted(sys.modules)
names = sorted(globals())
import json, os, signal, random, resource, subprocess, warnings
loader = globals()["__loader__"]
facts = {
    "modules": modules,
    "globals": names,
    "name": __name__, "file": __file__, "doc": __doc__, "package": __package__,
    "spec": repr(__spec__), "cached": __cached__,
    "loader": [type(loader).__module__, type(loader).__name__, loader.name, loader.path],
    "builtins": __builtins__ is sys.modules["builtins"],
    "argv": sys.argv, "orig_argv": sys.orig_argv, "executable": sys.executable,
    "path": sys.path, "cwd": os.getcwd(), "flags": repr(sys.flags),
    "environment": [(k, v) for k, v in os.environ.items() if k not in ("CELLBOX_RUN", "CELLBOX_DISPLAY")],
    "environment order": list(os.environ),
    "run marker": len(os.environ["CELLBOX_RUN"]),
    "signals": {n: repr(signal.getsignal(n)) for n in range(1, signal.NSIG) if n not in (9, 19)},
    "blocked": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    "stdin": sys.stdin.read(), "stdin is": os.readlink("/proc/self/fd/0"),
    "descriptors": sorted(os.listdir("/proc/self/fd")),
    "stdout": [sys.stdout.encoding, sys.stdout.line_buffering, sys.stderr.line_buffering],
    "own session": os.getsid(0) == os.getpid() == os.getpgid(0),
    "limits": [resource.getrlimit(r) for r in (resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC)],
    "umask": os.umask(0o22),
    "warnings": repr(warnings.filters),
    "meta path": [getattr(f, "__name__", type(f).__name__) for f in sys.meta_path], "path hooks": len(sys.path_hooks),
    "excepthook": sys.excepthook is sys.__excepthook__,
    # How ps, pgrep -f and /proc show the block's process (the warm
    # interpreter's own arguments are its whole program).
    "ps": subprocess.run(["ps", "-o", "args=", "-p", str(os.getpid())], capture_output=True, text=True).stdout,
    "cmdline": open("/proc/self/cmdline", "rb").read().rstrip(b"\0").decode().split("\0"),
}
print(json.dumps(facts, sort_keys=True, default=repr))
'''


async def test_a_forked_block_sees_what_a_fresh_python_sees(two_ways):
    for code in (FACTS, "# filename: sub/facts.py\n" + FACTS):
        spawned, forked = await two_ways.both(code)
        assert spawned["status"] == forked["status"] == "ok", (spawned["output"], forked["output"])
        fresh, warm = json.loads(spawned["output"]), json.loads(forked["output"])
        assert warm == fresh
    assert fresh["file"] == "/workspace/sub/facts.py" and fresh["argv"] == ["sub/facts.py"]  # the second one
    assert fresh["path"][0] == "/workspace/sub" and "_socket" not in fresh["modules"]
    assert fresh["ps"].strip() == " ".join(fresh["cmdline"]) and fresh["cmdline"][1:] == ["sub/facts.py"]


async def test_each_forked_block_has_a_fresh_random_state(two_ways):
    code = "import random\nprint(random.random(), random.getrandbits(64))"
    first = await two_ways.forked(code)
    second = await two_ways.forked(code)
    assert first["exitCode"] == second["exitCode"] == 0
    assert first["output"] != second["output"]


async def test_nothing_a_forked_block_changes_reaches_the_next(two_ways):
    await two_ways.forked(
        "import os, sys, atexit, json\n"
        "json.left_behind = 1\n"
        "sys.modules['left_behind'] = json\n"
        "os.environ['LEFT_BEHIND'] = '1'\n"
        "os.chdir('/tmp')\n"
        "sys.path.append('/left/behind')\n"
        "sys.setrecursionlimit(77)\n"
        "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "atexit.register(print, 'an exit handler of the first block')\n"
        "left_behind = 1\n"
    )
    after = await two_ways.forked(
        "import os, sys, signal\n"
        "print('left_behind' in sys.modules, 'json' in sys.modules, 'LEFT_BEHIND' in os.environ, os.getcwd(),\n"
        "      '/left/behind' in sys.path, sys.getrecursionlimit(), signal.getsignal(signal.SIGTERM),\n"
        "      'left_behind' in globals())\n"
    )
    assert after["output"] == "False False False /workspace False 1000 0 False\n"  # 0: SIG_DFL


ENDINGS = {
    "uncaught exception": "def f():\n    raise ValueError('boom')\nf()\n",
    "chained exception": "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    raise KeyError('k') from e\n",
    "sys.exit(3)": "import sys\nprint('before')\nsys.exit(3)\n",
    "sys.exit(message)": "import sys\nsys.exit('a message for stderr')\n",
    "os._exit(7)": "import os, sys\nprint('unflushed', end='')\nsys.stdout.flush()\nos._exit(7)\n",
    "KeyboardInterrupt": "raise KeyboardInterrupt\n",
    "syntax error": "print('never'\n",
    "atexit after an error": "import atexit\natexit.register(print, 'at exit')\nraise RuntimeError('late')\n",
    "the block's own excepthook": (
        "import sys, traceback\n"
        "def hook(kind, value, tb):\n"
        "    print('hook', kind.__name__, [f.name for f in traceback.extract_tb(tb)], value.__traceback__ is tb)\n"
        "sys.excepthook = hook\n"
        "def g():\n    raise OSError('mine')\ng()\n"
    ),
    "stderr and stdout": "import sys\nprint('out')\nprint('err', file=sys.stderr)\nraise SystemExit(0)\n",
    "a coding cookie": "# -*- coding: latin-1 -*-\nprint(len('\u00e9'))\n",
    "a global's __del__ at exit": (
        "class Last:\n    def __del__(self):\n        print('deleted at exit')\n"
        "keep = Last()\nprint('end of the block')\n"
    ),
    "a thread still running at the end": (
        "import threading, time\n"
        "def late():\n    time.sleep(0.3)\n    print('thread done')\n"
        "threading.Thread(target=late).start()\nprint('main done')\n"
    ),
    "sys.exit with an atexit handler": "import atexit, sys\natexit.register(print, 'handler')\nsys.exit(5)\n",
}


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_a_forked_block_ends_as_a_fresh_one_does(two_ways, ending):
    spawned, forked = await two_ways.both(ENDINGS[ending])
    assert seen(forked) == seen(spawned)
    assert forked.get("originalOutput") == spawned.get("originalOutput")
    assert "<string>" not in forked["output"] and "_zygote" not in forked["output"]


async def test_a_file_left_open_is_written_out_at_exit(two_ways):
    code = "f = open('left-open.txt', 'w')\nf.write('written at exit')\n"
    for run in (two_ways.spawned, two_ways.forked):
        (two_ways.workspace / "left-open.txt").unlink(missing_ok=True)
        assert (await run(code))["exitCode"] == 0
        assert (two_ways.workspace / "left-open.txt").read_text() == "written at exit"


async def test_the_exit_codes_and_tracebacks_are_the_interpreters(two_ways):
    """Not only equal on both paths, but what Python says (a check of the check)."""
    assert seen(await two_ways.forked(ENDINGS["sys.exit(3)"]))[:2] == ("error", 3)
    assert seen(await two_ways.forked(ENDINGS["os._exit(7)"]))[1:] == (7, "unflushed")
    interrupted = await two_ways.forked(ENDINGS["KeyboardInterrupt"])
    assert interrupted["exitCode"] == 130 and interrupted["output"].rstrip().endswith("KeyboardInterrupt")
    assert (await two_ways.forked(ENDINGS["a global's __del__ at exit"]))["output"] == (
        "end of the block\ndeleted at exit\n"
    )
    assert (await two_ways.forked(ENDINGS["a thread still running at the end"]))["output"] == "main done\nthread done\n"
    hooked = await two_ways.forked(ENDINGS["the block's own excepthook"])
    assert hooked["output"] == "hook OSError ['<module>', 'g'] True\n"
    failed = await two_ways.forked(ENDINGS["uncaught exception"])
    assert failed["exitCode"] == 1
    assert failed["output"].startswith("Traceback (most recent call last):\n")
    assert failed["output"].count("File ") == 2 and failed["output"].endswith("ValueError: boom\n")


async def test_a_block_that_changes_the_site_folders_is_spawned_and_the_next_forks_again(two_ways):
    """A fresh interpreter reads the site folders' .pth files at start-up: after
    a block writes one, the next block must see it, so it cannot be forked
    from an interpreter started before."""
    site = (await two_ways.forked("import site; print(site.getusersitepackages())"))["output"].strip()
    await two_ways.forked(
        f"import os\nos.makedirs({site!r}, exist_ok=True)\n"
        f"open(os.path.join({site!r}, 'cellbox_test.pth'), 'w').write('import os; os.environ[\"FROM_PTH\"] = \"yes\"\\n')\n"
    )
    seen_pth = await two_ways.daemon.execute(("python", "import os; print(os.environ.get('FROM_PTH'))"))
    assert seen_pth["output"] == "yes\n"
    again = await two_ways.forked("import os; print(os.environ.get('FROM_PTH'))")  # a new warm interpreter
    assert again["output"] == "yes\n"
    # Rewritten in place (the folder's time does not change): seen too.
    await two_ways.forked(
        f"open({site!r} + '/cellbox_test.pth', 'w').write('import os; os.environ[\"FROM_PTH\"] = \"yep\"\\n')\n"
    )
    rewritten = await two_ways.daemon.execute(("python", "import os; print(os.environ.get('FROM_PTH'))"))
    assert rewritten["output"] == "yep\n"


async def test_warm_python_false_spawns_every_block(two_ways):
    for _ in range(3):
        block = await two_ways.spawned(PARENT_IS_ZYGOTE)
        assert block["output"] == "False\n"


# ---- limits, timeout, cancel, OOM and leftovers, on the fork path


async def test_a_forked_block_is_killed_at_its_timeout_with_all_it_started(two_ways):
    code = (
        "import subprocess, os, time\n"
        "subprocess.Popen(['sleep', '611'])\n"
        "subprocess.Popen(['setsid', 'sleep', '612'])\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(613)\n"
        "print('started', flush=True)\n"
        "while True:\n    pass\n"
    )
    block = await two_ways.forked(code, timeout=2)
    assert (block["status"], block["exitCode"], block["timedOut"]) == ("timeout", 124, True)
    assert block["output"] == "started\n\nTimeout"
    assert surviving(two_ways.engine, two_ways.workspace, r"sleep 61") == []
    assert surviving(two_ways.engine, two_ways.workspace, PYTHON_BLOCK) == []  # the block and its forked child


async def test_a_forked_block_can_be_cancelled(two_ways):
    daemon, workspace = two_ways.daemon, two_ways.workspace
    await two_ways.forked("pass")
    before = zygote_pid(two_ways.engine, workspace)
    code = "import subprocess, time\nsubprocess.Popen(['sleep', '621'])\nopen('going', 'w').close()\ntime.sleep(622)\n"
    running = asyncio.ensure_future(daemon.execute(("python", code), runId="fork-cancel", timeout=120))
    await wait_for_output(workspace, "going")
    assert await daemon.command("cellbox.cancel", {"runId": "fork-cancel"}) == {"runId": "fork-cancel", "cancelled": True}
    block = (await asyncio.wait_for(running, 10))["blocks"][0]
    assert (block["status"], block["exitCode"]) == ("cancelled", 130)
    assert surviving(two_ways.engine, workspace, r"sleep 62") == []
    assert zygote_pid(two_ways.engine, workspace) == before  # it was forked, and the warm interpreter stays
    assert surviving(two_ways.engine, workspace, PYTHON_BLOCK) == []


async def test_a_forked_memory_hog_is_reported_oom_and_forking_goes_on(make_workspace, start_daemon, engine):
    workspace = make_workspace("hog", f'image = "{TEST_IMAGE}"\nmemory = "128m"\n')
    two_ways = TwoWays(await start_daemon(workspace), workspace, engine)
    block = await two_ways.forked("hog = bytearray(1 << 30)\nprint('survived')", timeout=30)
    assert (block["status"], block["exitCode"]) == ("oom", 137)
    assert "survived" not in block["output"]
    assert (await two_ways.forked("print('next')"))["output"] == "next\n"


async def test_a_forked_block_gets_the_sandbox_limits(make_workspace, start_daemon, engine):
    workspace = make_workspace("limits", f'image = "{TEST_IMAGE}"\nmax_file_size = "1m"\n')
    two_ways = TwoWays(await start_daemon(workspace), workspace, engine)
    code = "open('big', 'wb').write(b'x' * (2 << 20))\n"
    spawned, forked = await two_ways.both(code)
    assert seen(forked) == seen(spawned)
    assert forked["exitCode"] == 1 and "OSError: [Errno 27] File too large" in forked["output"]


async def test_a_forked_block_shows_its_figures(two_ways):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\nprint('done')\n"
    spawned, forked = await two_ways.both(code)
    assert seen(forked) == seen(spawned) == ("ok", 0, "done\n")
    assert [sorted(d["data"]) for d in forked["displays"]] == [["image/png", "text/plain"]]
    with open(forked["displays"][0]["files"]["image/png"], "rb") as saved:
        assert saved.read(4) == b"\x89PNG"


@pytest.mark.parametrize("signal", ["SIGSTOP", "SIGKILL"])
async def test_a_block_that_stops_or_kills_the_warm_interpreter_ends_and_the_next_forks_again(two_ways, signal):
    """A forked block's parent is the warm interpreter: a block may stop or
    kill it. The block still ends as it should, and Python blocks fork again."""
    code = f"import os, signal\nos.kill(os.getppid(), signal.{signal})\nprint('done')\n"
    block = await two_ways.daemon.execute(("python", "pass"))  # the first Python block, spawned
    await until_forking(two_ways.daemon)
    block = (await two_ways.daemon.execute(("python", code), timeout=20))["blocks"][0]
    assert seen(block) == ("ok", 0, "done\n")
    assert block["durationMs"] < 10_000  # not ended by the timeout
    again = await two_ways.forked("print('after')")
    assert seen(again) == ("ok", 0, "after\n")
