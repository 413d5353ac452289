"""The runner's side of the warm Python interpreter (zygote.py is the other
side): starting it, handing it a block's pipes, and reading what it says.
Part of the runner: standard library only, C-level modules (see runner.py).

A block is forked from it only when it would otherwise be `PYTHON FILE` with
PYTHON the very interpreter the zygote is (a name on PATH that finds the same
file) and nothing of what its start-up read has changed; else the block is
spawned as before, and the zygote started anew after that run. It is started
after a run's leftovers are gone, never while a block runs, so no block can
change what it reads at start-up under it.
"""

import _signal
import _socket
import os
import sys
import time

PYTHON_NAMES = ("python", "python3")
"""Interpreter names a block's command may start with to be forked (prepare.py's "python")."""
FORK_ANSWER_SECONDS = 1.0
"""How long a ready zygote may take to say it forked; past it, it is killed and the block spawned."""
START_SECONDS = 10.0
"""How long one still starting may take to be ready (a loaded machine): then FORK_ANSWER_SECONDS more."""
STARTS_BEFORE_GIVING_UP = 3
"""Zygotes that may die before saying `ready` before the runner stops trying (an image whose
python cannot run zygote.py, e.g. Python 2): blocks are then spawned as before."""


def forkable(argv):
    return len(argv) == 2 and os.path.basename(argv[0]) in PYTHON_NAMES


class Zygote:
    """One warm interpreter, a child of the runner."""

    def __init__(self, argv0, pid, control, output):
        self.argv0 = argv0
        self.pid = pid
        self.control = control  # SOCK_SEQPACKET socket, our end
        self.output = output  # read end of its own stdout and stderr (its errors)
        self.ready = False
        self.run = None  # the run it was asked to fork, until it exits
        self.deadline = None  # when a `forked` answer is overdue

    def go(self, run, display, path, out_w, err_w):
        """Hand it a block: it forks a child that runs `path` with these pipes."""
        message = b"\0".join([b"go", run.id, display.encode(), self.argv0.encode(), path.encode("utf-8", "surrogateescape")])
        os.kill(self.pid, _signal.SIGCONT)  # a block may have stopped it
        self.control.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, int_bytes(out_w) + int_bytes(err_w))])
        self.run = run
        self.deadline = time.monotonic() + (FORK_ANSWER_SECONDS if self.ready else START_SECONDS)

    def message(self):
        """Its next message as a list of fields; [] when there is none yet,
        None when it hung up (it died, or will: `stale`)."""
        try:
            data = self.control.recv(4096)
        except BlockingIOError:
            return []
        except OSError:
            return None
        if not data:
            return None
        return data.split()

    def close(self, kill=True):
        if kill:
            try:
                os.kill(self.pid, 9)
            except OSError:
                pass
        self.control.close()
        if self.output >= 0:
            os.close(self.output)
            self.output = -1


def int_bytes(fd):
    return fd.to_bytes(4, sys.byteorder, signed=True)


def start_zygote(argv0, env, source, reset_signals):
    """A new zygote for `argv0`, or None if it cannot be spawned."""
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    out_r, out_w = os.pipe()
    try:
        pid = os.posix_spawnp(
            argv0,
            [argv0, "-c", source],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, out_w, 2),
                (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3),
            ],
            setsid=True,
            setsigdef=reset_signals,
            setsigmask=(),
        )
    except OSError:
        ours.close()
        os.close(out_r)
        return None
    finally:
        theirs.close()
        os.close(out_w)
    ours.setblocking(False)
    os.set_blocking(out_r, False)
    return Zygote(argv0, pid, ours, out_r)
