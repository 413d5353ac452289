"""The warm Python interpreter: started once by the runner as
`python -c SOURCE` (the block's own interpreter, found on PATH as a block's
is), it gets as far as a fresh `python FILE` does before running FILE, then
waits; for each Python block the runner sends it, it forks, and the child
becomes that block's process, so the block skips the interpreter's start-up
(~10 ms here) but still gets a process of its own.

The child must be what `python FILE` would be, and tests/e2e/test_fork_path.py
holds it to that: `__main__` cleared and filled as the interpreter fills it for
a file (`__file__`, a SourceFileLoader, `__cached__`...), `sys.argv`,
`sys.orig_argv` and `sys.path[0]` as for FILE, the run's own environment
variables set, no module imported that a fresh interpreter would not have
(this one imports `_socket` and `gc`, and the child forgets them), and an uncaught
exception told with the same traceback, exit code and stderr. The random
module is never imported here, so each child seeds its own.

What a fork cannot make fresh, and why it is still chosen: the children share
this interpreter's string hash seed (`hash("a")` is the same in two blocks),
and a block's stack has two frames of ours above its module's (`<string>`).
The block's arguments are written over ours, so ps and pgrep -f show
`python FILE`, but /proc/PID/cmdline ends in more NULs than a fresh one's.
What start-up made is frozen for the garbage collector (`gc.freeze()`), so
`gc.get_freeze_count()` is not 0 and `gc.get_objects()` leaves it out. And
the block's process ends as _finish says, not by the interpreter's whole
finalization.
A fresh interpreter also reads the site folders' `.pth` files and
`usercustomize` at start-up: when a block changes them (`pip install`), the
next request is answered `stale` and the runner starts that block the usual
way and this interpreter anew.

Protocol, on a SOCK_SEQPACKET socket at fd 3 (one message each):
    runner -> zygote: go NUL RUN_ID NUL DISPLAY NUL ARGV0 NUL FILE, with the
                      block's stdout and stderr pipes as SCM_RIGHTS
    zygote -> runner: ready | forked PID | exited PID WAITSTATUS | stale

Standard library only, Python 3.8 or later; it may import nothing a fresh
interpreter would not have imported but `_socket` and `gc`.
"""


def _zygote():
    import _socket
    import os
    import sys

    # Measured before the first request: what a fresh interpreter's start-up
    # read. A change there (a new .pth file, a user site made by `pip install
    # --user`, another interpreter on PATH) makes this interpreter stale.
    def fingerprint():
        seen: list[tuple[str, int | None, int | None]] = []
        site = sys.modules.get("site")
        folders = list(sys.path)
        if site is not None and getattr(site, "ENABLE_USER_SITE", False) and getattr(site, "USER_SITE", None):
            folders.append(site.USER_SITE)
        for path in [sys.executable] + folders:
            if not path:
                continue
            try:
                st = os.stat(path)
                seen.append((path, st.st_ino, st.st_mtime_ns))
            except OSError:
                seen.append((path, None, None))
                continue
            # A folder's time changes when a file is added or removed, not
            # when one is rewritten: where a block may write (the user site),
            # the files start-up runs are looked at one by one too.
            if path in folders and os.access(path, os.W_OK):
                try:
                    names = [n for n in os.listdir(path) if n.endswith(".pth") or n in RUN_AT_START]
                except OSError:
                    continue
                for name in sorted(names):
                    try:
                        st = os.stat(os.path.join(path, name))
                        seen.append((os.path.join(path, name), st.st_size, st.st_mtime_ns))
                    except OSError:
                        pass
        return seen

    RUN_AT_START = ("sitecustomize.py", "usercustomize.py")

    def on_path(name):
        """Where PATH finds `name`, as posix_spawnp would."""
        if "/" in name:
            return name
        for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
            candidate = os.path.join(folder or ".", name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return None

    start = fingerprint()
    # compile() sets up the AST's types the first time it is called: do it now,
    # not on a block's time.
    compile("", "<zygote>", "exec", dont_inherit=True)
    # Out of the garbage collector's sight: the block's collections, and the
    # last one at its exit, then skip what start-up made, rather than write
    # to (and so copy) every page that holds it: ~2 ms of a block's 5 here.
    import gc

    gc.freeze()
    # `ps` would show this whole program as our argument: say what we are.
    _retitle(os, [os.fsencode(sys.orig_argv[0] if hasattr(sys, "orig_argv") else sys.executable), b"-c", TITLE])
    control = _socket.socket(fileno=3)
    control.send(b"ready")
    while True:
        try:
            message, ancillary, _, _ = control.recvmsg(65536, _socket.CMSG_SPACE(8))
        except InterruptedError:
            continue
        if not message:
            os._exit(0)  # the runner went away
        fds = []
        for level, kind, data in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds += [int.from_bytes(data[i:i + 4], sys.byteorder) for i in range(0, len(data) - 3, 4)]
        fields = message.split(b"\0")
        if len(fields) != 5 or fields[0] != b"go" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        _, run_id, display, asked_for, path = fields
        interpreter = os.fsdecode(asked_for)
        if fingerprint() != start or on_path(interpreter) != sys.executable:
            for fd in fds:
                os.close(fd)
            control.send(b"stale")
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            break
        for fd in fds:
            os.close(fd)
        control.send(b"forked %d" % pid)
        try:
            _, waited = os.waitpid(pid, 0)
        except ChildProcessError:
            waited = -1  # reaped elsewhere: the runner knows better
        control.send(b"exited %d %d" % (pid, waited))

    # The child: the block's process from here on.
    control.close()
    os.setsid()
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.environ["CELLBOX_RUN"] = os.fsdecode(run_id)
    if display:
        os.environ["CELLBOX_DISPLAY"] = os.fsdecode(display)
    sys.modules.pop("_socket", None)
    sys.modules.pop("gc", None)
    filename = os.fsdecode(path)
    absolute = os.path.abspath(filename)
    sys.argv[:] = [filename]
    _retitle(os, [asked_for, path])  # as `ps` and pgrep -f show a spawned block
    if hasattr(sys, "orig_argv"):
        sys.orig_argv[:] = [interpreter, filename]
    if sys.path and sys.path[0] == "":  # not with -P / PYTHONSAFEPATH, as for a fresh run
        sys.path[0] = os.path.dirname(os.path.realpath(filename))
    ours = (sys._getframe(0).f_code, sys._getframe(1).f_code)  # before the names go
    finish = _finish
    main = sys.modules["__main__"]
    namespace = main.__dict__
    builtins = namespace["__builtins__"]
    loader_type = sys.modules["_frozen_importlib_external"].SourceFileLoader
    namespace.clear()
    namespace.update({
        "__name__": "__main__",
        "__doc__": None,
        "__package__": None,
        "__loader__": loader_type("__main__", absolute),
        "__spec__": None,
        "__annotations__": {},
        "__builtins__": builtins,
        "__file__": absolute,
        "__cached__": None,
    })
    try:
        with open(filename, "rb") as source:
            code = compile(source.read(), absolute, "exec", dont_inherit=True)
        del source
        exec(code, namespace)
    except SystemExit as exit:
        told = exit.code
        del exit
        if told is None:
            status = 0
        elif isinstance(told, int):
            status = told
        else:
            # As the interpreter says a SystemExit's message: on stderr, status 1.
            sys.stdout.flush()
            sys.stderr.write(str(told) + "\n")
            status = 1
        finish(status, namespace)
    except BaseException:
        # Told as the interpreter tells it, without our two frames: through
        # whatever sys.excepthook the block left, after it ran.
        hook = sys.excepthook

        def told_without_our_frames(kind, value, tb):
            while tb is not None and tb.tb_frame.f_code in ours:
                tb = tb.tb_next
            if isinstance(value, BaseException):
                value.__traceback__ = tb
            hook(kind, value, tb)

        sys.excepthook = told_without_our_frames
        raise  # the interpreter's own handling and finalization
    finish(0, namespace)


TITLE = b"# The warm Python interpreter of cellbox's runner: each Python block is forked from it"
"""The zygote's command line as `ps` shows it (its -c argument, the program
itself, is many lines)."""


def _retitle(os, words):
    """Show `words` as this process's arguments (ps, pgrep -f, /proc/PID/cmdline),
    written over the memory its arguments were given in, the rest zeroed (so
    /proc/PID/cmdline ends in more NULs than a spawned process's, which ps and
    pgrep do not show). Left as it was if they do not fit, or if /proc says no."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: stat's fields 48 and 49
        title = b"\0".join(words) + b"\0"
        if len(title) > end - start:
            return
        mem = os.open("/proc/self/mem", os.O_RDWR)
        try:
            os.pwrite(mem, title + bytes(end - start - len(title)), start)
        finally:
            os.close(mem)
    except (OSError, ValueError, IndexError):
        pass


def _finish(status, namespace):
    """End the block's process as the interpreter's finalization would, as a
    block can see it: threads joined, atexit handlers run, streams flushed, the
    block's globals released (their __del__ and weakref callbacks run, files
    left open are flushed), a garbage collection; then exit. The interpreter
    would also tear down every other module, which in a forked child touches,
    and so copies, most of the parent's pages: ~7 ms, most of a block's cost.
    What it skips: __del__ of objects a block left in another module's
    globals. An uncaught exception is not ended here but by the interpreter."""
    import os
    import sys

    def flush():
        """Flush stdout and stderr; whether stdout could not be."""
        failed = False
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                failed = failed or stream is sys.stdout
        return failed

    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()
    failed = flush()
    # As the interpreter clears a module: the names with one underscore first.
    for name in [n for n in namespace if n[:1] == "_" and n[:2] != "__"]:
        namespace[name] = None
    for name in [n for n in namespace if n != "__builtins__"]:
        namespace[name] = None
    import gc

    gc.collect()
    if flush() or failed:
        status = 120  # as the interpreter exits when it cannot flush stdout
    os._exit(status & 0xFF)


_zygote()
