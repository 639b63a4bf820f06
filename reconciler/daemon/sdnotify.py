"""A tiny sd_notify client: the datagrams systemd reads on `$NOTIFY_SOCKET`, and nothing else.

Pure Python because the protocol is one `sendto` per message, and a C binding would be the daemon's only
native dependency. Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing, and a send that fails
is dropped: being supervised must never be a reason for the daemon itself to fail.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Final

SOCKET_ENV: Final = "NOTIFY_SOCKET"
WATCHDOG_ENV: Final = "WATCHDOG_USEC"
WATCHDOG_PID_ENV: Final = "WATCHDOG_PID"


def socket_address(raw: str) -> str | bytes | None:
    """The address to send to: a path, or for `@name` the Linux abstract socket `\\0name`."""
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None


class Notifier:
    """Sends `READY=1`, `STATUS=...`, `WATCHDOG=1`, `STOPPING=1` to the service manager, if there is one."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = socket_address(env.get(SOCKET_ENV, ""))
        self.watchdog_interval = _watchdog_interval(env)
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of `KEY=value` lines; True when it left.

        Never blocks: a reader that stopped reading fills its queue, and a blocking send would then
        freeze the event loop, scheduler and all.
        """
        if self.address is None:
            return False
        message = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)
            self._socket.sendto(message, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of `$WATCHDOG_USEC` in seconds (systemd's advice), when the watchdog is meant for us."""
    raw = env.get(WATCHDOG_ENV, "")
    pid = env.get(WATCHDOG_PID_ENV, "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None
