"""The warm runner: a small process kept alive inside each sandbox container.
This module holds its protocol with the daemon and its serve loop; the rest of
it is libc.py (prctl through _ctypes), processes.py (finding and killing what
runs leave behind, the OOM counter) and seccomp.py (no setid files).

It is NOT imported by the daemon. Its modules' sources are handed to the
container's main process as one argument (`python3 -I -S -c PROGRAM
RUN_DIR`, PROGRAM from ship.py), so nothing is baked into the image or copied
in. It must stay stdlib-only and run on Python 3.8 or later (os.posix_spawnp
with setsid is the newest thing it needs). It imports only C-level modules
and struct, a thin wrapper of _struct (no json, re, subprocess, selectors,
socket or signal, which together tripled its start-up): a cold sandbox waits
for it.

It connects to the daemon, not the other way round. The daemon listens on
a socket in a folder of its own outside the workspace (`/cellbox/run` in the
container, mounted read-only): no block can replace, link or FIFO it, and no
block can point the daemon at another workspace's runner. To be told apart
from a block that connects too, the runner presents a one-shot token the
daemon wrote beside the socket (`hello TOKEN PID`); the daemon deletes the
token once it is used. When the connection ends (the daemon went away), the
runner kills what it was running and waits for the next token.

Protocol: one line per message, fields separated by single spaces; ids are
plain words, bytes travel as base64. Requests:
    run ID ARGV LIMIT [keep]
                       start ARGV (base64 of the NUL-joined arguments) as a new
                       process, forwarding at most LIMIT bytes of its output;
                       with `keep`, a session's kernel: it outlives other runs
                       and their leftover sweeps (what it starts does not)
    kill ID            kill that run and all it started
    signal ID N        send signal N to that run's process only (a kernel's interrupt)
    settle ID          the kept run ID is ready: what it started so far (a shell
                       kernel's shell) is its own, spared by sweeps as it is;
                       answered with: settled ID
    tidy ID            kill every leftover but kept runs' own processes (after a
                       block ran in a kernel); answered with: tidied ID
    memory ID RUN      answered with: memory ID BYTES, the resident memory of RUN's
                       process (-1 when gone)
    ping ID            answered with: pong ID PID
Events:
    started ID         the run's process exists
    out ID 1|2 DATA    a chunk of its stdout (1) or stderr (2), base64
    cut ID             output went past LIMIT: the rest is read and dropped
    display ID DATA    a rich output the run showed (a matplotlib figure, through
                       cellbox_figures): a JSON MIME bundle, base64; all before its exit
    exit ID CODE OOM   after all of the run's output; CODE is 128+N when killed
                       by signal N; OOM the kills the memory limit made
                       meanwhile (from the cgroup's counter), or -1 if unknown

Each run is a fresh process in a session and process group of its own, with
CELLBOX_RUN=ID in its environment (inherited by everything it starts, even
what leaves the group). When the run's process exits, on kill, or when the
connection that asked for it closes (the daemon died), the runner freezes and
kills the whole group and every process carrying the marker. Then, since
runs in a workspace are serial, every other process in the container but its
init, the main process and the runner goes too: a process that cleared its
environment, started a session of its own and forked twice survives nothing.
"""

import _signal as signal  # not `signal`: it imports enum, which costs more than the rest
import _socket
import binascii
import os
import select
import sys
import time

from cellbox.container.processes import (
    MARKER,
    become_subreaper,
    descendants,
    kill_leftovers,
    kill_orphans,
    kill_run,
    oom_kills,
    start_time,
)
from cellbox.container.seccomp import forbid_setid_files

CHUNK = 65536
MOST_DISPLAY_BYTES = (16 << 20) + 1024
"""Longest display line a run may send; a longer one is dropped with its connection."""
MOST_DISPLAY_CONNECTIONS = 16
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGINT, signal.SIGQUIT, signal.SIGXFSZ, signal.SIGCHLD)
"""Signals a block gets with their default action, whatever the runner does with them."""


def b64(data):
    return binascii.b2a_base64(data, newline=False)


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.pending = b""
        self.runs = {}
        self.closed = False


class Run:
    def __init__(self, run_id, pid, client, stdout, stderr, limit, keep=False):
        self.id = run_id
        self.pid = pid
        self.keep = keep
        self.client = client
        self.streams = {stdout: b"1", stderr: b"2"}
        self.code = None
        self.room = limit  # bytes of output still to forward
        self.cut = False
        self.oom_before = oom_kills()
        self.family = {}  # a kept run's settled processes: pid -> start time


class Runner:
    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.poll = select.epoll()
        self.handlers = {}  # fd -> (kind, owner)
        self.runs = {}
        self.client = None
        # SIGCHLD wakes the poll through this pipe, so exits are seen at once
        # without a thread per run or a polling sleep.
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wake_w)
        self.watch(self.wake_r, "child", None)
        # Script runs hand their matplotlib figures here (container/figures.py):
        # an abstract socket, in the container's own network namespace, so
        # there is no file to plant and no descriptor a block inherits.
        self.display_name = "cellbox-display-%d-%s" % (os.getpid(), binascii.hexlify(os.urandom(6)).decode())
        self.display_listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.display_listener.bind("\0" + self.display_name)
        self.display_listener.listen(MOST_DISPLAY_CONNECTIONS)
        self.display_listener.setblocking(False)
        self.displays = {}  # fd -> [socket, pending bytes]
        self.watch(self.display_listener.fileno(), "display-listen", None)

    def connect(self):
        """Wait for a token from the daemon, connect with it; the connected Client."""
        token_file = self.run_dir + "/token"
        delay = 0.01
        while True:
            try:
                with open(token_file, "rb") as f:
                    token = f.read(256).strip()
                sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    sock.connect(self.run_dir + "/runner.sock")
                    sock.sendall(b"hello " + token + b" " + str(os.getpid()).encode() + b"\n")
                except OSError:
                    sock.close()
                    raise
                return Client(sock)
            except OSError:
                # No daemon yet, or between two: look again soon, then less often.
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def watch(self, fd, kind, owner):
        self.handlers[fd] = (kind, owner)
        self.poll.register(fd, select.EPOLLIN)

    def unwatch(self, fd):
        del self.handlers[fd]
        self.poll.unregister(fd)

    def serve(self):
        os.write(1, b"ready %d\n" % os.getpid())
        while True:
            self.client = self.connect()
            self.watch(self.client.sock.fileno(), "client", self.client)
            while not self.client.closed:
                try:
                    events = self.poll.poll()
                except InterruptedError:
                    continue
                for fd, _ in events:
                    if fd not in self.handlers:
                        continue  # closed by an earlier event of this round
                    try:
                        self.dispatch(fd)
                    except Exception as exc:  # one bad request must not take every run down
                        sys.stderr.write("cellbox runner: %s: %s\n" % (type(exc).__name__, exc))
                        sys.stderr.flush()
            # The daemon went away: what it ran is gone (drop), and so is
            # anything left over; the output pipes of killed runs are closed.
            kill_leftovers()
            for run in list(self.runs.values()):
                for fd in list(run.streams):
                    self.unwatch(fd)
                    os.close(fd)
            self.runs.clear()
            self.reap()

    def dispatch(self, fd):
        kind, owner = self.handlers[fd]
        if kind == "client":
            self.read_requests(owner)
        elif kind == "child":
            os.read(self.wake_r, 4096)
            self.reap()
        elif kind == "display-listen":
            self.accept_display()
        elif kind == "display":
            self.read_display(fd)
        else:
            self.read_output(fd, owner)

    def accept_display(self):
        try:
            # _socket's own accept, which gives a descriptor (`socket` costs start-up time).
            fd, _ = self.display_listener._accept()  # type: ignore[attr-defined]
        except OSError:
            return
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        if len(self.displays) >= MOST_DISPLAY_CONNECTIONS:
            sock.close()  # a flood of connections: none is worth the descriptors
            return
        sock.setblocking(False)
        self.displays[sock.fileno()] = [sock, b""]
        self.watch(sock.fileno(), "display", None)

    def read_display(self, fd):
        """Forward each whole line (RUN_ID JSON) to the daemon, for a live run of its."""
        sock, pending = self.displays[fd]
        while True:
            try:
                data = sock.recv(CHUNK)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.close_display(fd)
                return
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                run_id, _, bundle = line.partition(b" ")
                run = self.runs.get(run_id)
                if run is not None and not run.keep:
                    self.send(run.client, b"display", run.id, b64(bundle))
            if len(pending) > MOST_DISPLAY_BYTES:
                self.close_display(fd)
                return
        self.displays[fd][1] = pending

    def close_display(self, fd):
        sock, _ = self.displays.pop(fd)
        self.unwatch(fd)
        sock.close()

    def drain_displays(self):
        """What runs sent before they ended is read before their exit is told."""
        for fd in list(self.displays):
            self.read_display(fd)

    def send(self, client, *fields):
        if client.closed:
            return
        try:
            client.sock.sendall(b" ".join(fields) + b"\n")
        except OSError:
            self.drop(client)

    def drop(self, client):
        """The daemon at the other end went away: its runs go with it."""
        if client.closed:
            return
        client.closed = True
        self.unwatch(client.sock.fileno())
        client.sock.close()
        for run in list(client.runs.values()):
            kill_run(run.id, run.pid)

    def read_requests(self, client):
        try:
            data = client.sock.recv(CHUNK)
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        client.pending += data
        while b"\n" in client.pending:
            line, client.pending = client.pending.split(b"\n", 1)
            fields = line.split()
            if len(fields) >= 2:
                self.handle(client, fields)

    def handle(self, client, fields):
        op, run_id = fields[0], fields[1]
        if op == b"run" and len(fields) in (4, 5):
            argv = binascii.a2b_base64(fields[2]).decode("utf-8", "surrogateescape").split("\0")
            self.start(client, run_id, argv, int(fields[3]), keep=fields[4:] == [b"keep"])
        elif op == b"kill":
            run = self.runs.get(run_id)
            if run is not None:
                kill_run(run.id, run.pid)
        elif op == b"signal" and len(fields) == 3:
            run = self.runs.get(run_id)
            if run is not None and run.code is None:
                try:
                    os.kill(run.pid, int(fields[2]))
                except OSError:
                    pass
        elif op == b"memory" and len(fields) == 3:
            run = self.runs.get(fields[2])
            self.send(client, b"memory", run_id, str(resident_bytes(run.pid) if run else -1).encode())
        elif op == b"settle":
            run = self.runs.get(run_id)
            if run is not None and run.keep:
                run.family = {pid: start_time(pid) for pid in descendants(run.pid)}
            self.send(client, b"settled", run_id)
        elif op == b"tidy":
            kill_leftovers(self.kept())
            self.send(client, b"tidied", run_id)
        elif op == b"ping":
            self.send(client, b"pong", run_id, str(os.getpid()).encode())

    def kept(self):
        """The processes of live kept runs (kernels) and those they had when
        they settled (still the same processes), which leftover sweeps spare."""
        spared = set()
        for run in self.runs.values():
            if run.keep and run.code is None:
                spared.add(run.pid)
                spared.update(pid for pid, started in run.family.items() if start_time(pid) == started)
        return spared

    def start(self, client, run_id, argv, limit, keep=False):
        env = dict(os.environ)
        env[MARKER] = run_id.decode()
        if not keep:
            # matplotlib's plt.show() hands figures to us (container/figures.py),
            # unless the block's environment chose a backend of its own.
            env["CELLBOX_DISPLAY"] = "%s:%s" % (self.display_name, run_id.decode())
            env.setdefault("MPLBACKEND", "module://cellbox_figures")
            figures = self.run_dir + "/python"
            env["PYTHONPATH"] = figures + ":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else figures
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            pid = os.posix_spawnp(
                argv[0],
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                ],
                setsid=True,
                setsigdef=RESET_SIGNALS,
                setsigmask=(),
            )
        except OSError as exc:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            # As a shell would say it, with the shell's exit codes.
            missing = isinstance(exc, FileNotFoundError)
            text = "%s: %s\n" % (argv[0], "not found" if missing else exc.strerror)
            self.send(client, b"started", run_id)
            self.send(client, b"out", run_id, b"2", b64(text.encode()))
            self.send(client, b"exit", run_id, b"127" if missing else b"126")
            return
        os.close(out_w)
        os.close(err_w)
        run = Run(run_id, pid, client, out_r, err_r, limit, keep)
        self.runs[run_id] = client.runs[run_id] = run
        self.send(client, b"started", run_id)
        self.watch(out_r, "output", run)
        self.watch(err_r, "output", run)

    def read_output(self, fd, run):
        data = os.read(fd, CHUNK)
        if data:
            # Past the limit the block runs on, and its pipes are still
            # drained (a full pipe would block it), but nothing is forwarded.
            if len(data) <= run.room:
                run.room -= len(data)
                self.send(run.client, b"out", run.id, run.streams[fd], b64(data))
            else:
                if run.room > 0:
                    self.send(run.client, b"out", run.id, run.streams[fd], b64(data[: run.room]))
                    run.room = 0
                if not run.cut:
                    run.cut = True
                    self.send(run.client, b"cut", run.id)
            return
        self.unwatch(fd)
        os.close(fd)
        del run.streams[fd]
        self.finish_if_done(run)

    def reap(self):
        # As a subreaper we also collect the leftovers reparented to us.
        by_pid = {run.pid: run for run in self.runs.values() if run.code is None}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            run = by_pid.get(pid)
            if run is None:
                continue
            code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
            run.code = 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell says
            # Whatever the block left behind goes now; that also closes any
            # copy of its stdout a leftover was holding.
            kill_run(run.id, run.pid)
            kill_leftovers(self.kept())
            after = oom_kills()
            run.oom = -1 if after < 0 or run.oom_before < 0 else after - run.oom_before
            self.finish_if_done(run)
        for run in by_pid.values():  # should not be: its process is gone unseen
            if run.code is None and not os.path.exists("/proc/%d" % run.pid):
                run.code, run.oom = 255, -1
                self.finish_if_done(run)

    def finish_if_done(self, run):
        if run.code is not None and not run.streams:
            self.drain_displays()
            del self.runs[run.id]
            run.client.runs.pop(run.id, None)
            self.send(run.client, b"exit", run.id, str(run.code).encode(), str(run.oom).encode())


def resident_bytes(pid):
    """A process's resident memory (VmRSS), -1 when it cannot be read."""
    try:
        with open("/proc/%d/status" % pid, "rb") as f:
            for line in f.read().split(b"\n"):
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return -1


def main(run_dir):
    """The runner's life: set up, then serve daemon after daemon; never returns.
    Kills every other process it can see but init and its parent: call it only
    in a sandbox (or a PID namespace) of its own."""
    # Started as a background job of a shell, which ignores SIGINT and SIGQUIT
    # for it; the runner itself should die of them like any process.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    become_subreaper()
    kill_orphans()
    runner = Runner(run_dir)
    # After the runner's own set-up: from here on it makes no setid file either.
    forbid_setid_files()
    runner.serve()
