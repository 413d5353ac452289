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
    run ID ARGV LIMIT [keep|spawn]
                       start ARGV (base64 of the NUL-joined arguments) as a new
                       process, forwarding at most LIMIT bytes of its output;
                       with `keep`, a session's kernel: it outlives other runs
                       and their leftover sweeps (what it starts does not);
                       `PYTHON FILE` is forked from the warm interpreter
                       (warm_python.py) unless `spawn` says not to
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
    started ID HOW     the run's process exists; HOW is `fork` (from the warm
                       interpreter) or `spawn`, for the daemon's log
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
from cellbox.container.warm_python import FORK_ANSWER_SECONDS, STARTS_BEFORE_GIVING_UP, forkable, start_zygote

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
        self.pid = pid  # None while the warm interpreter has not said it forked
        self.forked = pid is None  # the warm interpreter's child: it, not us, waits for it
        self.killed = False  # asked to die before its pid was known
        self.argv = None  # a forked run's command, should it have to be spawned after all
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
        self.zygote = None  # the warm Python interpreter (warm_python.py), once a Python block asked for it
        self.zygote_for = None  # the interpreter name it is (to be) started for
        self.zygote_failures = 0

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
                    events = self.poll.poll(self.zygote_wait())
                except InterruptedError:
                    continue
                if not events:
                    self.zygote_overdue()
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
            self.stop_zygote(again=False)
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
        elif kind == "zygote":
            self.read_zygote()
        elif kind == "zygote-output":
            self.read_zygote_output()
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
            self.kill(run)

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
            how = fields[4] if len(fields) == 5 else b""
            self.start(client, run_id, argv, int(fields[3]), keep=how == b"keep", may_fork=how == b"")
        elif op == b"kill":
            run = self.runs.get(run_id)
            if run is not None:
                self.kill(run)
        elif op == b"signal" and len(fields) == 3:
            run = self.runs.get(run_id)
            if run is not None and run.code is None and run.pid is not None:
                try:
                    os.kill(run.pid, int(fields[2]))
                except OSError:
                    pass
        elif op == b"memory" and len(fields) == 3:
            run = self.runs.get(fields[2])
            self.send(client, b"memory", run_id, str(resident_bytes(run.pid) if run and run.pid else -1).encode())
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

    def kill(self, run):
        if run.pid is None:
            run.killed = True  # killed as soon as the warm interpreter says which process it is
        else:
            kill_run(run.id, run.pid)
        self.wake_zygote(run)

    def wake_zygote(self, run):
        """A forked block is its warm interpreter's child, told ended when that
        interpreter has waited for it: a block that stopped it (SIGSTOP to its
        parent) must not hang its own end."""
        if run.forked and self.zygote is not None and self.zygote.run is run:
            try:
                os.kill(self.zygote.pid, signal.SIGCONT)
            except OSError:
                pass

    def kept(self):
        """The processes of live kept runs (kernels) and those they had when
        they settled (still the same processes), which leftover sweeps spare;
        and the warm interpreter (not what it forked)."""
        spared = set()
        if self.zygote is not None:
            spared.add(self.zygote.pid)
        for run in self.runs.values():
            if run.keep and run.code is None:
                spared.add(run.pid)
                spared.update(pid for pid, started in run.family.items() if start_time(pid) == started)
        return spared

    def environment(self, keep):
        """A run's environment but its own two variables (run_variables):
        what the warm interpreter starts with too."""
        env = dict(os.environ)
        if not keep:
            # matplotlib's plt.show() hands figures to us (container/figures.py),
            # unless the block's environment chose a backend of its own.
            env.setdefault("MPLBACKEND", "module://cellbox_figures")
            figures = self.run_dir + "/python"
            env["PYTHONPATH"] = figures + ":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else figures
        return env

    def display_for(self, run_id):
        return "%s:%s" % (self.display_name, run_id.decode())

    def start(self, client, run_id, argv, limit, keep=False, may_fork=False):
        if may_fork and not keep and forkable(argv) and self.fork(client, run_id, argv, limit):
            return
        env = self.environment(keep)
        # Last, in this order, as the warm interpreter's children add them.
        env[MARKER] = run_id.decode()
        if not keep:
            env["CELLBOX_DISPLAY"] = self.display_for(run_id)
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
        self.send(client, b"started", run_id, b"spawn")
        self.watch(out_r, "output", run)
        self.watch(err_r, "output", run)
        if may_fork and forkable(argv) and self.zygote_for is None and self.zygote_failures < STARTS_BEFORE_GIVING_UP:
            self.zygote_for = argv[0]  # started once this run has ended (finish_if_done)

    # ------------------------------------------------- the warm interpreter

    def fork(self, client, run_id, argv, limit):
        """Have the warm interpreter fork the block; False when it cannot (not
        there, another interpreter, busy): the block is then spawned."""
        zygote = self.zygote
        if zygote is None or zygote.argv0 != argv[0] or zygote.run is not None:
            return False
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        run = Run(run_id, None, client, out_r, err_r, limit)
        try:
            zygote.go(run, self.display_for(run_id), argv[1], out_w, err_w)
        except OSError:
            for fd in (out_r, err_r):
                os.close(fd)
            self.stop_zygote()
            return False
        finally:
            os.close(out_w)
            os.close(err_w)
        run.argv = argv
        self.runs[run_id] = client.runs[run_id] = run
        self.watch(out_r, "output", run)
        self.watch(err_r, "output", run)
        return True

    def start_zygote(self):
        argv0, self.zygote_for = self.zygote_for, None
        try:
            with open(self.run_dir + "/cellbox_zygote.py", "rb") as f:
                source = f.read().decode()
        except OSError:
            self.zygote_failures = STARTS_BEFORE_GIVING_UP  # an old daemon wrote none
            return
        self.zygote = start_zygote(argv0, self.environment(False), source, RESET_SIGNALS)
        if self.zygote is None:
            self.zygote_failures += 1
            return
        self.watch(self.zygote.control.fileno(), "zygote", None)
        self.watch(self.zygote.output, "zygote-output", None)

    def stop_zygote(self, kill=True, again=True):
        """Stop the warm interpreter; with `again`, start another after the
        next run (unless too many died before they were ready)."""
        zygote, self.zygote = self.zygote, None
        if zygote is None:
            return
        self.unwatch(zygote.control.fileno())
        if zygote.output >= 0:
            self.unwatch(zygote.output)
        zygote.close(kill)
        if not zygote.ready:
            self.zygote_failures += 1
        if again and self.zygote_failures < STARTS_BEFORE_GIVING_UP:
            self.zygote_for = zygote.argv0
        run = zygote.run
        if run is None or run.id not in self.runs or run.code is not None:
            return
        if run.pid is None:
            if not run.client.closed:
                self.unfork(run)
        elif not os.path.exists("/proc/%d" % run.pid):
            self.ended(run, 255)  # it died with the block's exit status untold
        else:
            run.forked = False  # now our child (we are the subreaper): reap() hears of its end

    def unfork(self, run):
        """The warm interpreter did not fork `run` after all: spawn it instead,
        on new pipes (nothing was written to the old ones)."""
        for fd in list(run.streams):
            self.unwatch(fd)
            os.close(fd)
        run.streams = {}
        del self.runs[run.id]
        run.client.runs.pop(run.id, None)
        if run.killed:
            self.send(run.client, b"started", run.id, b"spawn")
            self.send(run.client, b"exit", run.id, b"137", b"0")
            return
        self.start(run.client, run.id, run.argv, run.room)

    def read_zygote(self):
        zygote = self.zygote
        if zygote is None:
            return
        message = zygote.message()
        if not message:
            if message is None:
                self.stop_zygote(kill=False)
            return
        if message == [b"ready"]:
            zygote.ready = True
            self.zygote_failures = 0
            if zygote.run is not None and zygote.run.pid is None:
                zygote.deadline = time.monotonic() + FORK_ANSWER_SECONDS  # a block already waits for it
        elif message[0] == b"forked" and len(message) == 2 and zygote.run is not None:
            run = zygote.run
            run.pid = int(message[1])
            zygote.deadline = None
            if run.id in self.runs:
                self.send(run.client, b"started", run.id, b"fork")
                if run.killed:
                    kill_run(run.id, run.pid)
        elif message[0] == b"exited" and len(message) == 3 and zygote.run is not None:
            run, zygote.run = zygote.run, None
            if run.code is None and run.pid == int(message[1]):
                status = int(message[2])
                self.ended(run, waitstatus_to_code(status) if status >= 0 else 255)
        elif message == [b"stale"]:
            # What its start-up read has changed (a new .pth file...): this
            # block is spawned, and a new interpreter started after it.
            self.stop_zygote(kill=False)

    def read_zygote_output(self):
        """Its own errors (a block's output never comes this way): to our stderr."""
        zygote = self.zygote
        if zygote is None:
            return
        try:
            data = os.read(zygote.output, CHUNK)
        except OSError:
            data = b""
        if data:
            os.write(2, b"cellbox runner: warm interpreter: " + data[-2000:])
        else:
            self.unwatch(zygote.output)
            os.close(zygote.output)
            zygote.output = -1  # it closed them: it is on its way out

    def zygote_wait(self):
        """The poll's timeout: until a `forked` answer is overdue, or for ever."""
        if self.zygote is None or self.zygote.deadline is None:
            return None
        return max(0.0, self.zygote.deadline - time.monotonic())

    def zygote_overdue(self):
        if self.zygote is not None and self.zygote.deadline is not None and time.monotonic() >= self.zygote.deadline:
            self.stop_zygote()

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
        if not run.streams and run.code is None:
            self.wake_zygote(run)  # its exit may be waiting for the interpreter, should the block have stopped it
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
            self.ended(run, waitstatus_to_code(status))
        for run in by_pid.values():  # should not be: its process is gone unseen
            # (A forked run's exit is told by the warm interpreter, which reaps it.)
            if run.code is None and not run.forked and not os.path.exists("/proc/%d" % run.pid):
                run.code, run.oom = 255, -1
                self.finish_if_done(run)

    def ended(self, run, code):
        """The run's own process ended with `code`."""
        run.code = code
        # Whatever the block left behind goes now; that also closes any
        # copy of its stdout a leftover was holding.
        kill_run(run.id, run.pid)
        kill_leftovers(self.kept())
        after = oom_kills()
        run.oom = -1 if after < 0 or run.oom_before < 0 else after - run.oom_before
        self.finish_if_done(run)

    def finish_if_done(self, run):
        if run.code is not None and not run.streams:
            self.drain_displays()
            del self.runs[run.id]
            run.client.runs.pop(run.id, None)
            self.send(run.client, b"exit", run.id, str(run.code).encode(), str(run.oom).encode())
            # After the run and its leftovers are gone, so that no block can
            # change what the new interpreter reads while it starts.
            if self.zygote_for is not None and self.zygote is None and not any(
                r.code is None and not r.keep for r in self.runs.values()
            ):
                self.start_zygote()


def waitstatus_to_code(status):
    """A wait status as a shell tells it: the exit code, or 128+N when killed by signal N."""
    code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    return 128 - code if code < 0 else code


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
