"""Unit tests for sandbox.Place: runs of a workspace go in arrival order,
whatever each request awaits before its turn, and a request that fails
before its turn gives its place up."""

from __future__ import annotations

import asyncio

from cellbox.sandbox.request import Place


async def test_places_are_served_in_the_order_they_were_taken() -> None:
    lock = asyncio.Lock()
    order: list[int] = []

    async def request(number: int, place: Place, delay: float) -> None:
        await asyncio.sleep(delay)  # a later request may finish its own awaits first
        await place.wait()
        try:
            order.append(number)
            await asyncio.sleep(0.01)
        finally:
            place.leave()

    places = [Place(lock) for _ in range(4)]
    await asyncio.gather(*(request(n, p, delay) for n, (p, delay) in enumerate(zip(places, [0.03, 0.0, 0.02, 0.01]))))
    assert order == [0, 1, 2, 3]
    assert not lock.locked()


async def test_a_place_given_up_before_its_turn_lets_the_next_one_in() -> None:
    lock = asyncio.Lock()
    first, second, third = Place(lock), Place(lock), Place(lock)
    await first.wait()
    second.leave()  # its request failed before its turn
    second.leave()  # idempotent
    first.leave()
    await asyncio.wait_for(third.wait(), 1)
    third.leave()
    assert not lock.locked()
