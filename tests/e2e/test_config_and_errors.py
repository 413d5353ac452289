"""Settings from files and the client, and the errors a person can act on."""

from __future__ import annotations

import time

import pytest
from pygls.exceptions import JsonRpcException

from tests.conftest import TEST_IMAGE, containers_of


async def test_pyproject_tool_table_configures_the_workspace(make_workspace, start_daemon):
    workspace = make_workspace("pyproj", config="")
    (workspace / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.cellbox]\nimage = "{TEST_IMAGE}"\n'
        "[tool.cellbox.execution_policies]\npython = false\n"
    )
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", "print(1)"))
    assert result["blocks"][0]["executed"] is False
    assert result["output"].startswith("Code saved to ")


async def test_cellbox_toml_wins_over_pyproject(make_workspace, start_daemon):
    workspace = make_workspace("both", config=f'image = "{TEST_IMAGE}"\ntimeout = 1\n')
    (workspace / "pyproject.toml").write_text("[tool.cellbox]\ntimeout = 30\n")
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("sh", "sleep 10"))
    assert result["timedOut"] is True


async def test_initialization_options_override_files(make_workspace, start_daemon):
    workspace = make_workspace("opts", config='image = "no-such-image:never"\ntimeout = 30\n')
    daemon = await start_daemon(workspace, init_options={"image": TEST_IMAGE, "executionPolicies": {"sh": False}})
    result = await daemon.execute(("sh", "echo hi"), ("bash", "echo runs"))
    assert [b["executed"] for b in result["blocks"]] == [False, True]
    assert result["blocks"][1]["output"] == "runs\n"


async def test_a_request_timeout_overrides_the_configured_one(make_workspace, start_daemon):
    workspace = make_workspace("req", config=f'image = "{TEST_IMAGE}"\ntimeout = 1\n')
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("sh", "sleep 2; echo slept"), timeout=10)
    assert (result["timedOut"], result["output"]) == (False, "slept\n")


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ("timeout = 0\n", ["cellbox.toml", "timeout", "at least 1"]),
        ('network = 3\n', ["cellbox.toml", "network", "string"]),
        ("colour = 'red'\n", ["cellbox.toml", "colour", "allowed"]),
        ("[execution_policies]\nruby = true\n", ["cellbox.toml", "ruby", "known"]),
        ("image = [\n", ["cellbox.toml", "TOML"]),
    ],
)
async def test_an_invalid_config_value_is_a_clear_error_and_the_daemon_keeps_serving(
    make_workspace, start_daemon, config, names
):
    bad = make_workspace("bad", config=f'image = "{TEST_IMAGE}"\n' + config)
    good = make_workspace("good")
    daemon = await start_daemon(good)
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("sh", "true"), workspace=str(bad))
    assert error.value.code == -32001
    for name in names:
        assert name in error.value.message
    assert any("cellbox.toml" in m.message for m in daemon.client.messages)  # shown to the person too
    assert (await daemon.execute(("sh", "echo fine")))["output"] == "fine\n"


async def test_invalid_initialization_options_are_reported_and_ignored(workspace, start_daemon):
    daemon = await start_daemon(workspace, init_options={"timeout": "soon"})
    result = await daemon.execute(("sh", "echo works"))
    assert result["output"] == "works\n"
    (message,) = [m.message for m in daemon.client.messages]
    assert "initializationOptions" in message and "timeout" in message


async def test_an_unreachable_engine_is_a_clear_error_naming_where_it_looked(workspace, start_daemon, tmp_path):
    socket = tmp_path / "no-engine.sock"
    daemon = await start_daemon(workspace, env={"DOCKER_HOST": f"unix://{socket}"})
    started = time.monotonic()
    for _ in range(2):  # and again: the daemon survives the first failure
        with pytest.raises(JsonRpcException) as error:
            await daemon.execute(("sh", "true"))
        assert error.value.code == -32002
        assert f"unix://{socket}" in error.value.message and "DOCKER_HOST" in error.value.message
    assert time.monotonic() - started < 10
    # Not only in the error reply, which an editor may only log: shown to the person.
    assert any(f"unix://{socket}" in m.message for m in daemon.client.messages)
    status_error = None
    try:
        await daemon.command("cellbox.status", {})
    except JsonRpcException as exc:
        status_error = exc
    assert status_error is not None and status_error.code == -32002


async def test_a_missing_image_that_cannot_be_pulled_names_it_and_how_to_build_one(
    make_workspace, start_daemon, engine
):
    # Named by the client (trusted): cellbox tries to pull it. An unapproved
    # workspace file's image is never pulled (test_hostile_workspace.py).
    workspace = make_workspace("noimage", config="")
    daemon = await start_daemon(workspace, init_options={"image": "cellbox-test/no-such-image:never"})
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("sh", "true"))
    assert error.value.code == -32003
    assert "cellbox-test/no-such-image:never" in error.value.message
    assert "scripts/build-image" in error.value.message
    assert any("cellbox-test/no-such-image:never" in m.message for m in daemon.client.messages)
    assert containers_of(engine, workspace) == []
    # The pull attempt was shown as work-done progress that began and ended.
    (reports,) = [r for r in daemon.client.progress_reports.values() if r and r[0].title.startswith("Pulling")]
    assert [type(r).__name__ for r in reports] == ["WorkDoneProgressBegin", "WorkDoneProgressEnd"]
    assert reports[0].title == "Pulling image cellbox-test/no-such-image:never"
    # The daemon carries on.
    assert (await daemon.command("cellbox.status", {}))["sandboxes"][0]["state"] == "absent"
