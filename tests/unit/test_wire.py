"""Unit tests for cellbox.wire: strict argument parsing and complete results."""

from __future__ import annotations

from typing import Any

import pytest

from cellbox.errors import InvalidParams
from cellbox.wire import BlockParams, BlockResult, ExecuteParams, ExecuteResult, SkippedBlock, parse, to_json


def _parse(value: Any) -> ExecuteParams:
    return parse(value, ExecuteParams, "cellbox.execute")


def test_parse_good_object() -> None:
    params = _parse(
        {
            "blocks": [{"language": "py", "code": "print(1)"}, {"language": "bash", "code": "ls"}],
            "workspace": "file:///tmp/ws",
            "timeout": 5,
        }
    )
    assert params == ExecuteParams(
        blocks=[BlockParams("py", "print(1)"), BlockParams("bash", "ls")],
        workspace="file:///tmp/ws",
        timeout=5.0,
    )
    assert isinstance(params.timeout, float)


def test_parse_minimal_object_uses_defaults() -> None:
    params = _parse({"blocks": []})
    assert params.blocks == []
    assert params.workspace is None
    assert params.timeout is None


@pytest.mark.parametrize(
    ("value", "field", "detail"),
    [
        ({"position": {"line": 1}}, "position.character", "required field missing"),
        (
            {"blocks": [{"language": "py", "code": "x"}, {"language": "py"}]},
            "blocks[1].code",
            "required field missing",
        ),
        ({"blocks": [{"language": 3, "code": "x"}]}, "blocks[0].language", "expected a string"),
        ({"blocks": [], "timeout": "5"}, "timeout", "expected a number"),
        ({"blocks": [], "timeout": True}, "timeout", "boolean"),
        ({"blocks": [], "colour": "red"}, "colour", "unknown field"),
        ({"blocks": "print(1)"}, "blocks", "expected an array"),
    ],
)
def test_parse_errors_name_the_field(value: Any, field: str, detail: str) -> None:
    with pytest.raises(InvalidParams) as info:
        _parse(value)
    message = str(info.value)
    assert message.startswith("Invalid cellbox.execute arguments: ")
    assert field in message
    assert detail in message


def test_parse_missing_code_points_at_second_block_only() -> None:
    with pytest.raises(InvalidParams) as info:
        _parse({"blocks": [{"language": "py", "code": "x"}, {"language": "py"}]})
    assert "blocks[1].code: required field missing" in str(info.value)
    assert "blocks[0]" not in str(info.value)


@pytest.mark.parametrize(("value", "kind"), [([1, 2], "an array"), ("x", "a string"), (None, "null")])
def test_parse_non_object(value: Any, kind: str) -> None:
    with pytest.raises(InvalidParams) as info:
        _parse(value)
    assert f"expected an object, got {kind}" in str(info.value)


def test_invalid_params_code() -> None:
    with pytest.raises(InvalidParams) as info:
        _parse({"colour": "red"})
    assert info.value.code == -32602


def _block(**changes: Any) -> BlockResult:
    fields = dict(
        language="python",
        exit_code=0,
        output="",
        code_file=None,
        executed=False,
        timed_out=False,
        duration_ms=0.0,
        status="not_executed",
        truncated=False,
        range=None,
        extent=None,
        block_number=None,
        original_output=None,
    )
    fields.update(changes)
    return BlockResult(**fields)


BLOCK_KEYS = {
    "language", "exitCode", "output", "codeFile", "executed", "timedOut", "durationMs", "status", "truncated", "range",
    "extent", "blockNumber", "originalOutput", "stateLost", "displays", "session",
}


def test_block_result_keeps_falsy_fields() -> None:
    data = to_json(_block())
    assert set(data) == BLOCK_KEYS
    assert data == {
        "language": "python",
        "exitCode": 0,
        "output": "",
        "codeFile": None,
        "executed": False,
        "timedOut": False,
        "durationMs": 0.0,
        "status": "not_executed",
        "truncated": False,
        "range": None,
        "extent": None,
        "blockNumber": None,
        "originalOutput": None,
        "stateLost": False,
        "displays": [],
        "session": None,
    }


def test_execute_result_keeps_falsy_fields() -> None:
    result = ExecuteResult(
        exit_code=0,
        output="",
        code_file=None,
        timed_out=False,
        duration_ms=0.0,
        workspace="/ws",
        container="cellbox-ws-0123456789",
        blocks=[],
        skipped=[],
        status="ok",
        truncated=False,
        run_id="r",
    )
    data = to_json(result)
    assert set(data) == {
        "exitCode",
        "output",
        "codeFile",
        "timedOut",
        "durationMs",
        "workspace",
        "container",
        "blocks",
        "skipped",
        "status",
        "truncated",
        "runId",
    }
    assert data["truncated"] is False
    assert data["exitCode"] == 0
    assert data["codeFile"] is None
    assert data["timedOut"] is False
    assert data["blocks"] == []
    assert data["skipped"] == []


def test_execute_result_nested_blocks_camel_case() -> None:
    result = ExecuteResult(
        exit_code=1,
        output="x",
        code_file="/ws/a.py",
        timed_out=True,
        duration_ms=12.5,
        workspace="/ws",
        container="c",
        blocks=[_block(exit_code=124, timed_out=True, code_file="/ws/a.py", status="timeout")],
        skipped=[SkippedBlock(block_index=1, block_number=None, language="sh", range=None, extent=None)],
        status="timeout",
        truncated=False,
        run_id="r",
    )
    data = to_json(result)
    assert len(data["blocks"]) == 1
    assert set(data["blocks"][0]) == BLOCK_KEYS
    assert data["blocks"][0]["exitCode"] == 124
    assert data["blocks"][0]["timedOut"] is True
    assert data["skipped"] == [{"blockIndex": 1, "blockNumber": None, "language": "sh", "range": None, "extent": None}]
