"""A link with a fixed one-way delay, for the benchmark's remote engine.

Usage: python bench/latency_link.py UNIX_SOCKET DELAY_MS

Listens on 127.0.0.1 (a free port, printed on the first line of stdout) and
forwards every connection to the engine's Unix socket; each chunk, either
way, is sent on DELAY_MS after it arrived, in order, without waiting for
the chunks before it to be answered, as a network link of that latency
would. This machine's kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not
set, and it loads no modules), so the delay is made here, in a process of
its own so that its timers do not share the benchmark's event loop.

On SIGUSR1 it prints how many HTTP requests to the engine it has carried so
far (a chunk from a client that starts with a method), to show how many
round trips a step costs.
"""

from __future__ import annotations

import asyncio
import signal
import sys

METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ")
requests = 0


async def _carry(source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay: float, count: bool) -> None:
    global requests
    loop = asyncio.get_running_loop()
    due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            when, chunk = await due.get()
            wait = when - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                if sink.can_write_eof():
                    sink.write_eof()
                return
            sink.write(chunk)
            await sink.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            chunk = await source.read(1 << 16)
            if count and chunk.startswith(METHODS):
                requests += 1
            due.put_nowait((loop.time() + delay, chunk))
            if not chunk:
                break
        await sender
    except (ConnectionError, asyncio.CancelledError):
        sender.cancel()
        raise


async def main(target: str, delay_ms: float) -> None:
    delay = delay_ms / 1000

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            engine_reader, engine_writer = await asyncio.open_unix_connection(target, limit=1 << 20)
        except OSError:
            client_writer.close()
            return
        ways = [asyncio.ensure_future(_carry(client_reader, engine_writer, delay, True)),
                asyncio.ensure_future(_carry(engine_reader, client_writer, delay, False))]
        # Both ways run to their end (each passes its EOF on), unless one
        # fails (a peer reset): then the other is of no use either.
        _, pending = await asyncio.wait(ways, return_when=asyncio.FIRST_EXCEPTION)
        for way in pending:
            way.cancel()
        for way in ways:
            if way.done() and not way.cancelled():
                way.exception()  # a hung-up peer: nothing to report
        for writer in (engine_writer, client_writer):
            writer.close()

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: print(requests, flush=True))
    server = await asyncio.start_server(serve, "127.0.0.1", 0, limit=1 << 20)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
