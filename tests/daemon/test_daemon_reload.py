"""Reload: a valid file is swapped in, a broken one changes nothing and says where it is wrong."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import structlog

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.reload import Reloader, stamp
from reconciler.spec.config import Config
from reconciler.spec.loader import load_config

GOOD = """accounts:
  demo:
    batch_url: http://127.0.0.1:1/demo
    auth: {{method: shared_key, key: a2V5}}
pools:
  p1:
    account: demo
    vm_size: standard_d2s_v3
    target_dedicated_nodes: {nodes}
    virtual_machine_configuration:
      image_reference: {{publisher: canonical, offer: ubuntu, sku: 22_04-lts}}
      node_agent_sku_id: batch.node.ubuntu 22.04
"""


def write(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


class Swaps:
    def __init__(self) -> None:
        self.configs: list[Config] = []

    async def __call__(self, config: Config) -> None:
        self.configs.append(config)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_broken_file_keeps_the_last_good_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    write(path, GOOD.format(nodes=1))
    initial = load_config([path])
    metrics, swaps = Metrics(), Swaps()
    reloader = Reloader([path], initial, swaps, metrics)

    write(path, GOOD.format(nodes="[oops"))
    with structlog.testing.capture_logs() as logged:
        assert not await reloader.reload("sighup")
    assert reloader.config is initial
    assert swaps.configs == []
    assert value(metrics, "reconciler_config_reloads_total", result="failure") == 1
    assert value(metrics, "reconciler_config_last_reload_success") == 0
    problems = [e["problem"] for e in logged if e["event"] == "config.reload.problem"]
    assert problems
    assert all(re.match(rf"{re.escape(str(path))}:\d+:\d+: ", p) for p in problems), problems
    assert any(e["event"] == "config.reload.refused" for e in logged)

    write(path, GOOD.format(nodes=-3))
    assert not await reloader.reload("sighup")
    assert value(metrics, "reconciler_config_reloads_total", result="failure") == 2

    write(path, GOOD.format(nodes=3))
    assert await reloader.reload("sighup")
    assert reloader.config.pools["p1"].target_dedicated_nodes == 3
    assert [c.pools["p1"].target_dedicated_nodes for c in swaps.configs] == [3]
    assert value(metrics, "reconciler_config_reloads_total", result="success") == 1
    assert value(metrics, "reconciler_config_last_reload_success") == 1


async def test_a_missing_file_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    write(path, GOOD.format(nodes=1))
    metrics = Metrics()
    reloader = Reloader([path], load_config([path]), Swaps(), metrics)
    path.unlink()
    assert not await reloader.reload("file_changed")
    assert value(metrics, "reconciler_config_reloads_total", result="failure") == 1


async def test_watching_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    write(path, GOOD.format(nodes=1))
    swaps = Swaps()
    reloader = Reloader([path], load_config([path]), swaps, Metrics())
    watcher = asyncio.create_task(reloader.watch(0.01))
    try:
        await asyncio.sleep(0.05)
        assert swaps.configs == []
        write(path, GOOD.format(nodes=2))
        for _ in range(300):
            if swaps.configs:
                break
            await asyncio.sleep(0.01)
    finally:
        watcher.cancel()
    assert [c.pools["p1"].target_dedicated_nodes for c in swaps.configs] == [2]


def test_the_stamp_of_a_directory_notices_added_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("pools: {}\n")
    before = stamp([tmp_path])
    (tmp_path / "notes.txt").write_text("ignored")
    assert stamp([tmp_path]) == before
    (tmp_path / "b.yml").write_text("pools: {}\n")
    assert stamp([tmp_path]) != before
