"""The warm runner: a small process kept alive inside each sandbox container.

It is NOT imported by the daemon. Its source is handed to the container's main
process as an argument (`python3 -c SOURCE`), so nothing is baked into the
image or copied in. It must stay stdlib-only and run on any Python 3.8+.

It listens on a Unix socket in the workspace (`/workspace/.cellbox/runner.sock`),
which the daemon reaches through the bind mount: no `docker exec` round trip
per block, and each daemon has a connection of its own. When it is listening
it prints {"ev": "ready", "pid": N} on stdout, which a daemon attached to the
container reads on a cold start.

Protocol on each connection, one JSON object per line. Requests:
    {"op": "run", "id": ID, "argv": [...]}   start a block as a new process
    {"op": "kill", "id": ID}                 kill that run and all it started
    {"op": "ping", "id": ID}                 answered with {"ev": "pong", "id": ID, "pid": N}
Events:
    {"ev": "started", "id": ID}              the run's process exists
    {"ev": "out", "id": ID, "s": "stdout"|"stderr", "b": BASE64}
    {"ev": "exit", "id": ID, "code": N}      after all of the run's output

Each run is a fresh process in a session and process group of its own, with
CELLBOX_RUN=ID in its environment (inherited by everything it starts, even
what leaves the group). When the run's process exits, on kill, or when the
connection that asked for it closes (the daemon died), the runner freezes and
kills the whole group and every process carrying the marker: nothing of the
run survives, and no leftover holds its output open.
"""

import base64
import json
import os
import selectors
import signal
import socket
import subprocess
import sys

MARKER = "CELLBOX_RUN"
CHUNK = 65536


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


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.pending = b""
        self.runs = {}
        self.closed = False


class Run:
    def __init__(self, run_id, process, client):
        self.id = run_id
        self.process = process
        self.client = client
        self.open_streams = 2
        self.code = None


class Runner:
    def __init__(self, socket_path):
        self.selector = selectors.DefaultSelector()
        self.runs = {}
        # SIGCHLD wakes the selector through this pipe, so exits are seen at
        # once without a thread per run or a polling sleep.
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wake_w)
        self.selector.register(self.wake_r, selectors.EVENT_READ, ("child", None))
        os.makedirs(os.path.dirname(socket_path), exist_ok=True)
        for stale in (socket_path, socket_path + ".unavailable"):  # left by an earlier container
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is for its owner only
        try:
            self.listener.bind(socket_path)
        finally:
            os.umask(old_umask)
        self.listener.listen(64)
        # For a daemon that finds this runner wedged (connects, no answer) and
        # must kill it to have the container's main process start a new one.
        with open(socket_path + ".pid", "w") as f:
            f.write(str(os.getpid()))
        self.selector.register(self.listener, selectors.EVENT_READ, ("accept", None))

    def serve(self):
        sys.stdout.write(json.dumps({"ev": "ready", "pid": os.getpid()}) + "\n")
        sys.stdout.flush()
        while True:
            for key, _ in self.selector.select():
                kind, owner = key.data
                if kind == "accept":
                    sock, _ = self.listener.accept()
                    self.selector.register(sock, selectors.EVENT_READ, ("client", Client(sock)))
                elif kind == "client":
                    self.read_requests(owner)
                elif kind == "child":
                    os.read(self.wake_r, 4096)
                    self.reap()
                else:
                    self.read_output(key.fd, kind, owner)

    def send(self, client, event):
        if client.closed:
            return
        try:
            client.sock.sendall(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        except OSError:
            self.drop(client)

    def drop(self, client):
        """The daemon at the other end went away: its runs go with it."""
        if client.closed:
            return
        client.closed = True
        self.selector.unregister(client.sock)
        client.sock.close()
        for run in list(client.runs.values()):
            kill_run(run.id, run.process.pid)

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
            if line.strip():
                self.handle(client, json.loads(line))

    def handle(self, client, request):
        op = request.get("op")
        if op == "run":
            self.start(client, request["id"], request["argv"])
        elif op == "kill":
            run = self.runs.get(request["id"])
            if run is not None:
                kill_run(run.id, run.process.pid)
        elif op == "ping":
            self.send(client, {"ev": "pong", "id": request.get("id"), "pid": os.getpid()})

    def start(self, client, run_id, argv):
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
            missing = isinstance(exc, FileNotFoundError)
            text = "%s: %s\n" % (argv[0], "not found" if missing else exc.strerror)
            self.send(client, {"ev": "started", "id": run_id})
            self.send(client, {"ev": "out", "id": run_id, "s": "stderr", "b": base64.b64encode(text.encode()).decode()})
            self.send(client, {"ev": "exit", "id": run_id, "code": 127 if missing else 126})
            return
        run = Run(run_id, process, client)
        self.runs[run_id] = client.runs[run_id] = run
        self.send(client, {"ev": "started", "id": run_id})
        self.selector.register(process.stdout.fileno(), selectors.EVENT_READ, ("stdout", run))
        self.selector.register(process.stderr.fileno(), selectors.EVENT_READ, ("stderr", run))

    def read_output(self, fd, stream, run):
        data = os.read(fd, CHUNK)
        if data:
            self.send(run.client, {"ev": "out", "id": run.id, "s": stream, "b": base64.b64encode(data).decode()})
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
            run.client.runs.pop(run.id, None)
            run.process.stdout = run.process.stderr = None  # closed above
            self.send(run.client, {"ev": "exit", "id": run.id, "code": run.code})


if __name__ == "__main__":
    # Started as a background job of a shell, which ignores SIGINT and SIGQUIT
    # for it; blocks must get the default behaviour, as under `docker exec`.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    Runner(sys.argv[1]).serve()
