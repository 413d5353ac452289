"""The warm runner: a small process started once inside each sandbox container.

It is NOT imported by the daemon. Its source is sent as `python3 -c SOURCE`
over one long-lived `docker exec`, so nothing is baked into the image or copied
into the container. It must stay stdlib-only and run on any Python 3.8+.

Protocol, one JSON object per line. Requests on stdin:
    {"op": "run", "id": ID, "argv": [...]}   start a block as a new process
    {"op": "kill", "id": ID}                 kill that run and all it started
    {"op": "ping", "id": ID}                 answered with {"ev": "pong", "id": ID}
Events on stdout:
    {"ev": "ready", "pid": N}                once, at start
    {"ev": "started", "id": ID}              the run's process exists
    {"ev": "out", "id": ID, "s": "stdout"|"stderr", "b": BASE64}
    {"ev": "exit", "id": ID, "code": N}      after all of the run's output

Each run is a fresh process in a session and process group of its own, with
CELLBOX_RUN=ID in its environment (inherited by everything it starts, even
what leaves the group). When the run's process exits, or on kill, the runner
freezes and kills the whole group and every process carrying the marker, so
nothing of the run survives and no leftover holds its output open.
"""

import base64
import json
import os
import selectors
import signal
import subprocess
import sys

MARKER = "CELLBOX_RUN"
CHUNK = 65536


def emit(event):
    sys.stdout.buffer.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
    sys.stdout.buffer.flush()


def marked_pids(marker):
    """Processes whose environment holds `marker` (bytes, e.g. b"CELLBOX_RUN=ab12")."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/environ", "rb") as f:
                entries = f.read().split(b"\0")
        except OSError:
            continue
        if marker in entries:
            found.append(int(name))
    return found


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def kill_run(run_id, pgid):
    """Freeze, then kill, the run's process group and every marked process."""
    marker = (MARKER + "=" + run_id).encode()
    try:
        os.killpg(pgid, signal.SIGSTOP)
    except OSError:
        pass
    for _ in range(20):
        pids = marked_pids(marker)
        if not pids:
            break
        while True:  # freeze until no new marked process appears
            signal_all(pids, signal.SIGSTOP)
            again = marked_pids(marker)
            if sorted(again) == sorted(pids):
                break
            pids = again
        signal_all(pids, signal.SIGKILL)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


class Run:
    def __init__(self, run_id, process):
        self.id = run_id
        self.process = process
        self.open_streams = 2
        self.code = None


class Runner:
    def __init__(self):
        self.selector = selectors.DefaultSelector()
        self.runs = {}
        self.pending = b""
        # SIGCHLD wakes the selector through this pipe, so exits are seen at
        # once without a thread per run or a polling sleep.
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wake_w)
        self.selector.register(self.wake_r, selectors.EVENT_READ, ("child", None))
        self.stdin = sys.stdin.buffer.fileno()
        self.selector.register(self.stdin, selectors.EVENT_READ, ("stdin", None))

    def serve(self):
        emit({"ev": "ready", "pid": os.getpid()})
        while True:
            for key, _ in self.selector.select():
                kind, run = key.data
                if kind == "stdin":
                    if not self.read_requests():
                        return
                elif kind == "child":
                    os.read(self.wake_r, 4096)
                    self.reap()
                else:
                    self.read_output(key.fd, kind, run)

    def read_requests(self):
        data = os.read(self.stdin, CHUNK)
        if not data:  # the daemon went away: take every run down with us
            for run in list(self.runs.values()):
                kill_run(run.id, run.process.pid)
            return False
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            if line.strip():
                self.handle(json.loads(line))
        return True

    def handle(self, request):
        op = request.get("op")
        if op == "run":
            self.start(request["id"], request["argv"])
        elif op == "kill":
            run = self.runs.get(request["id"])
            if run is not None:
                kill_run(run.id, run.process.pid)
        elif op == "ping":
            emit({"ev": "pong", "id": request.get("id")})

    def start(self, run_id, argv):
        env = dict(os.environ)
        env[MARKER] = run_id
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            # As a shell would say it, with the shell's exit codes.
            emit({"ev": "started", "id": run_id})
            text = "%s: %s\n" % (argv[0], "not found" if isinstance(exc, FileNotFoundError) else exc.strerror)
            emit({"ev": "out", "id": run_id, "s": "stderr", "b": base64.b64encode(text.encode()).decode()})
            emit({"ev": "exit", "id": run_id, "code": 127 if isinstance(exc, FileNotFoundError) else 126})
            return
        run = Run(run_id, process)
        self.runs[run_id] = run
        emit({"ev": "started", "id": run_id})
        self.selector.register(process.stdout.fileno(), selectors.EVENT_READ, ("stdout", run))
        self.selector.register(process.stderr.fileno(), selectors.EVENT_READ, ("stderr", run))

    def read_output(self, fd, stream, run):
        data = os.read(fd, CHUNK)
        if data:
            emit({"ev": "out", "id": run.id, "s": stream, "b": base64.b64encode(data).decode()})
            return
        self.selector.unregister(fd)
        os.close(fd)
        run.open_streams -= 1
        self.finish_if_done(run)

    def reap(self):
        for run in list(self.runs.values()):
            if run.code is None and run.process.poll() is not None:
                code = run.process.returncode
                run.code = 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell says
                # Whatever the block left behind goes now; that also closes
                # any copy of its stdout a leftover was holding.
                kill_run(run.id, run.process.pid)
                self.finish_if_done(run)

    def finish_if_done(self, run):
        if run.code is not None and run.open_streams == 0:
            del self.runs[run.id]
            run.process.stdout = run.process.stderr = None  # closed above
            emit({"ev": "exit", "id": run.id, "code": run.code})


if __name__ == "__main__":
    # Started as a background job of a shell, which ignores SIGINT and SIGQUIT
    # for it; blocks must get the default behaviour, as under `docker exec`.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    Runner().serve()
