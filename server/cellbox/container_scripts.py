"""Shell snippets the daemon runs inside sandbox containers.

Each run's processes carry `CELLBOX_RUN=<run id>` in their environment, which
children inherit even when they start a new session or process group. That is
what lets us find and kill everything a block started, in any image that has a
POSIX shell and grep, without privileges: the engine itself cannot kill an
exec (moby #9098).
"""

# Kill every process whose environment carries the run's marker; repeat until
# none is left, so that children forked during the sweep are caught too. The
# shell running this does not carry the marker itself (see RUN_WRAPPER).
_SWEEP = r"""
sweep() {
  n=0
  while [ $n -lt 20 ]; do
    found=$(grep -lsxzF "CELLBOX_RUN=$1" /proc/[0-9]*/environ 2>/dev/null)
    [ -z "$found" ] && return 0
    for f in $found; do p=${f#/proc/}; kill -9 "${p%/environ}" 2>/dev/null; done
    n=$((n+1))
  done
}
"""

# argv: sh -c RUN_WRAPPER cellbox-run RUN_ID COMMAND...
# The marker is set on the block's command only, so this wrapper survives the
# sweep. After the block's own process ends, whatever it left running (a
# background job holding stdout, a daemon) is killed: otherwise the engine
# would keep the exec's output stream open and the run would hang.
RUN_WRAPPER = _SWEEP + r"""
run_id=$1; shift
CELLBOX_RUN=$run_id "$@"
status=$?
sweep "$run_id"
exit $status
"""

# argv: sh -c KILL_RUN cellbox-kill RUN_ID — stops a run from outside (timeout).
KILL_RUN = _SWEEP + r"""
sweep "$1"
"""


def run_argv(run_id: str, command: list[str]) -> list[str]:
    return ["sh", "-c", RUN_WRAPPER, "cellbox-run", run_id, *command]


def kill_argv(run_id: str) -> list[str]:
    return ["sh", "-c", KILL_RUN, "cellbox-kill", run_id]
