"""JSON logs, one object a line, that carry a request id (or RQ job id) and never secrets or emails.

Every HTTP answer gets an `X-Request-ID` (the caller's, when it is a sane token, else a new one)
and one access line naming the route *template* (`/v1/contacts/<email>`, never the address
itself). Email addresses that reach a message are replaced by the contact id the hub uses
with vendors (`rsh_...`, a hash), so ops can still correlate lines with `hub contacts show`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
from collections import deque
from datetime import datetime, timezone
from typing import IO, Any, Callable

from hub.core.ledger import contact_id


HEADER = "X-Request-ID"
SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
SECRET_NAMES = re.compile(r"key|token|secret|password|authorization|signature|cookie", re.I)
# Attributes every LogRecord has; anything else on a record came from `extra=`.
STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
HANDLER_NAME = "hub-json"
MAX_TRACEBACK = 8000      # characters of a traceback kept in its log record


def pseudonym(match: re.Match[str]) -> str:
    return contact_id(match.group(0).strip().lower())


def scrub(value: Any) -> Any:
    """Emails become contact ids; nested lists and dicts are scrubbed too."""
    if isinstance(value, str):
        return EMAIL.sub(pseudonym, value)
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: ("***" if SECRET_NAMES.search(str(k)) else scrub(v)) for k, v in value.items()}
    return value


# Where a record's request id comes from: the HTTP adapter adds its own (hub.http.logs).
ID_SOURCES: list[Callable[[], dict[str, str]]] = []


def context_ids() -> dict[str, str]:
    ids: dict[str, str] = {}
    for source in ID_SOURCES:
        ids.update(source())
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:  # noqa: BLE001 - outside a worker there is no job
        job = None
    if job is not None:
        ids["job_id"] = job.id
    return ids


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, request/job id, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": scrub(record.getMessage())}
        doc.update(context_ids())
        for key, value in vars(record).items():
            if key in STANDARD or key.startswith("_"):
                continue
            doc[key] = "***" if SECRET_NAMES.search(key) else scrub(value)
        if record.exc_info:
            doc["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            doc["exc"] = scrub(str(record.exc_info[1]))[:500]
            # the whole traceback inside the one record (JSON escapes its newlines), tail first kept
            doc["traceback"] = scrub(self.formatException(record.exc_info))[-MAX_TRACEBACK:]
        elif record.stack_info:
            doc["stack"] = scrub(record.stack_info)[-MAX_TRACEBACK:]
        return json.dumps(doc, default=str, separators=(",", ":"))


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGALRM,
                signal.SIGUSR1, signal.SIGUSR2}


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose lines stay whole when a signal arrives mid-write.

    A write to a full pipe blocks, and a signal then runs its Python handler inside that write.
    RQ's and the pool's handlers log, and RQ's scheduler raises `StopRequested` from its own. A
    plain StreamHandler then writes into the same buffered stream again ("reentrant call") or is
    cut off by the exception, and prints a plain-text "Logging error". Here the main thread
    holds those signals back for the length of one write (they run right after it, and an
    exception one raises reaches the caller as it would anywhere else), and a record logged
    during a write anyway waits in a queue for the write in progress to send it next.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self.waiting: deque[str] = deque()
        self.writing = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.waiting.append(self.format(record) + self.terminator)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        if self.writing:
            return      # logged from inside our own write: the loop below sends it
        main = threading.current_thread() is threading.main_thread()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if main else None
        try:
            self.writing = True
            try:
                while self.waiting:
                    self.stream.write(self.waiting.popleft())
                    self.flush()
            except (OSError, ValueError):   # the stream's own failures (closed, full disk, encoding)
                self.handleError(record)
            # Anything else was raised by a signal handler that ran between two writes (a signal
            # the kernel gave to another thread is not held back): it goes on to the caller.
            finally:
                self.writing = False
        finally:
            if held is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)    # a held signal's handler runs here


def setup(level: str | int | None = None, stream: IO[str] | None = None,
          names: tuple[str, ...] = ("hub",)) -> logging.Handler:
    """Give the named loggers one JSON handler (idempotent: a second call replaces it)."""
    level = level or os.environ.get("HUB_LOG_LEVEL", "INFO")
    handler = LineHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    for name in names:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == HANDLER_NAME]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level.upper() if isinstance(level, str) else level)
        logger.propagate = False
    sys.excepthook = uncaught
    threading.excepthook = uncaught_in_thread
    return handler


def uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """An exception that ends the process is one JSON record too, never plain traceback lines."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:    # the process is ending: a stop signal now must not cut its last record short
            signal.signal(number, signal.SIG_IGN)
        except ValueError:  # not the main thread
            break
    logging.getLogger("hub").critical("uncaught exception; the process exits", exc_info=(kind, exc, tb))


def uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("hub").critical("uncaught exception in a thread", exc_info=(
        args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        extra={"in_thread": args.thread.name if args.thread else None})
