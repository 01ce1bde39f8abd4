"""A small asyncio HTTP/1.1 keep-alive client for loopback load tests (bounded count, stops by itself)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, requests: list[tuple[str, bytes]], result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for path, body in requests:
            head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode()
            started = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status = await _read_response(reader)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        writer.close()


def post_all(*, host: str, port: int, requests: list[tuple[str, bytes]], concurrency: int) -> LoadResult:
    """POST every (path, body) once, spread over ``concurrency`` keep-alive connections."""
    result = LoadResult()
    shards = [requests[i::concurrency] for i in range(concurrency)]

    async def run() -> None:
        await asyncio.gather(*(_worker(host, port, shard, result) for shard in shards if shard))

    started = time.perf_counter()
    asyncio.run(run())
    result.seconds = time.perf_counter() - started
    return result
