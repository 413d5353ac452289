"""What a user reads when something is mistyped or out of reach (issue 13,
items 13-15): the language or key that was not understood and the nearest
one, why a block is only saved, file names and 1-based line numbers instead of
the protocol's fields and URIs, and which process holds a Docker setting."""

from __future__ import annotations

from tests.e2e.daemon_support import cellbox


def test_a_daemon_started_with_a_broken_docker_host_says_it_holds_it(workspace, runtime_dir):
    started = cellbox("daemon", "start", str(workspace), env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert started.returncode == 0
    pid = started.stdout.split("pid ")[1].split()[0]
    # This shell has no DOCKER_HOST: the daemon's is the one that counts.
    clean = cellbox("exec", "-L", "sh", "-c", "echo hi", cwd=workspace, env={"DOCKER_HOST": ""})
    assert clean.returncode == 1
    assert f"This is the project's daemon (pid {pid}), shared by the editor and `cellbox run`: it was started " \
        "with DOCKER_HOST=tcp://127.0.0.1:1 and keeps that setting" in clean.stderr
    assert "`cellbox daemon stop`, then run again" in clean.stderr
    assert cellbox("daemon", "stop", str(workspace)).returncode == 0
    again = cellbox("exec", "-L", "sh", "-c", "echo hi", cwd=workspace, env={"DOCKER_HOST": ""})
    assert (again.returncode, again.stdout) == (0, "hi\n")
