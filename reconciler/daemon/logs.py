"""One logging pipeline for the process: structlog events and stdlib records (azure-core, apscheduler,
aiohttp) leave through the same processors, so every line has the same shape and passes the same scrubber.

Lines are JSON when the stream is not a terminal (journald, ACI, a log shipper) and readable when a person
watches. The scrubber runs last before rendering, on tracebacks too, because a secret can reach a log line
by many roads (an exception message quoting a URL, a third-party library's debug output) and only a final
filter covers all of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any, Final, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from reconciler.spec.secrets import MASK, Secret, revealed_values

LEVEL_ENV: Final = "RECONCILER_LOG_LEVEL"
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
Format = Literal["auto", "json", "console"]

SENSITIVE_KEY: Final = re.compile(
    r"(password|passwd|secret|token|authorization|account_?key|access_?key|api_?key|credential"
    r"|connection_?string|sas|signature|cookie)",
    re.IGNORECASE,
)
QUIET_LOGGERS: Final = {
    "azure": logging.WARNING,
    "azure.core.pipeline.policies.http_logging_policy": logging.ERROR,
    "azure.identity": logging.WARNING,
    "apscheduler": logging.WARNING,
    "apscheduler.scheduler": logging.ERROR,
    "apscheduler.executors": logging.ERROR,
    "aiohttp.access": logging.WARNING,
    "urllib3": logging.WARNING,
    "asyncio": logging.WARNING,
}
"""Third-party loggers held above debug: azure-core's HTTP logging would print headers (keys, tokens)."""

_MAX_DEPTH: Final = 8


def level_name(configured: str | None, env: Mapping[str, str] | None = None) -> str:
    """The environment wins over the config, so an operator can raise verbosity without an edit."""
    raw = (os.environ if env is None else env).get(LEVEL_ENV, "").strip().lower()
    if raw in LEVELS:
        return raw
    return (configured or "info").lower()


class Redactor:
    """Masks revealed secret values anywhere in an event, and whole values under sensitive-looking keys.

    The set of revealed values is read on every event: Key Vault secrets are revealed lazily, long after
    logging was set up.
    """

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra = frozenset(v for v in extra if v)

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        secrets = sorted(revealed_values() | self.extra, key=len, reverse=True)
        return {key: self._value(key, value, secrets, 0) for key, value in event.items()}

    def _value(self, key: object, value: Any, secrets: list[str], depth: int) -> Any:
        if isinstance(value, Secret):
            return value.display()
        if isinstance(key, str) and key != "event" and SENSITIVE_KEY.search(key) and _is_data(value):
            return MASK
        if isinstance(value, str):
            return scrub(value, secrets)
        if depth >= _MAX_DEPTH:
            return scrub(repr(value), secrets)
        if isinstance(value, Mapping):
            return {k: self._value(k, v, secrets, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(None, v, secrets, depth + 1) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return scrub(str(value), secrets)


def _is_data(value: Any) -> bool:
    """Flags and counts under a sensitive-looking key (`token_cached: true`) say nothing secret."""
    return not (value is None or isinstance(value, bool | int | float))


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return text


def _drop_color_message(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
    ]


def use_json(fmt: Format, stream: IO[str]) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure(
    level: str = "info",
    fmt: Format = "auto",
    *,
    stream: IO[str] | None = None,
    extra_secrets: Iterable[str] = (),
) -> logging.Handler:
    """Set up structlog and the stdlib root logger to write through one scrubbed pipeline.

    Safe to call again (a reload changing the level): the previous handler is replaced, not stacked.
    Returns the handler, so tests can remove it.
    """
    out = stream if stream is not None else sys.stdout
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    redactor = Redactor(extra_secrets)
    renderer: Processor
    if use_json(fmt, out):
        renderer = structlog.processors.JSONRenderer(default=str)
        final: list[Processor] = [structlog.processors.dict_tracebacks, redactor, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_plain_traceback)
        final = [structlog.processors.format_exc_info, redactor, renderer]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = _Handler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name, floor in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(floor, numeric))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return handler


def _plain_traceback(sio: Any, exc_info: Any) -> None:
    structlog.dev.plain_traceback(sio, exc_info)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the stream it was given, or else to whatever `sys.stdout` is when the line is written.

    Binding stdout once, at configure time, would send every later line into a stream its owner has
    since replaced or closed (a test's capture, a redirect), and lose them without a word. It is also
    the handler `configure` recognises as its own, so a second call replaces it and leaves others alone.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream if stream is not None else sys.stdout)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        if self._fixed is None:
            self.stream = sys.stdout
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """A line that cannot be written is said on stderr, once per line, never raised.

        Raising would take the daemon down with its reader (a broken pipe); saying nothing would hide
        that the log has gone dark.
        """
        error = sys.exc_info()[1]
        reason = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
        with contextlib.suppress(Exception):
            print(f"reconciler: a log line was not written ({reason})", file=sys.stderr, flush=True)


def bind_run(run_id: str) -> Any:
    """Context manager binding `run_id` to every event of the current task (and tasks it starts)."""
    return structlog.contextvars.bound_contextvars(run_id=run_id)
