"""structlog logger construction: JSON lines on stderr, filtered by level.

The logger is built here and passed explicitly; nothing configures structlog's process-wide
defaults, so tests and embedded uses can hold loggers with different levels side by side.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def make_logger(
    level: str = "info", *, json: bool = True, stream: TextIO | None = None
) -> structlog.typing.FilteringBoundLogger:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    logger: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(file=stream or sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level.lower()]),
        cache_logger_on_first_use=True,
    )
    return logger
