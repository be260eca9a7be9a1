"""Structured logs: one JSON object a line on stderr for `aiwarden run`, readable text
under mitmdump. What is logged is chosen by the caller; nothing here adds request content."""

from __future__ import annotations

import json
import logging
import sys
import time

logger = logging.getLogger("aiwarden")


def event(name: str, **fields: object) -> None:
    """Log one event with its fields (None values are left out)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {k: v for k, v in fields.items() if v is not None}
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    logger.info(f"{name} {text}".rstrip(), extra={"event": name, "fields": fields})


class JsonFormatter(logging.Formatter):
    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if self.worker is not None:
            out["worker"] = self.worker
        if name := getattr(record, "event", None):
            out["event"] = name
            out.update(getattr(record, "fields", {}))
        else:
            out["msg"] = record.getMessage()
        if record.exc_info and record.exc_info[0]:
            out["error"] = record.exc_info[0].__name__
            out["trace"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(level: str = "info", worker: int | None = None) -> None:
    """JSON lines on stderr, each with the worker number under `--workers N`; mitmproxy's
    own chatter only from warnings up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("aiwarden").setLevel(level.upper())
    for noisy in ("mitmproxy", "asyncio", "hpack", "passlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
