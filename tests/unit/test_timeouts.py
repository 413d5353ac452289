"""cellbox.timeouts.wait_for keeps a cancel that comes with the answer."""

from __future__ import annotations

import asyncio
import sys

import pytest

from cellbox import timeouts


async def cancelled_as_the_answer_comes(wait_for) -> str:
    """How a task ends when it is cancelled in the very loop turn its awaited answer comes."""
    answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waiting() -> str:
        await wait_for(answer, 10)
        return "ran on"  # as if never cancelled

    task = asyncio.ensure_future(waiting())
    await asyncio.sleep(0)  # it waits now
    answer.set_result(1)
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return "cancelled"


async def test_a_cancel_that_comes_with_the_answer_is_kept() -> None:
    assert await cancelled_as_the_answer_comes(timeouts.wait_for) == "cancelled"


@pytest.mark.xfail(sys.version_info < (3, 12), reason="3.11's own wait_for loses it (why timeouts.py is)", strict=True)
async def test_python_3_11s_wait_for_loses_it() -> None:
    assert await cancelled_as_the_answer_comes(asyncio.wait_for) == "cancelled"


async def test_the_answer_and_the_timeout() -> None:
    assert await timeouts.wait_for(asyncio.sleep(0, "done"), 1) == "done"
    with pytest.raises(TimeoutError):
        await timeouts.wait_for(asyncio.sleep(10), 0.01)
    with pytest.raises(TimeoutError):
        await timeouts.wait_for(asyncio.sleep(10), 0)
    waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await timeouts.wait_for(waiting, 0.01)
    assert waiting.cancelled()  # as asyncio.wait_for does to what it waited for
