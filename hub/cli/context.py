"""What every command shares: the hub's services for the command (never the web app), and
reading a document a person names."""
from __future__ import annotations

import getpass
import json
import os
from contextlib import contextmanager
from typing import Any, Iterator
from hub.cli.terminal import UserError, read_text
import click


def command_services() -> Any:
    """The hub's services for a one-shot command (no web app), with its Redis there until the
    command ends."""
    from hub.core.bootstrap import build_services
    from hub.core.config import load
    from hub.core.store import redis_for

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.find_root().with_resource(redis_for(load(), long_running=False))
    return build_services()


@contextmanager
def hub_app() -> Iterator[Any]:
    """The configured hub's services, bound for the command; API errors become a readable click error."""

    from hub.core.errors import APIError
    from hub.core.services import using

    core = command_services()
    try:
        with using(core):
            yield core
    except APIError as exc:
        lines = [f"{exc.message} ({exc.status} {exc.code})"]
        details = exc.details if isinstance(exc.details, list) else ([exc.details] if exc.details else [])
        for item in details:
            if isinstance(item, dict) and "message" in item:
                lines.append(f"  {item.get('path') or item.get('field') or '$'}: {item['message']}")
            else:
                lines.append(f"  {json.dumps(item, default=str)}")
        error = UserError if exc.status == 404 else click.ClickException   # an unknown name: exit 2
        raise error("\n".join(lines)) from None


def read_document(path: str) -> Any:
    """JSON from a file ('-' = stdin); YAML too for .yml/.yaml when PyYAML is installed."""
    text = read_text(path)
    if path.endswith((".yml", ".yaml")):
        try:
            import yaml
        except ImportError:
            raise UserError("reading YAML needs PyYAML (pip install PyYAML), or give a JSON file") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{'stdin' if path == '-' else path} is not valid JSON: {exc}") from None


def default_author() -> str:
    return os.environ.get("HUB_AUTHOR") or f"cli:{getpass.getuser()}"
