"""structlog set-up, and nothing else.

JSON lines on stdout (UTC ISO time, level, dotted event name, bound context)
for machines; a coloured console only for a person at a terminal. Records of
third-party libraries that use the standard ``logging`` module (aiohttp,
asyncpg, websockets) go through the same renderer so every line parses.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_in_force: tuple[str, bool] | None = None


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


_FIRST_KEYS = ("timestamp", "level", "event", "component")

_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)
"""Tracebacks as JSON, without the frames' local variables: a local may hold a password,
a token or the exchange secret (structlog's ``dict_tracebacks`` shows them)."""


def _component_and_order(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Every line names its component (a library's logger name if none); stable keys first."""
    logger_name = event.pop("logger", None)
    if "component" not in event and logger_name:
        event["component"] = logger_name
    ordered = {key: event.pop(key) for key in _FIRST_KEYS if key in event}
    ordered.update(event)
    return ordered


def configure_logging(level: str = "info", pretty: bool | None = None) -> None:
    """Configure structlog and the standard library's root logger.

    ``pretty=None`` means: human console only when stdout is a terminal.
    """
    global _in_force
    if pretty is None:
        pretty = sys.stdout.isatty()
    _in_force = (level, pretty)
    numeric = _LEVELS[level]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if pretty:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    else:
        shared.append(_TRACEBACKS)
        shared.append(_component_and_order)
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Chatty libraries: their debug output is not ours to show at info level.
    for name in ("asyncio", "aiohttp.access", "websockets", "pgserver"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def logging_in_force() -> tuple[str, bool] | None:
    """``configure_logging``'s arguments as last applied (None: never called), so that a
    child process can log exactly as its parent does."""
    return _in_force


def get_logger(component: str, **context: Any) -> Any:
    """A logger for a component name (and any per-task context).

    Lazy: it takes its processors and output from the configuration in force
    when it first logs, not when it is created, so a logger made at import time
    (before ``configure_logging``) still writes JSON lines. Binding a logger
    (``.bind()``) fixes its configuration: do that only once logging is configured.
    """
    return structlog.get_logger(component, component=component, **context)
