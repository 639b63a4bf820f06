"""Config reload: load, validate, and only then swap; a bad file changes nothing.

A half-edited file is the normal case while someone works on the config (an editor saving as they type,
a deploy copying files one by one), so a failed load must leave the running desired state exactly as it
was and say precisely what is wrong (file:line:col). Changes are noticed by polling file stamps, which
works the same on every file system, in containers and on network mounts where inotify does not.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

import structlog

from reconciler.daemon.metrics import Metrics
from reconciler.spec.config import Config
from reconciler.spec.errors import ConfigError
from reconciler.spec.loader import CONFIG_SUFFIXES, load_config

log = structlog.get_logger("reconciler.daemon.reload")

WATCH_INTERVAL: Final = 2.0

Load = Callable[[Sequence[Path]], Config]
Swap = Callable[[Config], Awaitable[None]]
Stamp = tuple[tuple[str, int, int], ...]


def stamp(paths: Sequence[Path]) -> Stamp:
    """What changes when any config file is edited, added or removed (name, mtime, size)."""
    found: list[tuple[str, int, int]] = []
    for path in paths:
        try:
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.name.endswith(CONFIG_SUFFIXES))
            else:
                files = [path]
            for file in files:
                info = os.stat(file)
                found.append((str(file), info.st_mtime_ns, info.st_size))
        except OSError:
            found.append((str(path), -1, -1))
    return tuple(found)


class Reloader:
    """Owns the current config; `reload()` tries a new one and swaps it in only when it is valid."""

    def __init__(
        self,
        paths: Sequence[Path],
        config: Config,
        swap: Swap,
        metrics: Metrics,
        *,
        load: Load = load_config,
    ) -> None:
        self.paths = list(paths)
        self.config = config
        self._swap = swap
        self._metrics = metrics
        self._load = load
        self._lock = asyncio.Lock()
        self._stamp = stamp(self.paths)

    async def reload(self, reason: str) -> bool:
        """True when a new config was loaded and swapped in."""
        async with self._lock:
            self._stamp = stamp(self.paths)
            try:
                config = await asyncio.to_thread(self._load, self.paths)
            except ConfigError as error:
                for problem in error.problems:
                    log.error("config.reload.problem", reason=reason, problem=str(problem))
                log.error(
                    "config.reload.refused", reason=reason, problems=len(error.problems), kept="previous"
                )
                self._metrics.config_reload(applied=False)
                return False
            except Exception as error:
                log.error("config.reload.refused", reason=reason, error=type(error).__name__, kept="previous")
                self._metrics.config_reload(applied=False)
                return False
            await self._swap(config)
            self.config = config
            self._metrics.config_reload(applied=True)
            log.info("config.reload.applied", reason=reason, pools=len(config.pools))
            return True

    def changed(self) -> bool:
        return stamp(self.paths) != self._stamp

    async def watch(self, interval: float = WATCH_INTERVAL) -> None:
        """Reload whenever the files change; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                await self.reload("file_changed")
