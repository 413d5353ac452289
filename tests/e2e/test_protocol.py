"""The wire contract: lifecycle, result shapes, and errors for bad input."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_IMAGE
from pygls.exceptions import JsonRpcException

BLOCK_KEYS = {
    "language", "exitCode", "output", "codeFile", "executed", "timedOut", "durationMs", "status", "truncated", "range",
    "extent", "blockNumber", "originalOutput", "stateLost", "displays", "session",
}
RESULT_KEYS = {
    "exitCode", "output", "codeFile", "timedOut", "durationMs", "workspace", "container", "blocks", "skipped", "status",
    "truncated", "runId",
}


async def test_initialize_lists_the_commands(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = daemon.initialize_result.capabilities
    commands = set(result.execute_command_provider.commands)
    assert commands == {
        "cellbox.execute", "cellbox.restart", "cellbox.stop", "cellbox.status", "cellbox.cancel", "cellbox.trust",
    }


async def test_every_result_field_is_present_even_when_zero_false_or_null(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    # A saved-only block has exitCode 0, executed false, timedOut false: all
    # values lsprotocol's converter would drop as defaults.
    result = await daemon.execute(("python", "print('hi')"), ("ruby", "puts 1"))
    assert set(result) == RESULT_KEYS
    assert [set(b) for b in result["blocks"]] == [BLOCK_KEYS, BLOCK_KEYS]
    ok, refused = result["blocks"]
    assert ok == {**ok, "language": "python", "exitCode": 0, "output": "hi\n", "executed": True, "timedOut": False}
    assert refused["codeFile"] is None and refused["executed"] is False and refused["timedOut"] is False
    assert result["workspace"] == str(workspace)
    assert result["container"].startswith("cellbox-ws-")
    assert isinstance(result["durationMs"], float) and result["durationMs"] > 0


@pytest.mark.parametrize(
    ("argument", "field"),
    [
        ({}, "blocks"),
        ({"blocks": "print(1)"}, "blocks"),
        ({"blocks": [{"language": "python"}]}, "blocks[0].code"),
        ({"blocks": [{"language": 3, "code": "x"}]}, "blocks[0].language"),
        ({"blocks": [{"language": "python", "code": "x"}], "timeout": "5"}, "timeout"),
        ({"blocks": [{"language": "python", "code": "x"}], "blcoks": []}, "blcoks"),
        ({"blocks": []}, "blocks"),
        ("print(1)", "argument"),
    ],
)
async def test_bad_arguments_name_the_field_and_the_daemon_keeps_serving(workspace, start_daemon, argument, field):
    daemon = await start_daemon(workspace)
    with pytest.raises(JsonRpcException) as error:
        await daemon.command("cellbox.execute", argument)
    assert error.value.code == -32602
    assert field in error.value.message
    assert (await daemon.execute(("python", "print(2)")))["output"] == "2\n"


async def test_execute_takes_exactly_one_argument_object(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    with pytest.raises(JsonRpcException) as error:
        await daemon.command("cellbox.execute")
    assert error.value.code == -32602 and "one argument object" in error.value.message


@pytest.mark.parametrize("timeout", [0, 0.5, -3])
async def test_timeout_below_one_second_is_refused(workspace, start_daemon, timeout):
    daemon = await start_daemon(workspace)
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("python", "print(1)"), timeout=timeout)
    assert error.value.code == -32602
    assert "timeout" in error.value.message and "at least 1" in error.value.message
    assert (await daemon.execute(("python", "print(3)"), timeout=1))["exitCode"] == 0


@pytest.mark.parametrize("root", ["folders", "rootUri", "rootPath"])
async def test_workspace_comes_from_initialize(workspace, start_daemon, root):
    daemon = await start_daemon(workspace, root=root)
    result = await daemon.execute(("sh", "pwd; ls cellbox.toml"))
    assert result["workspace"] == str(workspace)
    assert result["output"] == "/workspace\ncellbox.toml\n"


async def test_workspace_in_the_request_as_uri_or_path(make_workspace, start_daemon):
    first, second = make_workspace("first"), make_workspace("second")
    daemon = await start_daemon(first)
    by_uri = await daemon.execute(("sh", "true"), workspace=second.as_uri())
    by_path = await daemon.execute(("sh", "true"), workspace=str(second))
    assert by_uri["workspace"] == by_path["workspace"] == str(second)
    assert by_uri["container"] == by_path["container"]


@pytest.mark.parametrize(
    ("workspace_value", "expected"),
    [
        ("relative/dir", "relative"),
        ("/nonexistent/cellbox-ws", "not an existing folder"),
        ("https://example.org/ws", "not a file:// URI"),
    ],
)
async def test_bad_workspace_is_refused(workspace, start_daemon, workspace_value, expected):
    daemon = await start_daemon(workspace)
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("sh", "true"), workspace=workspace_value)
    assert error.value.code == -32602
    assert "workspace" in error.value.message and expected in error.value.message


async def test_no_workspace_at_all_is_a_clear_error(start_daemon):
    daemon = await start_daemon(None)
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("sh", "true"))
    assert error.value.code == -32602 and "pass a workspace" in error.value.message


async def test_status_lists_the_workspace_before_and_after_a_run(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    before = await daemon.command("cellbox.status", {})
    assert before == {
        "sandboxes": [
            {"workspace": str(workspace), "container": before["sandboxes"][0]["container"],
             "state": "absent", "image": TEST_IMAGE, "sessions": []}
        ]
    }
    run = await daemon.execute(("sh", "true"))
    after = await daemon.command("cellbox.status", {})
    assert after["sandboxes"] == [
        {"workspace": str(workspace), "container": run["container"], "state": "running",
         "image": TEST_IMAGE, "sessions": []}
    ]


async def test_status_refuses_unknown_fields(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    with pytest.raises(JsonRpcException) as error:
        await daemon.command("cellbox.status", {"verbose": True})
    assert error.value.code == -32602 and "verbose" in error.value.message
