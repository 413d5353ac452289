"""The exec path's shell scripts (container/scripts.py), run by the host's
/bin/sh against a made-up /proc: which processes the stray sweep would kill.

The made-up tree is what a container holds the moment a block is sent to a
container that has just started: init, its child the main process, and the
exec'd wrapper, which started in the same 10 ms clock tick as main.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cellbox.container import scripts as container_scripts


def stat_line(pid: int, comm: str, ppid: int, start_ticks: int) -> str:
    # proc(5): pid (comm) state ppid pgrp session tty tpgid flags minflt
    # cminflt majflt cmajflt utime stime cutime cstime priority nice
    # num_threads itrealvalue starttime ...
    after_state = [ppid, pid, pid, 0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 1, 0, start_ticks, 0, 0]
    return f"{pid} ({comm}) S " + " ".join(str(field) for field in after_state) + "\n"


def strays_in(fake_proc: Path, processes: list[tuple[int, str, int, int]]) -> set[int]:
    for pid, comm, ppid, start in processes:
        (fake_proc / str(pid)).mkdir()
        (fake_proc / str(pid) / "stat").write_text(stat_line(pid, comm, ppid, start))
    script = container_scripts.RUN_WRAPPER.split("\nrun_id=", 1)[0].replace("/proc/", f"{fake_proc}/")
    listed = subprocess.run(
        ["sh", "-c", script + "\nstrays", "cellbox-test"], capture_output=True, text=True, check=True
    ).stdout
    return {int(pid) for pid in listed.split()}


def test_a_block_started_in_the_same_tick_as_main_is_not_taken_for_main(tmp_path: Path) -> None:
    found = strays_in(tmp_path, [
        (1, "docker-init", 0, 100),
        (7, "sh", 1, 100),          # the container's main process
        (15, "sh", 0, 100),         # exec'd in the same tick; listed before 7 as text
        (16, "sleep", 7, 101),      # main's own child
        (20, "daemonized", 1, 150),  # a block's leftover, orphaned to init
    ])
    assert 7 not in found, "the main process would be killed, and the container with it"
    assert {16, 20} <= found


def test_of_two_children_of_init_started_in_one_tick_the_lower_pid_is_main(tmp_path: Path) -> None:
    found = strays_in(tmp_path, [
        (1, "docker-init", 0, 100),
        (9, "sh", 1, 100),
        (12, "orphan", 1, 100),
    ])
    assert found == {12}
