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
    return models.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=models.VirtualMachineConfiguration(
            image_reference=models.BatchVmImageReference(
                publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
            ),
            node_agent_sku_id="batch.node.ubuntu 22.04",
        ),
        target_dedicated_nodes=0,
        metadata=[models.BatchMetadataItem(name="reconciler.managed-by", value="benchmark")],
    )


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
def emulator_process() -> Iterator[dict[str, Any]]:
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
            yield dict(json.loads(connection_file.read_text()))
        finally:
            process.terminate()
            process.wait(timeout=30)


@contextmanager
def baseline_process() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", BASELINE_SERVER, str(port)])  # noqa: S603
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


async def rate(label: str, calls: int, concurrency: int, call: Callable[[int], Awaitable[int]]) -> float:
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
    return per_second


async def main(pools: int, concurrency: int, gets: int, page_size: int) -> None:
    credential_name = "demo"
    with baseline_process() as port:
        async with BatchClient(
            f"http://127.0.0.1:{port}/{credential_name}",
            AzureNamedKeyCredential(credential_name, "a2V5"),
        ) as client:

            async def baseline_get(index: int) -> int:
                request = HttpRequest("GET", f"http://127.0.0.1:{port}/demo/pools/p{index}")
                (await client.send_request(request)).raise_for_status()
                return 1

            await rate("warm-up baseline", 200, concurrency, baseline_get)
            baseline = await rate("baseline: trivial aiohttp handler", gets, concurrency, baseline_get)

    with emulator_process() as connection:
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

            create_rate = await rate(f"create_pool x {pools}", pools, concurrency, create)
            get_rate = await rate("get_pool", gets, concurrency, get)
            list_rate = await rate(f"list_pools, pages of {page_size}", 3, 3, list_all)
            assert listed == 3 * pools, f"listed {listed} pools, expected {3 * pools}"
            select_rate = 0.0

            async def list_ids(_: int) -> int:
                pages = 0
                async for page in client.list_pools(max_results=page_size, select=["id", "state"]).by_page():
                    [pool async for pool in page]
                    pages += 1
                return pages

            select_rate = await rate(f"list_pools $select=id,state /{page_size}", 3, 3, list_ids)

    print()
    print(f"pools: {pools}, concurrency: {concurrency}")
    print(
        f"get_pool      {get_rate:7.0f} req/s = {get_rate / baseline:5.2f} x baseline ({baseline:.0f} req/s)"
    )
    print(f"create_pool   {create_rate:7.0f} req/s = {create_rate / baseline:5.2f} x baseline")
    print(f"list page     {list_rate:7.1f} req/s = {list_rate * page_size:8.0f} pools/s")
    print(f"list $select  {select_rate:7.1f} req/s = {select_rate * page_size:8.0f} pools/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--gets", type=int, default=5_000)
    parser.add_argument("--page-size", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(main(args.pools, args.concurrency, args.gets, args.page_size))
