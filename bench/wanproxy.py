"""A userspace WAN between two loopback endpoints: one-way delay and a bandwidth cap per direction.

This kernel has no netem, so the delay is applied to each chunk as it crosses, in order, and the
bandwidth by pacing writes. Runs in a background thread; stops with the benchmark.
"""
from __future__ import annotations

import asyncio
import threading
import time


class WanProxy:
    def __init__(self, listen_port: int, target_port: int, delay_ms: float = 20, mbit: float = 100,
                 listen_host: str = "127.0.0.1", target_host: str = "127.0.0.1"):
        self.listen_port, self.target_port = listen_port, target_port
        self.listen_host, self.target_host = listen_host, target_host
        self.delay = delay_ms / 1000
        self.rate = mbit * 1e6 / 8  # bytes/s
        self.bytes = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._writers: set = set()

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _shutdown(self):
        self._server.close()
        for w in list(self._writers):
            w.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._client, self.listen_host, self.listen_port))
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _client(self, reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}
        try:
            await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True)
        except asyncio.CancelledError:
            pass  # the proxy is shutting down
        finally:
            self._writers -= {writer, up_w}

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
        except asyncio.CancelledError:
            sender.cancel()
            raise
        await queue.put(None)
        await sender
