"""sd_notify: datagrams on a path or abstract socket, silent without one, never blocking."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.daemon.sdnotify import Notifier, socket_address


@pytest.fixture
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[socket.socket, str]]:
    path = Path("/tmp") / f"rcd-{uuid.uuid4().hex[:8]}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield sock, str(path)
    sock.close()
    path.unlink(missing_ok=True)


def test_messages_arrive_as_datagrams(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready("1 pool in sync")
    assert sock.recv(1024).decode() == "READY=1\nSTATUS=1 pool in sync"
    assert notifier.status("2 pools in sync,\n1 refreshing")
    assert sock.recv(1024).decode() == "STATUS=2 pools in sync, 1 refreshing"
    assert notifier.watchdog()
    assert sock.recv(1024).decode() == "WATCHDOG=1"
    assert notifier.stopping()
    assert sock.recv(1024).decode() == "STOPPING=1"
    notifier.close()


def test_abstract_socket_address() -> None:
    name = f"rcd-{uuid.uuid4().hex[:8]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        assert socket_address("@" + name) == b"\0" + name.encode()
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(1024) == b"READY=1"
    finally:
        sock.close()


def test_silent_without_a_socket_or_with_a_bad_one() -> None:
    assert not Notifier({}).enabled
    assert not Notifier({}).ready()
    assert not Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled
    gone = Notifier({"NOTIFY_SOCKET": "/tmp/rcd-no-such-socket"})
    assert gone.enabled
    assert not gone.ready()


def test_a_full_queue_drops_the_message_instead_of_blocking(listener: tuple[socket.socket, str]) -> None:
    _sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    sent = [notifier.watchdog() for _ in range(500)]
    assert sent[0]
    assert not all(sent)


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_this_process() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "x"}).watchdog_interval is None
    assert Notifier({}).watchdog_interval is None
