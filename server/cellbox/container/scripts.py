"""Shell snippets the daemon runs inside sandbox containers.

Each run's processes carry `CELLBOX_RUN=<run id>` in their environment, which
children inherit even when they start a new session or process group. That is
what lets us find and kill everything a block started, in any image that has a
POSIX shell and grep, without privileges: the engine itself cannot kill an
exec (moby #9098).
"""

# Kill every process whose environment carries the run's marker. First freeze
# them all (SIGSTOP, repeated until no new one appears, so a process forked
# meanwhile is caught too), then kill them: frozen, none can react, fork or
# print "Killed" for a sibling that died first. The whole pass repeats until no
# marked process is left. The shell running this does not carry the marker.
_SWEEP = r"""
marked() {
  for f in $(grep -lsxzF "CELLBOX_RUN=$1" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}; echo "${p%/environ}"
  done
}
sweep() {
  round=0
  confirmed=
  while [ $round -lt 20 ]; do
    pids=$(marked "$1")
    if [ -z "$pids" ]; then
      # A process in the middle of execve shows an empty environment for a
      # moment; look once more, a little later, before calling it done.
      [ -n "$confirmed" ] && return 0
      confirmed=1
      sleep 0.01
      continue
    fi
    while :; do
      kill -STOP $pids 2>/dev/null
      more=$(marked "$1")
      [ "$more" = "$pids" ] && break
      pids=$more
    done
    kill -KILL $pids 2>/dev/null
    round=$((round+1))
  done
}
# Every process but init, the main process and this shell: runs are serial,
# so anything else is a leftover, even one that cleared its environment (and
# so its marker). Frozen, then killed, again until none is left.
# The main process is init's oldest child. An exec'd process (this shell, the
# block) has no parent in the container, so it is never taken for main, even
# when it starts in the same clock tick as main does (start times count 10 ms
# ticks), which is what happens to a block sent the moment a container starts;
# taking it for main killed the real main process, and the container with it.
# In a tie, the lower PID started first (the glob lists them as text: 15 < 7).
strays() {
  main=; oldest=
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = 1 ] && continue
    read -r line < "$d/stat" 2>/dev/null || continue
    set -- ${line##*) }
    [ "$2" = 1 ] || continue
    if [ -z "$oldest" ] || [ "${20}" -lt "$oldest" ] || { [ "${20}" = "$oldest" ] && [ "$p" -lt "$main" ]; }; then
      oldest=${20}; main=$p
    fi
  done
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = 1 ] || [ "$p" = "$main" ] || [ "$p" = "$$" ] && continue
    read -r line < "$d/stat" 2>/dev/null || continue
    set -- ${line##*) }
    [ "$1" = Z ] || echo "$p"
  done
}
sweep_strays() {
  round=0
  while [ $round -lt 20 ]; do
    pids=$(strays | tr '\n' ' ')
    [ -z "${pids% }" ] && return 0
    kill -STOP $pids 2>/dev/null
    kill -KILL $pids 2>/dev/null
    round=$((round+1))
  done
}
"""

# argv: sh -c RUN_WRAPPER cellbox-run RUN_ID STAMP STRAYS COMMAND...
# The marker is set on the block's command only, so this wrapper survives the
# sweep. After the block's own process ends, whatever it left running (a
# background job holding stdout, a daemon) is killed: otherwise the engine
# would keep the exec's output stream open and the run would hang.
# STAMP, when not empty (copy mode), is a file touched just before the block
# starts, so that what the block writes is found afterwards with `find -newer`.
# File times come from a coarse clock (a tick is 1-10 ms) and -newer is
# strict: wait for the clock to tick past the stamp before starting, or a file
# the block writes at once could carry the stamp's very time and be missed.
RUN_WRAPPER = _SWEEP + r"""
run_id=$1; stamp=$2; strays=$3; shift 3
if [ -n "$stamp" ]; then
  mkdir -p "${stamp%/*}" && : > "$stamp" && : > "$stamp.tick" || exit 125
  while ! [ "$stamp.tick" -nt "$stamp" ]; do : > "$stamp.tick"; done
fi
# The shell reports a killed child ("Killed") on its own stderr, which is not
# the block's output: point the shell's stderr at /dev/null and hand the real
# one to the block only, inside the subshell that becomes the block's process.
exec 3>&2 2>/dev/null
(exec 2>&3 3>&-; export CELLBOX_RUN="$run_id"; exec "$@")
status=$?
sweep "$run_id"
# STRAYS=1 where no runner lives in the container (copy mode, no Python):
# then a leftover that shed its marker is found as any process but init and
# the main one. Beside another daemon's runner it would kill that runner.
[ "$strays" = 1 ] && sweep_strays
exit $status
"""

# argv: sh -c KILL_RUN cellbox-kill RUN_ID — stops a run from outside (timeout).
KILL_RUN = _SWEEP + r"""
sweep "$1"
"""


# argv: sh -c SANDBOX_MAIN cellbox-sandbox RUNNER_PROGRAM RUN_DIR — the
# container's main process, under Docker's init (PID 1, reaps zombies). Where
# the image has Python it keeps the warm runner alive (RUNNER_PROGRAM is
# ship.runner_program(); see runner.py: it connects to the daemon's socket in
# RUN_DIR); a runner that dies is started again.
# Without Python it says "unavailable" on stdout, and the daemon runs blocks
# with one `docker exec` each. On SIGTERM it exits at once: stop and restart
# never wait out a grace period. First it says what it finds in the probe file
# the daemon wrote into RUN_DIR just before starting it ("workspace TOKEN"): a
# daemon whose engine mounts some other folder (a remote Docker engine creates
# a missing bind source on its own host) learns at once that it needs copy mode.
SANDBOX_MAIN = r"""
trap 'kill $runner 2>/dev/null; exit 0' TERM INT
probe=none
[ -r "$2/mount-probe" ] && read -r probe < "$2/mount-probe"
echo "workspace $probe $(stat -c %d:%i /workspace 2>/dev/null)"
if command -v python3 >/dev/null 2>&1; then
  while :; do
    python3 -I -S -c "$1" "$2" &
    runner=$!
    wait $runner
    sleep 0.2  # a runner that cannot start must not spin the CPU
  done
fi
echo unavailable
while :; do sleep 86400 & wait $!; done
"""

# argv: sh -c COPY_MAIN cellbox-sandbox — a copy-mode sandbox's main process.
# The daemon cannot reach a runner's socket there (the workspace is not
# shared), so blocks run with one `docker exec` each and the main process only
# keeps the container up, exiting at once on SIGTERM.
COPY_MAIN = r"""
trap 'exit 0' TERM INT
while :; do sleep 86400 & wait $!; done
"""

COPY_STAMP = "/workspace/.cellbox/run-stamp"
"""Touched by RUN_WRAPPER before a copy-mode block runs (.cellbox/ is never copied back)."""

# argv: sh -c COPY_LIST cellbox-list STAMP — after a copy-mode run: NUL-separated,
# the paths newer than STAMP (files, folders, symlinks), an empty entry, every
# file and symlink, then "stamp" or "nostamp" (the block removed the stamp:
# then every file counts as changed). .git/ and .cellbox/ are left out.
COPY_LIST = r"""
cd /workspace || exit 1
if [ -e "$1" ]; then
  find . \( -path ./.cellbox -o -path ./.git \) -prune -o -newer "$1" \( -type f -o -type d -o -type l \) -print0
  found=stamp
else
  found=nostamp
fi
printf '\0'
find . \( -path ./.cellbox -o -path ./.git \) -prune -o \( -type f -o -type l \) -print0
printf '%s' "$found"
"""

RUN_DIR = "/cellbox/run"
"""The daemon's folder for this sandbox's runner, mounted read-only: its socket
(runner.sock), the runner's one-shot token (token) and the mount probe."""
BLOCKS_DIR = "/cellbox/blocks"
"""Where the blocks the user did not name are, mounted read-only."""
KERNELS_DIR = "/cellbox/kernels"
"""Session kernels' folders (one per kernel, made by the daemon, owned by the
container's user), mounted read-write: a kernel binds its sockets there."""
PACKAGES_DIR = "/cellbox/packages"
"""The workspace's Python user site (PYTHONUSERBASE), mounted read-write from the
daemon's folder: packages a block installs stay for the next blocks."""
WORKSPACE_DIR = "/workspace"
"""Where the workspace is in the sandbox, and where blocks run."""
MOUNT_PROBE = "mount-probe"
"""A token the daemon writes before starting a container, which SANDBOX_MAIN echoes."""


def sandbox_main_argv(runner_program: str) -> list[str]:
    return ["/bin/sh", "-c", SANDBOX_MAIN, "cellbox-sandbox", runner_program, RUN_DIR]


def copy_main_argv() -> list[str]:
    return ["/bin/sh", "-c", COPY_MAIN, "cellbox-sandbox"]


def run_argv(run_id: str, command: list[str], stamp: str = "", sweep_strays: bool = True) -> list[str]:
    return ["sh", "-c", RUN_WRAPPER, "cellbox-run", run_id, stamp, "1" if sweep_strays else "0", *command]


def kill_argv(run_id: str) -> list[str]:
    return ["sh", "-c", KILL_RUN, "cellbox-kill", run_id]
