"""Request rates of the emulator under the real aio Batch client, against a trivial aiohttp baseline.

The issue asks for 10 000 pools and about 1 000 requests/s on loopback on a 2-core machine. The emulator and
the baseline server each run in their own process (as `reconciler emulator` does) and this process drives
them with `azure.batch.aio.BatchClient`, so the ratio shows the emulator's own cost over the same client,
loopback and HTTP stack.

    .venv/bin/python benchmarks/emulator_throughput.py [--pools 10000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azure.batch import models
from azure.batch.aio import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.rest import HttpRequest

# The pool body the emulator tests create, so that the benchmark measures the same requests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "emulator"))
from emulator_env import new_pool

BASELINE_SERVER = """
import sys
from aiohttp import web

async def ok(request):
    return web.json_response({"id": request.match_info["pool"], "state": "active"})

app = web.Application()
app.router.add_get("/{account}/pools/{pool}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def pool_options(pool_id: str) -> models.BatchPoolCreateOptions:
    return new_pool(
        pool_id, metadata=[models.BatchMetadataItem(name="reconciler.managed-by", value="benchmark")]
    )


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process (Linux): tells server cost apart from the client's, which is the limit."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    async def measure(
        self, label: str, calls: int, concurrency: int, call: Callable[[int], Awaitable[int]]
    ) -> tuple[float, float]:
        """(requests/s seen by the client, requests per server CPU-second)."""
        before = cpu_seconds(self.pid)
        per_second, requests = await rate(label, calls, concurrency, call)
        used = max(cpu_seconds(self.pid) - before, 1e-3)
        print(f"{'':<34} server CPU {used:6.2f} s = {requests / used:7.0f} requests per server CPU-second")
        return per_second, requests / used


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@contextmanager
def emulator_process() -> Iterator[tuple[dict[str, Any], Server]]:
    with tempfile.TemporaryDirectory() as tmp:
        connection_file = Path(tmp) / "connection.json"
        command = [sys.executable, "-m", "reconciler", "emulator", "--port", "0", "--arm-port", "0"]
        process = subprocess.Popen([*command, "--connection-file", str(connection_file)])  # noqa: S603
        try:
            deadline = time.monotonic() + 60
            while not connection_file.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start")
                time.sleep(0.05)
            yield dict(json.loads(connection_file.read_text())), Server(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)


@contextmanager
def baseline_process() -> Iterator[tuple[int, Server]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", BASELINE_SERVER, str(port)])  # noqa: S603
    try:
        wait_for_port(port)
        yield port, Server(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


async def rate(
    label: str, calls: int, concurrency: int, call: Callable[[int], Awaitable[int]]
) -> tuple[float, int]:
    """Run `call(i)` for i in range(calls) with `concurrency` workers; each returns its request count."""
    queue = iter(range(calls))
    requests = 0

    async def worker() -> None:
        nonlocal requests
        for index in queue:
            done = await call(index)
            requests += done

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    per_second = requests / elapsed
    print(f"{label:<34} {requests:>7} requests in {elapsed:6.2f} s = {per_second:7.0f} req/s")
    return per_second, requests


async def main(pools: int, concurrency: int, gets: int, page_size: int) -> None:
    with baseline_process() as (port, baseline_server):
        async with BatchClient(
            f"http://127.0.0.1:{port}/demo", AzureNamedKeyCredential("demo", "a2V5")
        ) as client:

            async def baseline_get(index: int) -> int:
                request = HttpRequest("GET", f"http://127.0.0.1:{port}/demo/pools/p{index}")
                (await client.send_request(request)).raise_for_status()
                return 1

            await rate("warm-up baseline", 200, concurrency, baseline_get)
            baseline, baseline_cpu = await baseline_server.measure(
                "baseline: trivial aiohttp handler", gets, concurrency, baseline_get
            )

    with emulator_process() as (connection, server):
        facts = connection["batch"]["demo"]
        async with BatchClient(facts["url"], AzureNamedKeyCredential("demo", facts["key"])) as client:

            async def create(index: int) -> int:
                await client.create_pool(pool_options(f"pool-{index:05d}"))
                return 1

            async def get(index: int) -> int:
                pool = await client.get_pool(f"pool-{index % pools:05d}")
                assert pool.id is not None
                return 1

            listed = 0

            async def list_all(_: int) -> int:
                nonlocal listed
                pages = 0
                async for page in client.list_pools(max_results=page_size).by_page():
                    listed += len([pool async for pool in page])
                    pages += 1
                return pages

            async def list_ids(_: int) -> int:
                pages = 0
                async for page in client.list_pools(max_results=page_size, select=["id", "state"]).by_page():
                    [pool async for pool in page]
                    pages += 1
                return pages

            create_rate, create_cpu = await server.measure(
                f"create_pool x {pools}", pools, concurrency, create
            )
            get_rate, get_cpu = await server.measure("get_pool", gets, concurrency, get)
            list_rate, list_cpu = await server.measure(f"list_pools, pages of {page_size}", 3, 3, list_all)
            assert listed == 3 * pools, f"listed {listed} pools, expected {3 * pools}"
            select_rate, select_cpu = await server.measure(
                f"list_pools $select=id,state /{page_size}", 3, 3, list_ids
            )

    print()
    print(f"pools: {pools}, concurrency: {concurrency}, one client process, one server process")
    print(
        f"{'':<13} {'client req/s':>12} {'vs baseline':>11} {'req per server CPU-s':>21} {'vs baseline':>11}"
    )
    for label, seen, cpu in (
        ("baseline", baseline, baseline_cpu),
        ("get_pool", get_rate, get_cpu),
        ("create_pool", create_rate, create_cpu),
        (f"list /{page_size}", list_rate, list_cpu),
        ("list $select", select_rate, select_cpu),
    ):
        print(f"{label:<13} {seen:12.1f} {seen / baseline:11.2f} {cpu:21.1f} {cpu / baseline_cpu:11.2f}")
    print(
        f"list pages carry {page_size} pools: {list_rate * page_size:.0f} pools/s in full, "
        f"{select_rate * page_size:.0f} pools/s with $select"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--gets", type=int, default=5_000)
    parser.add_argument("--page-size", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(main(args.pools, args.concurrency, args.gets, args.page_size))
