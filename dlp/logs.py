"""structlog configuration: JSON lines on stderr, with a redaction processor as the last line of defence.

The code never logs content on purpose; the processor makes sure that an accident (an exception text
quoting an address, a library logging a command line, a value passed by mistake) cannot carry a card,
an SSN, a mail address or a credential out. Tracebacks keep their frames (file, line, function) but
never local variables, and exception messages go through the same redaction.

Context that belongs to a unit of work (incident id, channel, message id) is bound with
`log_context(...)` and merged into every line logged inside it, across awaits.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
import types
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

# Keys whose values are content by nature and are dropped whole.
CONTENT_KEYS = frozenset({"body", "content", "data", "text", "value", "raw", "payload", "line", "args",
                          "original", "snippet", "excerpt", "match", "matched", "headers"})
# Keys whose values are credentials by nature.
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_key", "apikey", "authorization",
                         "cookie", "set_cookie", "private_key", "credentials"})
# Integer values under keys named like quantities may be long (byte counts); others longer than
# MAX_INT_DIGITS are treated like digit runs (an account or card number passed as an int).
_QUANTITY_WORDS = ("bytes", "size", "count", "total", "seconds", "ms", "port", "pid", "length", "limit",
                   "free", "depth", "workers", "rss", "offset")
# Keys that carry identifiers this program made; kept verbatim when they have exactly that shape.
_ID_SHAPES = {
    "incident": re.compile(r"INC-\d{8}-[0-9A-F]{8}"),
    "incident_id": re.compile(r"INC-\d{8}-[0-9A-F]{8}"),
    "message_id": re.compile(r"m-[0-9a-f]{16}"),
}

MAX_STRING = 2000  # a log line is not a place for a document
MAX_DEPTH = 6
MAX_ITEMS = 100
MAX_INT_DIGITS = 7  # like the 8-digit floor of the text digit-run rule

# Characters people and programs put between digits: spaces of every kind, dashes of every kind, dots,
# slashes, parentheses, plus, soft hyphen and zero-width characters.
_SEP = r"[\s\-./()+_\u00ad\u200b-\u200d\u2010-\u2015\u2060\u2212\ufeff]"
_REDACTIONS = re.compile(
    "|".join([
        # Kept as they are (checked first): our incident ids, ISO dates inside timestamps, IPv4.
        r"(?P<keep>INC-20\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])-[0-9A-F]{8}"
        r"|\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?(?:Z|[+-]\d\d:?\d\d)?"
        r"|(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]))",
        r"(?P<pem>-----BEGIN[A-Z ]*PRIVATE KEY-----(?:.*?-----END[A-Z ]*PRIVATE KEY-----|.*))",
        r"(?P<urlcred>(?<=://)[^/\s:@]+:[^/\s@]+@)",
        r"(?P<kv>(?i:\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|authorization"
        r"|cookie|session[_-]?id|client[_-]?secret)\b[\"']?\s*[:=]\s*)(?:\"[^\"]*\"|'[^']*'|\S+))",
        r"(?P<bearer>(?i:\b(?:bearer|basic)\s+)(?=[A-Za-z0-9._~+/=\-]*[\d+/=])[A-Za-z0-9._~+/=\-]{8,})",
        r"(?P<known>\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_\w{20,}"
        r"|\bxox[abprs]-[A-Za-z0-9\-]{10,}|\b[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|\bAIza[\w\-]{30,}"
        r"|\beyJ[\w\-]+\.[\w\-]+\.[\w\-]*|\bsk-[A-Za-z0-9_\-]{20,})",
        r"(?P<iban>\b[A-Z]{2}\d\d(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b)",
        r"(?P<email>[\w.!#$%&'*+/=?^`{|}~\-]+@[\w\-]+(?:\.[\w\-]+)+)",
        rf"(?P<digits>(?<!\d)\d(?:{_SEP}{{0,3}}\d){{7,}}(?!\d))",
        # Long mixed letters-and-digits strings: keys, session ids, hashes of secrets.
        r"(?P<token>(?<![\w+/=\-])(?=[\w+/=\-]*\d)(?=[\w+/=\-]*[A-Za-z])[\w+/=\-]{24,})",
    ]),
    re.DOTALL,
)


def _replace(m: re.Match[str]) -> str:
    kind = m.lastgroup
    if kind == "keep":
        return m.group()
    if kind == "digits":
        return f"[redacted:{sum(c.isdigit() for c in m.group())}d]"
    if kind == "kv":
        key = re.match(r"(?i)[^:=]*[:=]\s*", m.group())
        return (key.group() if key else "") + "[redacted]"
    if kind == "bearer":
        return m.group().split(None, 1)[0] + " [redacted:token]"
    if kind == "urlcred":
        return "[redacted:credentials]@"
    if kind in ("known", "pem"):
        return "[redacted:secret]"
    return f"[redacted:{kind}]"


def redact_text(text: str) -> str:
    """Mask anything shaped like sensitive data in a free-text string."""
    if len(text) > MAX_STRING:
        text = text[:MAX_STRING] + "…[truncated]"
    return _REDACTIONS.sub(_replace, text)


def redact(value: Any, depth: int = 0, key: str = "") -> Any:
    """Redact a log value of any type, recursively; anything that is not a plain value becomes text."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        digits = len(str(abs(value)))
        if digits <= MAX_INT_DIGITS or (digits <= 15 and any(w in key for w in _QUANTITY_WORDS)):
            return value
        return f"[redacted:{digits}d]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[redacted:{len(value)} bytes]"
    if depth >= MAX_DEPTH:
        return "[redacted:nested]"
    if isinstance(value, Mapping):
        return {redact_text(_safe_str(k)): _redact_item(_safe_str(k), v, depth + 1)
                for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {redact_text(_safe_str(value))}"
    return redact_text(_safe_str(value))


def _redact_item(key: str, value: Any, depth: int = 0) -> Any:
    lowered = key.lower()
    if lowered in CONTENT_KEYS or lowered in SECRET_KEYS:
        return "[redacted]"
    shape = _ID_SHAPES.get(lowered)
    if shape is not None and isinstance(value, str) and shape.fullmatch(value):
        return value
    return redact(value, depth, lowered)


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not break logging
        return f"<{type(value).__name__}>"


def format_exception(exc: BaseException, limit: int = 30) -> dict[str, Any]:
    """A traceback without local variables, with redacted messages.

    Frames are code locations (file, line, function) and stay readable. Chained exceptions (`raise ...
    from`, implicit context) are included, innermost first, as Python prints them.
    """
    chain: list[dict[str, Any]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < 5:
        seen.add(id(current))
        frames = [f"{f.filename}:{f.lineno} in {f.name}"
                  for f in traceback.extract_tb(current.__traceback__, limit=-limit)]
        entry: dict[str, Any] = {"type": type(current).__name__,
                                 "message": redact_text(_safe_str(current))[:500], "frames": frames}
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list) and notes:
            entry["notes"] = [redact_text(_safe_str(n))[:200] for n in notes[:5]]
        chain.append(entry)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    chain.reverse()
    return {"exception_type": type(exc).__name__, "exception": chain[-1]["message"], "traceback": chain}


def _exc_from(value: Any) -> BaseException | None:
    if value is True:
        return sys.exc_info()[1]
    if isinstance(value, BaseException):
        return value
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value[1]
    return None


def redaction_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Redact every value; turn exc_info into a sanitised traceback (no locals, redacted messages)."""
    exc_info = event.pop("exc_info", None)
    event.pop("stack_info", None)  # stack dumps are for debuggers, not for production logs
    for key in list(event):
        event[key] = _redact_item(key, event[key])
    exc = _exc_from(exc_info) if exc_info else None
    if exc is not None:
        event.update(format_exception(exc))
    return event


class StdlibBridge(logging.Handler):
    """Route standard-library loggers (aiosmtpd, mitmproxy, uvicorn, asyncio) through structlog's
    redaction. Only the formatted message is kept, redacted; the record's args never travel alone."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string must not kill the caller
                message = _safe_str(record.msg)
            fields: dict[str, Any] = {"logger": record.name, "message": message}
            if record.exc_info and record.exc_info[1] is not None:
                fields["exc_info"] = record.exc_info[1]
            structlog.get_logger(record.name).log(record.levelno, "library", **fields)
        except Exception:  # logging must never raise into the code that logged
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        # The default prints the record (with its arguments) to stderr: exactly what must not happen.
        pass


# Third-party loggers that log protocol lines or request URLs at INFO. Their WARNING and above still
# flow (redacted); their chatter does not.
TAMED_LOGGERS = {
    "mail.log": logging.WARNING,  # aiosmtpd: every command line (MAIL FROM, RCPT TO) at INFO
    "mitmproxy": logging.WARNING,  # client connects, request URLs
    "uvicorn.access": logging.WARNING,  # request lines with query strings
    "uvicorn.error": logging.WARNING,
    "starlette": logging.WARNING,
    "httpx": logging.WARNING,  # request URLs at INFO
    "httpcore": logging.WARNING,
    "hpack": logging.WARNING,  # header blocks at DEBUG
    "h2": logging.WARNING,
    "h11": logging.WARNING,
    "multipart": logging.WARNING,
    "presidio-analyzer": logging.WARNING,
    "scapy": logging.WARNING,
    "asyncio": logging.WARNING,
}

# Pass to uvicorn.Config / uvicorn.run: uvicorn's default log_config replaces the handlers of its loggers
# (bypassing redaction) and its access log prints request lines with their query strings.
UVICORN_OPTIONS: dict[str, Any] = {"log_config": None, "access_log": False}

_configured = False
_config_lock = threading.Lock()


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        redaction_processor,
        # After redaction: a timestamp is ours and digit-shaped.
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.JSONRenderer(default=_safe_str),
    ]


def _stderr_logger(*_args: Any) -> Any:
    return structlog.PrintLogger(sys.stderr)  # the stderr of the moment (tests swap it)


def _safe_defaults() -> None:
    """structlog's own default renders exceptions with rich, local variables included: every process
    that imports this module (inspection workers, commands that log before configure()) gets the
    redacting JSON pipeline instead."""
    if not structlog.is_configured():
        structlog.configure(processors=_processors(), logger_factory=_stderr_logger,
                            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
                            cache_logger_on_first_use=False)


def configure(level: str | int = "info", stream: Any = None) -> None:
    """Set up JSON logging for this process. Safe to call again (later calls replace level and stream)."""
    global _configured
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=_processors(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream) if stream is not None else _stderr_logger,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    with _config_lock:
        if not _configured:
            for h in list(root.handlers):
                root.removeHandler(h)
            root.addHandler(StdlibBridge())
            logging.captureWarnings(True)
            # logging's last-resort handler would print unredacted records if the bridge went away.
            logging.lastResort = None
            sys.excepthook = _log_uncaught
            threading.excepthook = _log_uncaught_thread
            _configured = True
    for name, cap in TAMED_LOGGERS.items():
        logging.getLogger(name).setLevel(max(cap, numeric))
    root.setLevel(numeric)


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: types.TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    get_logger("dlp").critical("uncaught_exception", exc_info=exc)


def _log_uncaught_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        get_logger("dlp").critical("uncaught_thread_exception", thread=getattr(args.thread, "name", "?"),
                                   exc_info=args.exc_value)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind context (incident, channel, message_id, ...) to every line logged inside, across awaits."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


def get_logger(name: str = "dlp") -> Any:
    return structlog.get_logger(name)


_safe_defaults()
