"""The warm runner: a small process kept alive inside each sandbox container.

It is NOT imported by the daemon. Its source is handed to the container's main
process as an argument (`python3 -I -S -c PROGRAM RUN_DIR`, PROGRAM from
ship.py), so nothing is baked into the image or copied in. It must stay
stdlib-only and run on Python 3.8+.
It imports only C-level modules (no json, re, subprocess, selectors, socket or
signal, which together tripled its start-up): a cold sandbox waits for it.

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
    run ID ARGV LIMIT  start ARGV (base64 of the NUL-joined arguments) as a new
                       process, forwarding at most LIMIT bytes of its output
    kill ID            kill that run and all it started
    ping ID            answered with: pong ID PID
Events:
    started ID         the run's process exists
    out ID 1|2 DATA    a chunk of its stdout (1) or stderr (2), base64
    cut ID             output went past LIMIT: the rest is read and dropped
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

import _socket
import binascii
import os
import select
import _signal as signal  # not `signal`: it imports enum, which costs more than the rest
import sys
import time

MARKER = "CELLBOX_RUN"
CHUNK = 65536
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGINT, signal.SIGQUIT, signal.SIGXFSZ, signal.SIGCHLD)
"""Signals a block gets with their default action, whatever the runner does with them."""


def b64(data):
    return binascii.b2a_base64(data, newline=False)


def marked_pids(marker):
    """Processes whose environment holds `marker` (bytes, e.g. b"CELLBOX_RUN=ab12"),
    and those whose environment cannot be read yet.

    A process in the middle of execve shows an empty environment for a moment
    (the new image's is not set up yet): seen as a daemonised child of a block
    surviving the sweep on a loaded machine. Such a process is "unsure"; so is
    nothing else, since zombies are skipped.
    """
    found, unsure = [], []
    own = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == own:
            continue
        try:
            with open("/proc/" + name + "/environ", "rb") as f:
                environ = f.read()
            if not environ:
                with open("/proc/" + name + "/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                        unsure.append(int(name))
                continue
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(name))
    return found, unsure


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def kill_run(run_id, pgid):
    """Freeze, then kill, the run's process group and every marked process (run_id: bytes)."""
    marker = MARKER.encode() + b"=" + run_id
    try:
        os.killpg(pgid, signal.SIGSTOP)
    except OSError:
        pass
    for _ in range(200):
        pids, unsure = marked_pids(marker)
        if not pids:
            if not unsure:
                break
            time.sleep(0.001)  # a process mid-execve: look again once its environment is there
            continue
        while True:  # freeze until no new marked process appears
            signal_all(pids, signal.SIGSTOP)
            again, _ = marked_pids(marker)
            if sorted(again) == sorted(pids):
                break
            pids = again
        signal_all(pids, signal.SIGKILL)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _libc_call(name, *args):
    """Call a libc function with integer or pointer arguments, through _ctypes
    alone: the ctypes package costs ~3 ms of start-up, which a cold sandbox waits for."""
    import _ctypes

    class Libc:
        _handle = _ctypes.dlopen(None)

    class CInt(_ctypes._SimpleCData):
        _type_ = "i"

    class CPointer(_ctypes._SimpleCData):
        _type_ = "P"

    class CFunction(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = CInt

    return CFunction((name, Libc))(*(CPointer(a) if isinstance(a, _Pointer) else a for a in args))


class _Pointer(int):
    """An argument passed as a pointer, not a C int."""


# Syscalls that can make a file setuid or setgid, by architecture: (number,
# index of the mode argument); and syscalls refused outright. openat2 and
# io_uring carry their mode where a filter cannot look.
_SETID_SYSCALLS = {
    0xC000003E: (  # x86_64
        ((90, 1), (91, 1), (268, 2), (452, 2), (2, 2), (257, 3), (85, 1), (133, 1), (259, 2)),
        (437, 425),
    ),
    0xC00000B7: (  # aarch64
        ((52, 1), (53, 2), (452, 2), (56, 3), (33, 2)),
        (437, 425),
    ),
}


def forbid_setid_files():
    """A seccomp filter, stacked on the engine's, under which no block can
    make a setuid or setgid file: the workspace is on the host, and a
    setuid-root program a root block left there would give any user of the
    host root (a nosuid mount only stops it running inside the sandbox).
    chmod-like and create-like calls with those mode bits fail with EPERM;
    openat2 says ENOSYS (libc falls back to openat) and io_uring EPERM; other
    architectures' syscalls (i386, x32) are refused. Needs no_new_privs,
    which the sandbox has by default; without it, no filter."""
    import struct

    arch = None
    machine = os.uname().machine
    if machine == "x86_64":
        arch = 0xC000003E
    elif machine == "aarch64":
        arch = 0xC00000B7
    if arch is None:
        return False
    checks, refused = _SETID_SYSCALLS[arch]
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JSET|K, RET|K
    program = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, eperm), (ld, 0, 0, 0)]
    if arch == 0xC000003E:
        program.append((0x35, 0, 1, 0x40000000))  # JGE: x32 syscalls
        program.append((ret, 0, 0, eperm))
    for number in refused:
        program += [(jeq, 0, 1, number), (ret, 0, 0, enosys if number == 437 else eperm)]
    for number, index in checks:
        # If nr matches: load the mode argument's low word, refuse setid bits.
        program += [
            (jeq, 0, 3, number), (ld, 0, 0, 16 + 8 * index), (jset, 0, 1, 0o6000),
            (ret, 0, 0, eperm), (ret, 0, 0, allow),
        ]
        program[-5] = (jeq, 0, 4, number)
    program.append((ret, 0, 0, allow))
    import _ctypes

    class Filter(_ctypes.Array):
        _type_ = type("CChar", (_ctypes._SimpleCData,), {"_type_": "c"})
        _length_ = 8 * len(program)

    class Fprog(_ctypes.Array):
        _type_ = Filter._type_
        _length_ = 16

    instructions = Filter.from_buffer_copy(b"".join(struct.pack("=HBBI", *i) for i in program))
    fprog = Fprog.from_buffer_copy(struct.pack("=HxxxxxxQ", len(program), _ctypes.addressof(instructions)))
    try:
        # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        return _libc_call("prctl", 22, 2, _Pointer(_ctypes.addressof(fprog)), 0, 0) == 0
    except Exception:
        return False


def become_subreaper():
    """Have orphans of our runs reparented to us, not to init: however a
    block detaches (a new session, a cleared environment, a double fork), what
    it leaves stays our descendant. ctypes itself costs ~3 ms of start-up, so
    prctl is reached through _ctypes alone."""
    try:
        return _libc_call("prctl", 36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        return False


def descendants(root):
    """Every live process below `root`, from /proc's parent links."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(name))
    found, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), ()):
            found.append(child)
            pending.append(child)
    return found


def freeze_and_kill(find):
    """Kill the processes `find()` lists: frozen first (SIGSTOP), so that none
    can fork or react meanwhile, then killed; again until none is left. One
    we may not signal (another user's) is left out rather than tried again."""
    spared = set()
    for _ in range(50):
        pids = [pid for pid in find() if pid not in spared]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
            except PermissionError:
                spared.add(pid)
            except OSError:
                pass
        signal_all(pids, signal.SIGKILL)
        time.sleep(0.001)


def kill_leftovers():
    """Kill every process below the runner. Runs are serial, so when one has
    ended whatever is still below us is its leftover (processes the daemon
    runs with docker exec are not below us, and are left alone)."""
    freeze_and_kill(lambda: descendants(os.getpid()))


def kill_orphans():
    """At start-up, before any run of ours: kill every process but init, the
    main process and ourselves. A runner before us that was killed (wedged)
    could not take its runs' leftovers with it; they went to init."""
    ours = (1, os.getpid(), os.getppid())
    freeze_and_kill(lambda: [
        int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) not in ours and not is_zombie(int(n))
    ])


def is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True  # gone


OOM_COUNTERS = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")
"""The container's own cgroup, as the engine mounts it: v1, then v2."""


def oom_kills():
    """How many processes the memory limit has killed in this container; -1 if unknown."""
    for path in OOM_COUNTERS:
        try:
            with open(path, "rb") as f:
                for line in f.read().split(b"\n"):
                    if line.startswith(b"oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return -1


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.pending = b""
        self.runs = {}
        self.closed = False


class Run:
    def __init__(self, run_id, pid, client, stdout, stderr, limit):
        self.id = run_id
        self.pid = pid
        self.client = client
        self.streams = {stdout: b"1", stderr: b"2"}
        self.code = None
        self.room = limit  # bytes of output still to forward
        self.cut = False
        self.oom_before = oom_kills()


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
        else:
            self.read_output(fd, owner)

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
        if op == b"run" and len(fields) == 4:
            argv = binascii.a2b_base64(fields[2]).decode("utf-8", "surrogateescape").split("\0")
            self.start(client, run_id, argv, int(fields[3]))
        elif op == b"kill":
            run = self.runs.get(run_id)
            if run is not None:
                kill_run(run.id, run.pid)
        elif op == b"ping":
            self.send(client, b"pong", run_id, str(os.getpid()).encode())

    def start(self, client, run_id, argv, limit):
        env = dict(os.environ)
        env[MARKER] = run_id.decode()
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
        run = Run(run_id, pid, client, out_r, err_r, limit)
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
            kill_leftovers()
            after = oom_kills()
            run.oom = -1 if after < 0 or run.oom_before < 0 else after - run.oom_before
            self.finish_if_done(run)
        for run in by_pid.values():  # should not be: its process is gone unseen
            if run.code is None and not os.path.exists("/proc/%d" % run.pid):
                run.code, run.oom = 255, -1
                self.finish_if_done(run)

    def finish_if_done(self, run):
        if run.code is not None and not run.streams:
            del self.runs[run.id]
            run.client.runs.pop(run.id, None)
            self.send(run.client, b"exit", run.id, str(run.code).encode(), str(run.oom).encode())


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
