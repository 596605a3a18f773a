"""structlog configuration: JSON lines on stderr, with a redaction processor as the last line of defence.

The code never logs content on purpose; the processor makes sure that an accident (an exception text
quoting an address, a library logging a command line) cannot carry a card, an SSN or a mail address out.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are content by nature and are dropped whole.
_CONTENT_KEYS = frozenset({"body", "content", "data", "text", "value", "raw", "payload", "line", "args"})
# 8 or more digits, allowing common separators between them: cards, SSNs, accounts, phone numbers.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9](?:[ \-./\u00a0]{0,2}[0-9]){7,}(?![0-9])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_LONG_TOKEN = re.compile(r"\b[A-Za-z0-9_\-+/=]{32,}\b")


def redact_text(text: str) -> str:
    """Mask anything shaped like sensitive data in a free-text string."""
    text = _DIGIT_RUN.sub(lambda m: f"[redacted:{sum(c.isdigit() for c in m.group())}d]", text)
    text = _EMAIL.sub("[redacted:email]", text)
    return _LONG_TOKEN.sub("[redacted:token]", text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return f"[redacted:{len(value)} bytes]"
    if isinstance(value, dict):
        return {k: ("[redacted]" if k in _CONTENT_KEYS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redaction_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key in _CONTENT_KEYS:
            event[key] = "[redacted]"
        else:
            event[key] = _redact(event[key])
    return event


def _drop_exception_locals(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Tracebacks keep their frames but never their messages' content (exception texts are redacted)."""
    exc = event.pop("exc_info", None)
    if exc:
        info = sys.exc_info() if exc is True else exc
        if isinstance(info, BaseException):
            info = (type(info), info, info.__traceback__)
        if info and info[0] is not None:
            event["exception_type"] = info[0].__name__
            event["exception"] = redact_text(str(info[1]))[:300]
    return event


class _StdlibBridge(logging.Handler):
    """Route standard-library loggers (aiosmtpd, mitmproxy, uvicorn) through structlog's redaction."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not kill the caller
            message = str(record.msg)
        structlog.get_logger(record.name).log(
            record.levelno, "library", logger=record.name, message=redact_text(message)[:500]
        )


_configured = False


def configure(level: str = "info", stream: Any = None) -> None:
    """Set up JSON logging once per process. Safe to call again (later calls change the level only)."""
    global _configured
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_exception_locals,
            redaction_processor,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    if not _configured:
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(_StdlibBridge())
        # aiosmtpd logs every command line (addresses, DATA sizes) at INFO: keep only its warnings.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        logging.getLogger("mitmproxy").setLevel(logging.WARNING)
        _configured = True
    root.setLevel(numeric)


def get_logger(name: str = "dlp") -> Any:
    return structlog.get_logger(name)
