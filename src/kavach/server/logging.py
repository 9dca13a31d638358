"""Structured logging with structlog; stdlib loggers (uvicorn, SQLAlchemy) go through it.

Lines are JSON for machines (a file, a pipe, a log collector) and readable text on a
terminal. Neither renderer shows a traceback's local variables, which may hold secrets.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from kavach.server.settings import LogFormat


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # a closed stream
        return False


def renders_json(chosen: LogFormat, stream: TextIO | None = None) -> bool:
    """Tell whether to write JSON: as chosen, or, for auto, unless `stream` is a terminal."""
    if chosen is not LogFormat.AUTO:
        return chosen is LogFormat.JSON
    return not _is_terminal(sys.stderr if stream is None else stream)


def _renderer(json: bool, stream: TextIO) -> list[structlog.typing.Processor]:
    if json:
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    # plain_traceback: the default (rich) one prints every frame's local variables.
    console = structlog.dev.ConsoleRenderer(
        colors=_is_terminal(stream), exception_formatter=structlog.dev.plain_traceback
    )
    return [console]


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Send every log record to stderr as one JSON line, or as readable console text."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            # First: a call below the level costs a level check, not the processors' work.
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
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer(json, sys.stderr),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Uvicorn's access log would repeat our request line with the raw query string.
    logging.getLogger("uvicorn.access").disabled = True
    # Outbound request lines carry URLs; migration and policy-loading chatter is noise; the
    # database driver at DEBUG logs every statement with its parameters.
    noisy = ("httpx", "httpcore", "alembic", "casbin", "azure", "msal", "google", "aiosqlite")
    for name in noisy:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)  # the root's level, whatever uvicorn set before
        logger.disabled = False  # a logging.config call elsewhere may have turned it off


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a structured logger."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
