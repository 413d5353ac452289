"""Faults the daemon survives: malformed input, and an engine that goes away."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from pygls.exceptions import JsonRpcException



async def test_invalid_json_is_reported_and_the_daemon_keeps_serving(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    body = b'{"jsonrpc": "2.0", "id": 99, "method": "workspace/executeCommand", "params": {oops'
    daemon.client._server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await daemon.client._server.stdin.drain()
    assert (await daemon.execute(("sh", "echo still here")))["output"] == "still here\n"


async def test_an_unknown_method_is_method_not_found(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    with pytest.raises(JsonRpcException) as error:
        await daemon.client.protocol.send_request_async("cellbox/teleport", {})
    assert error.value.code == -32601
    with pytest.raises(JsonRpcException) as error:
        await daemon.command("cellbox.teleport", {})
    assert error.value.code == -32602 and "cellbox.teleport" in error.value.message
    assert (await daemon.execute(("sh", "echo ok")))["output"] == "ok\n"


async def test_a_ten_megabyte_block_runs(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    code = "x = 1\n" + "#" * (10 << 20) + "\nprint('big block ran')\n"
    result = await daemon.execute(("python", code))
    assert (result["exitCode"], result["output"]) == (0, "big block ran\n")


async def test_nul_bytes_give_an_error_not_a_crash(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    in_code = await daemon.execute(("python", "print('a')\x00print('b')"))
    # Saved byte for byte; what Python makes of a NUL is Python's business.
    assert in_code["blocks"][0]["executed"] is True
    assert open(in_code["codeFile"], "rb").read() == b"print('a')\x00print('b')"
    in_name = await daemon.execute(("python", "# filename: bad\x00name.py\nprint(1)"))
    assert in_name["exitCode"] == 1 and in_name["blocks"][0]["status"] == "not_executed"
    assert in_name["output"] == "Filename is not valid: it contains a NUL byte"
    assert (await daemon.execute(("sh", "echo fine")))["output"] == "fine\n"


class EngineLink:
    """A socket between the daemon and the real engine that the test can cut
    and restore, the way an engine that is stopped and started again looks
    from the daemon (the real engine keeps the other tests' containers)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_unix_server(self._relay, path=self.path)

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, client_reader, client_writer) -> None:
        engine_reader, engine_writer = await asyncio.open_unix_connection("/var/run/docker.sock")
        self._open.update((client_writer, engine_writer))

        async def pipe(reader, writer) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pipe(client_reader, engine_writer), pipe(engine_reader, client_writer))
        self._open.difference_update((client_writer, engine_writer))


async def test_a_stopped_engine_is_a_quick_clear_error_and_its_return_is_picked_up(
    make_workspace, start_daemon, tmp_path
):
    first, second = make_workspace("first"), make_workspace("second")
    link = EngineLink(str(tmp_path / "engine.sock"))
    await link.up()
    daemon = await start_daemon(first, env={"DOCKER_HOST": f"unix://{link.path}"})
    assert (await daemon.execute(("sh", "echo up"), workspace=str(first)))["output"] == "up\n"

    await link.down()
    started = time.monotonic()
    with pytest.raises(JsonRpcException) as error:
        await daemon.execute(("sh", "echo new"), workspace=str(second))  # needs the engine
    assert time.monotonic() - started < 5
    assert error.value.code == -32002 and link.path in error.value.message
    # A sandbox that is already running keeps serving: its runner needs no engine.
    assert (await daemon.execute(("sh", "echo warm"), workspace=str(first)))["output"] == "warm\n"

    await link.up()
    result = await daemon.execute(("sh", "echo back"), workspace=str(second))
    assert result["output"] == "back\n"
    await link.down()
    # The daemon's own clean-up needs the engine too: give it back before shutdown.
    await link.up()
