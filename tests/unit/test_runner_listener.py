"""Unit tests for RunnerListener: the daemon's socket for a sandbox's runner
counts only a connection that presents the one-shot token, which is then gone."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from cellbox.sandbox.runner_client import RunnerListener


async def hello(folder: Path, line: bytes) -> bytes:
    """Connect as a runner (or a block) would and say `line`; what comes back before the close."""
    reader, writer = await asyncio.open_unix_connection(str(folder / "runner.sock"))
    writer.write(line)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(100), 2)
    except ConnectionResetError:
        return b""  # closed on us before it read all we sent
    finally:
        writer.close()


@pytest.fixture
async def listener(tmp_path: Path):
    made = RunnerListener(tmp_path, "test")
    assert await made.open()
    yield made
    made.close()


async def test_only_the_token_gets_in_and_only_once(listener: RunnerListener, tmp_path: Path) -> None:
    owner = (os.getuid(), os.getgid())
    listener.expect(owner)
    token = (tmp_path / "token").read_bytes()
    assert oct((tmp_path / "token").stat().st_mode & 0o777) in ("0o400", "0o444")
    assert await hello(tmp_path, b"hello " + b"0" * 64 + b" 7\n") == b""  # a block guessing: dropped
    arriving = asyncio.ensure_future(listener.runner(5))
    reader, writer = await asyncio.open_unix_connection(str(tmp_path / "runner.sock"))
    writer.write(b"hello " + token + b" 42\n")
    runner = await arriving
    assert runner.pid == 42 and runner.alive
    assert not (tmp_path / "token").exists()  # used up
    assert await hello(tmp_path, b"hello " + token + b" 43\n") == b""  # replayed: dropped at once
    runner.close()
    writer.close()


async def test_a_second_listener_on_the_same_folder_steps_aside(listener: RunnerListener, tmp_path: Path) -> None:
    other = RunnerListener(tmp_path, "other daemon")
    assert not await other.open()  # another daemon holds this sandbox's runner


async def test_an_endless_first_line_is_not_buffered(listener: RunnerListener, tmp_path: Path) -> None:
    listener.expect((os.getuid(), os.getgid()))
    assert await hello(tmp_path, b"x" * 100_000) == b""


async def test_a_runner_that_arrived_before_it_was_asked_for_is_not_lost(listener: RunnerListener, tmp_path: Path) -> None:
    # A restart expects the new runner, which connects before the next run
    # expects one again and asks for it: that run must get it, not wait for a
    # second runner that never comes.
    owner = (os.getuid(), os.getgid())
    listener.expect(owner)
    token = (tmp_path / "token").read_bytes()
    reader, writer = await asyncio.open_unix_connection(str(tmp_path / "runner.sock"))
    writer.write(b"hello " + token + b" 42\n")
    await writer.drain()
    for _ in range(100):
        if not (tmp_path / "token").exists():
            break
        await asyncio.sleep(0.01)
    listener.expect(owner)  # the next run's attach
    runner = await listener.runner(2)
    assert runner.pid == 42
    listener.expect(owner)  # handed out: the next one gets a fresh token
    assert (tmp_path / "token").exists() and (tmp_path / "token").read_bytes() != token
    runner.close()
    writer.close()
