"""What a person at a terminal sees when something goes wrong: one line, never a traceback.

Exit codes: 2 for a mistake the person can fix (a missing or unreadable file, bad JSON, an
unknown name, a Redis that cannot be reached, missing configuration), 1 for a failure at run
time (a vendor refused, a mapping is invalid, the hub answered an error).
"""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import click


class UserError(click.ClickException):
    """A mistake the person can fix: exit code 2."""

    exit_code = 2


def safe_url(url: str) -> str:
    """The URL without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password:
        hosts = parts.netloc.rpartition("@")[2]     # as written: a Sentinel URL lists several
        netloc = f"{parts.username or ''}:***@{hosts}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@contextmanager
def plain_errors(redis_url: str | None = None) -> Iterator[None]:
    """Turn the errors a person can cause into one clear line."""
    import redis

    from hub.core.store import RedisUnavailable

    try:
        yield
    except click.ClickException:
        raise
    except RedisUnavailable as exc:
        raise UserError(str(exc)) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        where = safe_url(redis_url) if redis_url else "the configured Redis"
        raise UserError(f"Redis at {where} cannot be reached ({exc}); is it running? "
                        f"(HUB_REDIS_URL, or `hub redis status` for the embedded one)") from None
    except OSError as exc:
        if exc.filename is not None:
            raise UserError(f"{exc.filename}: {exc.strerror or exc}") from None
        raise


def read_text(path: str) -> str:
    """A file's text ('-' = stdin), relative to the folder the command was run in."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from None


def read_json(path: str) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{'stdin' if path == '-' else path} is not valid JSON: {exc}") from None
