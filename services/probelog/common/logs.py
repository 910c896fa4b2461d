"""Log lines: JSON objects, one a line, for log collectors; or plain text for a developer.

Each JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
``request_id`` of the call it was written in (:data:`probelog.common.observe.REQUEST_ID`), the
access log's ``rpc``, ``code`` and ``duration_ms``, and ``exception`` with the traceback when
there is one. Libraries that log through the root logger (open_clip does) appear under their
own package's name, not ``root``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import PurePath

from probelog.common.observe import REQUEST_ID

FORMATS = ("json", "text")
#: Fields of a record that a JSON line carries when a call set them (``extra=``).
_EXTRA = ("rpc", "code", "duration_ms")


def _package_of(pathname: str) -> str:
    """The top-level package of a source file under a site-packages directory, else ""."""
    parts = PurePath(pathname).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            i = parts.index(marker)
            if i + 1 < len(parts):
                return parts[i + 1].removesuffix(".py")
    return ""


class Context(logging.Filter):
    """Adds the request id, and names a root-logger record after the package that wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        if record.name == "root":
            record.name = _package_of(record.pathname) or "root"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            line["request_id"] = request_id
        for key in _EXTRA:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", "")
        return f"{text} [{request_id}]" if request_id else text


def configure_logging(level: str, fmt: str = "text") -> None:
    """Send every log record to stderr at ``level`` and above, as ``fmt`` ("json" or "text")."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Context())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
