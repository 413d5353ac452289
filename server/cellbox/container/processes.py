"""Finding and killing what runs left behind, for the warm runner: a run's
own processes (by the CELLBOX_RUN marker in their environment), whatever is
left below the runner after a run (it is a child subreaper), orphans of an
earlier runner at start-up; and the memory limit's kill counter.

A process is always frozen (SIGSTOP) before it is killed, so that none can
fork or react meanwhile. Part of the runner: standard library only (see
runner.py).
"""

import _signal as signal  # not `signal`: it imports enum, which costs more than the rest
import os
import time

from cellbox.container.libc import call

MARKER = "CELLBOX_RUN"
"""In the environment of each run's process as CELLBOX_RUN=ID, and so of all it starts."""


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


def become_subreaper():
    """Have orphans of our runs reparented to us, not to init: however a
    block detaches (a new session, a cleared environment, a double fork), what
    it leaves stays our descendant."""
    try:
        return call("prctl", 36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        return False


def descendants(root):
    """Every live process below `root`, from /proc's parent links."""
    children: dict[int, list[int]] = {}
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


def start_time(pid):
    """When `pid` started, in clock ticks since boot (None when gone): with
    the PID, it names one process even after the PID is reused."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


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


def kill_leftovers(spared=frozenset()):
    """Kill every process below the runner but the `spared` ones (session
    kernels; not what they started). Runs are serial, so when one has ended
    whatever is still below us is its leftover (processes the daemon runs
    with docker exec are not below us, and are left alone)."""
    freeze_and_kill(lambda: [pid for pid in descendants(os.getpid()) if pid not in spared])


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
