"""The logging pipeline: JSON lines, one shape for structlog and stdlib records, secrets scrubbed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from reconciler.daemon import logs
from reconciler.spec.secrets import MASK, Secret


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_levels() -> Iterator[None]:
    """`configure` sets process-wide levels; other tests' loggers must find theirs unchanged."""
    names = ["", *logs.QUIET_LOGGERS]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logs.configure("info", "auto", stream=out)
    yield out
    logging.getLogger().removeHandler(handler)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_and_stdlib_records_leave_as_json_lines_of_one_shape(stream: io.StringIO) -> None:
    structlog.get_logger("reconciler.test").info("pool.created", pool="p1", account="demo")
    logging.getLogger("apscheduler.jobstores").warning("Run time of job %s was missed", "reconcile")
    first, second = lines(stream)
    assert first["event"] == "pool.created"
    assert first["pool"] == "p1"
    assert first["level"] == "info"
    assert first["logger"] == "reconciler.test"
    assert "timestamp" in first
    assert second["event"] == "Run time of job reconcile was missed"
    assert second["level"] == "warning"
    assert second["logger"] == "apscheduler.jobstores"


def test_run_id_is_bound_to_events_of_the_pass_only(stream: io.StringIO) -> None:
    log = structlog.get_logger("reconciler.test")
    with logs.bind_run("abc123"):
        log.info("pool.refresh.phase", pool="p1", account="demo", phase="draining")
        logging.getLogger("azure.core").warning("stdlib inside the pass")
    log.info("daemon.idle")
    inside, stdlib, outside = lines(stream)
    assert inside["run_id"] == "abc123"
    assert stdlib["run_id"] == "abc123"
    assert "run_id" not in outside


def test_revealed_secrets_and_sensitive_keys_are_masked_everywhere(stream: io.StringIO) -> None:
    key = Secret("account-key-value-0123456789")
    key.reveal()
    log = structlog.get_logger("reconciler.test")
    log.info(
        "azure.call",
        url="https://x/?sig=account-key-value-0123456789",
        nested={"a": ["account-key-value-0123456789"]},
    )
    log.info("auth.settings", client_secret="plain-but-sensitive", password=Secret("p4ss"), token_cached=True)
    logging.getLogger("azure.identity").error("token request failed for account-key-value-0123456789")
    try:
        raise RuntimeError("boom account-key-value-0123456789")
    except RuntimeError:
        log.exception("pass.failed")
    text = stream.getvalue()
    assert "account-key-value-0123456789" not in text
    assert "plain-but-sensitive" not in text
    assert "p4ss" not in text
    call, settings, stdlib, failed = lines(stream)
    assert call["url"] == f"https://x/?sig={MASK}"
    assert call["nested"] == {"a": [MASK]}
    assert settings["client_secret"] == MASK
    assert settings["token_cached"] is True
    assert stdlib["event"] == f"token request failed for {MASK}"
    assert "exception" in failed


def test_extra_secrets_given_at_setup_are_masked_too() -> None:
    out = io.StringIO()
    handler = logs.configure("info", "json", stream=out, extra_secrets=["from-the-outside"])
    try:
        structlog.get_logger("t").info("said", what="from-the-outside")
    finally:
        logging.getLogger().removeHandler(handler)
        structlog.reset_defaults()
    assert json.loads(out.getvalue())["what"] == MASK


def test_a_terminal_gets_console_lines_and_a_pipe_gets_json() -> None:
    tty = Tty()
    handler = logs.configure("info", "auto", stream=tty)
    try:
        structlog.get_logger("t").info("pool.created", pool="p1")
    finally:
        logging.getLogger().removeHandler(handler)
        structlog.reset_defaults()
    line = tty.getvalue().strip()
    assert "pool.created" in line
    assert "pool=p1" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_level_from_the_environment_wins_and_filters_stdlib_too() -> None:
    assert logs.level_name("info", {logs.LEVEL_ENV: "WARNING"}) == "warning"
    assert logs.level_name("debug", {logs.LEVEL_ENV: "nonsense"}) == "debug"
    assert logs.level_name(None, {}) == "info"
    out = io.StringIO()
    handler = logs.configure("warning", "json", stream=out)
    try:
        structlog.get_logger("t").info("dropped")
        logging.getLogger("aiohttp.server").info("dropped too")
        structlog.get_logger("t").warning("kept")
    finally:
        logging.getLogger().removeHandler(handler)
        structlog.reset_defaults()
    assert [e["event"] for e in lines(out)] == ["kept"]


def test_azure_http_logging_stays_quiet_even_at_debug(stream: io.StringIO) -> None:
    handler = logs.configure("debug", "json", stream=stream)
    try:
        policy_logger = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
        policy_logger.info("Request headers: Authorization: SharedKey demo:abc")
        assert not policy_logger.isEnabledFor(logging.INFO)
        assert "Authorization" not in stream.getvalue()
    finally:
        logging.getLogger().removeHandler(handler)


def test_configuring_twice_replaces_the_handler() -> None:
    first = logs.configure("info", "json", stream=io.StringIO())
    second = logs.configure("info", "json", stream=io.StringIO())
    try:
        assert first not in logging.getLogger().handlers
        assert second in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(second)
        structlog.reset_defaults()


def test_lines_follow_stdout_when_it_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", first)
    handler = logs.configure("info", "json")
    try:
        structlog.get_logger("t").info("before")
        monkeypatch.setattr("sys.stdout", second)
        structlog.get_logger("t").info("after")
    finally:
        logging.getLogger().removeHandler(handler)
        structlog.reset_defaults()
    assert [e["event"] for e in lines(first)] == ["before"]
    assert [e["event"] for e in lines(second)] == ["after"]


def test_a_line_that_cannot_be_written_is_said_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    closed, err = io.StringIO(), io.StringIO()
    closed.close()
    monkeypatch.setattr("sys.stdout", closed)
    monkeypatch.setattr("sys.stderr", err)
    handler = logs.configure("info", "json")
    try:
        structlog.get_logger("t").info("lost")
    finally:
        logging.getLogger().removeHandler(handler)
        structlog.reset_defaults()
    assert err.getvalue().startswith("reconciler: a log line was not written (ValueError: I/O operation")
