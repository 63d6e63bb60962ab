"""`hub feeds`: status, poll, export, and the feed mapping's versions."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import click


@contextmanager
def feeds_app() -> Iterator[Any]:
    """An app context; configuration and SFTP errors become a readable message, never a traceback."""
    from hub.cli.context import hub_app

    from hub.core.feeds.config import FeedConfigError
    from hub.core.feeds.sftp import SFTPError

    try:
        with hub_app() as app:
            yield app
    except (FeedConfigError, SFTPError) as exc:
        raise click.ClickException(str(exc)) from None


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group()
def feeds() -> None:
    """CSV feeds over SFTP: files in, exports out (HUB_FEEDS_FILE)."""


@feeds.command()
@click.argument("name", required=False)
def status(name: str | None) -> None:
    """Each feed's progress, counts (rows, accepted, duplicates, errors) and each export's last run."""
    from hub.core.feeds import jobs
    from hub.core.feeds import status as feed_status

    with feeds_app() as app:
        config = jobs.settings()
        names = [config.feed(name)["name"]] if name and name in config.feeds else ([] if name else list(config.feeds))
        out: dict[str, Any] = {"feeds": [feed_status.read(app.redis, n) for n in names]}
        export_names = [config.export(name)["name"]] if name and name not in config.feeds else ([] if name else list(config.exports))
        out["exports"] = [jobs.export_status(n) for n in export_names]
        emit(out)


@feeds.command()
@click.argument("name", required=False)
def poll(name: str | None) -> None:
    """Import the new files of one feed (or every feed) now; progress on stderr, Ctrl-C stops cleanly."""
    from hub.cli.progress import command

    from hub.core.feeds import jobs

    with feeds_app(), command("import", unit="bytes") as progress:
        result = jobs.poll_feed(name, progress) if name else jobs.poll_feeds(progress)
    emit(result)


@feeds.command()
@click.argument("name")
@click.option("--queue", "queued", is_flag=True, help="queue it for the worker pool (retried) instead of running it here")
def export(name: str, queued: bool) -> None:
    """Build and upload export NAME now; progress on stderr, Ctrl-C stops cleanly (nothing is published)."""
    from hub.cli.progress import command

    from hub.core.feeds import jobs

    with feeds_app():
        if queued:
            jobs.settings().export(name)
            emit({"queued": jobs.enqueue_export(name)})
            return
        with command(f"export {name}", unit="contacts") as progress:
            result = jobs.export(name, progress)
    emit(result)


@feeds.command()
@click.option("--now", help="ISO 8601 time to check the cron schedules against (default: now)")
def due(now: str | None) -> None:
    """Queue the exports whose cron time has come (what the scheduler runs each minute)."""
    from hub.core.feeds import jobs

    with feeds_app():
        emit({"queued": jobs.exports_due(now)})


@feeds.command()
def presets() -> None:
    """The shipped feed mappings, and whether each follows a published layout."""
    from hub.core.feeds.mapping import PRESETS

    emit(PRESETS)


@feeds.group()
def mapping() -> None:
    """A feed's mapping: show, validate, apply, history, rollback."""


def _feed(name: str) -> dict[str, Any]:
    from hub.core.feeds import jobs

    return jobs.settings().feed(name)


@mapping.command("show")
@click.argument("name")
def mapping_show(name: str) -> None:
    """The feed's current mapping record (version, ETag, document)."""
    from hub.core.feeds import versions

    with feeds_app() as app:
        emit(versions.current(app.redis, _feed(name)))


@mapping.command("validate")
@click.argument("file")
def mapping_validate(file: str) -> None:
    """Validate FILE as a feed mapping."""
    from hub.cli.context import read_document

    from hub.core.feeds.mapping import validate_feed_mapping

    _, errors = validate_feed_mapping(read_document(file))
    emit({"valid": not errors, "errors": errors})
    if errors:
        sys.exit(1)


@mapping.command("apply")
@click.argument("name")
@click.argument("file")
@click.option("--comment", "-m", default="")
@click.option("--if-match", default="*", help="the ETag you edited from (default: any)")
def mapping_apply(name: str, file: str, comment: str, if_match: str) -> None:
    """Save FILE as feed NAME's mapping: a new version."""
    from hub.cli.context import default_author, read_document
    from hub.core.mappingstore import StaleVersion

    from hub.core.feeds import versions

    document = read_document(file)
    with feeds_app() as app:
        try:
            record = versions.save(app.redis, _feed(name), document, author=default_author(),
                                   comment=comment, if_match=if_match)
        except ValueError as exc:
            raise click.ClickException(f"{file} is not a valid feed mapping: {exc}") from None
        except StaleVersion as exc:
            raise click.ClickException(str(exc)) from None
        emit({k: v for k, v in record.items() if k != "document"})


@mapping.command("history")
@click.argument("name")
def mapping_history(name: str) -> None:
    """Every version of feed NAME's mapping, newest first."""
    from hub.core.feeds import versions

    with feeds_app() as app:
        emit(versions.history(app.redis, _feed(name)))


@mapping.command("rollback")
@click.argument("name")
@click.argument("version", type=int)
def mapping_rollback(name: str, version: int) -> None:
    """Make VERSION's document current again (as a new version)."""
    from hub.cli.context import default_author

    from hub.core.feeds import versions

    with feeds_app() as app:
        try:
            record = versions.rollback(app.redis, _feed(name), version, author=default_author())
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        emit({k: v for k, v in record.items() if k != "document"})
