"""`wait_for`, as Python 3.12 has it, for the 3.11 the daemon also runs on.

Python 3.11's asyncio.wait_for loses a cancel that comes in the same loop
turn as the answer it waits for: it returns the answer and the task runs on
as if never cancelled (fixed in 3.12, which builds wait_for on
asyncio.timeout). Seen here as a cancelled task reading the container's
announcements that read on and waited for ever ("Task was destroyed but it
is pending!" with 20 sandboxes starting at once); a user's cancel landing as
a block starts could be lost the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
    """The result of `awaitable`, or TimeoutError after `timeout` seconds (it is then cancelled)."""
    if timeout is not None and timeout <= 0:
        future = asyncio.ensure_future(awaitable)
        if not future.done():
            future.cancel()
            try:
                return await future
            except asyncio.CancelledError as exc:
                raise TimeoutError from exc
        return future.result()
    async with asyncio.timeout(timeout):
        return await awaitable
