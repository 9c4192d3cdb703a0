"""A userspace WAN between two loopback endpoints: one-way delay and a bandwidth cap per direction.

This kernel has no netem, so the delay is applied to each chunk as it crosses, in order, and the
bandwidth by pacing writes. Runs in a background thread; stops with the benchmark.
"""
from __future__ import annotations

import asyncio
import threading
import time


class WanProxy:
    def __init__(self, listen_port: int, target_port: int, delay_ms: float = 20, mbit: float = 100):
        self.listen_port, self.target_port = listen_port, target_port
        self.delay = delay_ms / 1000
        self.rate = mbit * 1e6 / 8  # bytes/s
        self.bytes = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.listen_port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _client(self, reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True)

    async def _pipe(self, reader, writer):
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver():
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                self.bytes += len(data)
                await asyncio.sleep(len(data) / self.rate)
            writer.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(65536):
                await queue.put((time.monotonic() + self.delay, data))
        finally:
            await queue.put(None)
            await sender
