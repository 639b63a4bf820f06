"""Command logging writes to the stderr of the moment, so a logger that outlives its command stays usable."""

from __future__ import annotations

import contextlib
import io

import structlog

from reconciler.commands.apply import command_logging


def test_a_logger_bound_during_a_command_writes_to_the_stderr_current_at_write_time() -> None:
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured), command_logging():
        bound = structlog.get_logger("reconciler.engine.cycle").bind(pool="p1", account="demo")
        bound.warning("pool.refresh.call_failed", call="drain")
    captured.close()

    later = io.StringIO()
    with contextlib.redirect_stderr(later), command_logging():
        bound.warning("pool.refresh.drain_timeout", on_drain_timeout="wait")
    assert "pool.refresh.drain_timeout" in later.getvalue()
    assert "pool=p1" in later.getvalue()


def test_loggers_made_after_a_command_write_to_the_stream_of_their_own_time() -> None:
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured), command_logging():
        structlog.get_logger("reconciler.engine.executor").warning("pool.action.unfinished")
    assert "pool.action.unfinished" in captured.getvalue()
    captured.close()

    later = io.StringIO()
    with contextlib.redirect_stderr(later), command_logging():
        structlog.get_logger("reconciler.engine.executor").warning("pool.action.unfinished", second=True)
    assert "second=True" in later.getvalue()
