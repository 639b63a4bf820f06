"""`reconciler emulator`: run the local Azure until SIGINT or SIGTERM.

Accounts come from `--account NAME[=KEY]` (repeatable). Without any, there is one account `demo`. A KEY left
out is the emulator's well-known account key, fixed and documented like Azurite's so that example configs
and scripts can carry it:

    cmVjb25jaWxlci1lbXVsYXRvci13ZWxsLWtub3duLWFjY291bnQta2V5LTAwMDE=

It is valid only against the emulator. `--connection-file` receives endpoints, keys, the service
principal and the CA bundle once both listeners accept connections, and is removed on shutdown, so a
script may wait for it to appear.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import signal
import sys
from pathlib import Path

from reconciler.emulator.api import Emulator
from reconciler.emulator.context import WELL_KNOWN_ACCOUNT_KEY
from reconciler.emulator.persistence import StateFileError, write_atomic

ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")


def parse_accounts(values: list[str]) -> dict[str, str | None]:
    """`NAME[=KEY]` items; names follow Batch's rule (3-24 lowercase letters and digits), keys are base64."""
    accounts: dict[str, str | None] = {}
    for value in values:
        name, sep, key = value.partition("=")
        name = name.strip()
        if not ACCOUNT_NAME.match(name):
            raise ValueError(f"--account {value!r}: a name is 3-24 lowercase letters and digits")
        if name in accounts:
            raise ValueError(f"--account {name!r} is given twice")
        if sep:
            try:
                base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"--account {name!r}: the key must be base64") from None
            if not key:
                raise ValueError(f"--account {name!r}: the key is empty")
        accounts[name] = key if sep else None
    return accounts


def emulator_command(
    host: str,
    port: int,
    arm_port: int,
    accounts: list[str],
    time_scale: float,
    state_file: Path | None,
    connection_file: Path | None,
) -> int:
    try:
        parsed = parse_accounts(accounts)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if time_scale <= 0:
        print("error: --time-scale must be positive", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emulator = Emulator(
        parsed or None, time_scale=time_scale, host=host, port=port, arm_port=arm_port, state_file=state_file
    )
    try:
        return asyncio.run(_serve(emulator, connection_file))
    except KeyboardInterrupt:
        return 0
    finally:
        if connection_file is not None:
            with contextlib.suppress(FileNotFoundError):
                connection_file.unlink()


async def _serve(emulator: Emulator, connection_file: Path | None) -> int:
    try:
        await emulator.start()
    except StateFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot listen on {emulator.host}: {error.strerror or error}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        if connection_file is not None:
            write_atomic(connection_file, json.dumps(emulator.connection, indent=2) + "\n")
        keys = " ".join(
            f"{name}={'well-known' if settings.key == WELL_KNOWN_ACCOUNT_KEY else 'custom'}-key"
            for name, settings in emulator.ctx.accounts.items()
        )
        print(
            f"emulator listening: batch {emulator.http_url}/<account> (https {emulator.arm_url}/<account>), "
            f"arm+identity {emulator.arm_url}, admin {emulator.admin_url}, accounts {keys}",
            flush=True,
        )
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await emulator.stop()
    return 0
