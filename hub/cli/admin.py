"""`hub mappings` and `hub connectors`: the admin API's verbs for people at a terminal.

Each command builds the app (HUB_* settings, the same Redis) and calls the very functions the
HTTP routes call, so the CLI and the API validate, version and re-sync identically.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import click
from hub.cli.context import default_author, hub_app, read_document



def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


author_option = click.option("--author", default=default_author, show_default="$HUB_AUTHOR or cli:<user>",
                             help="who made the change (recorded in the history)")
live_option = click.option("--live/--no-live", default=True, show_default=True,
                           help="check the fields against the live account where the platform lists them")


@click.group()
def mappings() -> None:
    """Field mappings: show, validate, preview, apply, history, rollback, export, import."""


@mappings.command()
@click.argument("connector")
@click.option("--version", "number", type=int, help="a version from the history (default: current)")
@click.option("--document", "document_only", is_flag=True, help="print only the mapping document")
@click.option("--table", "as_table", is_flag=True, help="print it as a table: vendor field <- hub stat (transform)")
def show(connector: str, number: int | None, document_only: bool, as_table: bool) -> None:
    """Print the current mapping (or one version) with its version and ETag."""
    from hub.core import admin, mappingview
    from hub.core import mappingstore as store

    with hub_app():
        admin.known(connector)
        if as_table:
            answer = admin.mapping_table(connector, number)
            click.echo(f"{connector} mapping v{answer['version']} {answer['etag']}")
            for line in mappingview.table_text(answer["table"]):
                click.echo(f"  {line}")
            return
        if number is None:
            record = store.current(admin.redis(), connector)
        else:
            try:
                record = store.version(admin.redis(), connector, number)
            except store.UnknownVersion:
                raise click.ClickException(f"the {connector} mapping has no version {number}") from None
        emit(record["document"] if document_only else admin.view(connector, record))


@mappings.command()
@click.argument("connector")
@click.argument("file")
@live_option
def validate(connector: str, file: str, live: bool) -> None:
    """Validate FILE as CONNECTOR's mapping; show what it changes and how many contacts re-sync."""
    from hub.core import admin

    document = read_document(file)
    with hub_app():
        result = admin.validate(connector, document, live=live)
    emit(result)
    if not result["valid"]:
        sys.exit(1)


@mappings.command()
@click.argument("connector")
@click.argument("file")
@click.option("--comment", "-m", default="", help="why (recorded in the history)")
@author_option
@click.option("--if-match", help="the ETag you edited from; default: whatever is current when this runs")
@click.option("--dry-run", is_flag=True, help="validate and count the contacts to re-sync; save nothing")
@click.option("--resync/--no-resync", default=True, show_default=True, help="mark affected contacts for re-sync")
@live_option
def apply(connector: str, file: str, comment: str, author: str, if_match: str | None, dry_run: bool,
          resync: bool, live: bool) -> None:
    """Save FILE as CONNECTOR's new mapping version and re-sync the contacts it affects."""
    from hub.core import admin
    from hub.core import mappingstore as store

    from hub.cli.progress import command

    document = read_document(file)
    with hub_app(), command("resync", unit="contacts") as progress:
        etag = if_match or store.current(admin.redis(), admin.known(connector))["etag"]
        result = admin.apply(connector, document, author=author, comment=comment, if_match=etag, live=live,
                             do_resync=resync, dry_run=dry_run, progress=progress)
    emit(result)


@mappings.command()
@click.argument("connector")
@click.option("--email", "emails", multiple=True, help="a contact the hub knows (repeatable: one batch)")
@click.option("--event", "event_file", help="a sample canonical event (JSON file) applied to a scratch copy")
@click.option("--mapping", "mapping_file", help="preview a draft mapping file instead of the current one")
@click.option("--force", is_flag=True, help="show the requests even for contacts the vendor already matches")
@click.option("--diff", is_flag=True, help="add each contact's fields, lists and consent at the vendor now and after")
def preview(connector: str, emails: tuple[str, ...], event_file: str | None, mapping_file: str | None,
            force: bool, diff: bool) -> None:
    """Print the exact vendor requests a sync would send now. Nothing is sent."""
    from hub.core import admin

    if not emails and not event_file:
        raise click.UsageError("give --email or --event")
    event = read_document(event_file) if event_file else None
    document = read_document(mapping_file) if mapping_file else None
    with hub_app():
        emit(admin.preview(connector, emails=list(emails) or None, event=event, document=document, force=force,
                           diff=diff))


@mappings.command()
@click.argument("connector")
@click.argument("older", type=int)
@click.argument("newer", type=int)
def diff(connector: str, older: int, newer: int) -> None:
    """What changed in CONNECTOR's mapping from version OLDER to version NEWER."""
    from hub.core import admin

    with hub_app():
        emit(admin.versions_diff(admin.known(connector), older, newer))


@mappings.command()
@click.argument("connector")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def history(connector: str, limit: int, as_json: bool) -> None:
    """List CONNECTOR's mapping versions, newest first."""
    from hub.core import admin
    from hub.core import mappingstore as store

    with hub_app():
        rows = store.history(admin.redis(), admin.known(connector), limit)
    if as_json:
        emit(rows)
        return
    for row in rows:
        mark = "*" if row["current"] else " "
        click.echo(f"{mark} v{row['version']:<4} {row['at'] or '-':<20}  {row['author']:<20}  "
                   f"{row['action']:<8}  {row['comment']}")


@mappings.command()
@click.argument("connector")
@click.argument("version", type=int)
@click.option("--comment", "-m", default="", help="why (recorded in the history)")
@author_option
@click.option("--if-match", help="refuse if the mapping is no longer at this ETag")
@click.option("--resync/--no-resync", default=True, show_default=True)
@live_option
def rollback(connector: str, version: int, comment: str, author: str, if_match: str | None, resync: bool,
             live: bool) -> None:
    """Make VERSION's exact document current again (as a new version) and re-sync."""
    from hub.core import admin

    from hub.cli.progress import command

    with hub_app(), command("resync", unit="contacts") as progress:
        result = admin.rollback(connector, version, author=author, comment=comment, if_match=if_match, live=live,
                                do_resync=resync, progress=progress)
    emit(result)


@mappings.command("export")
@click.argument("file", default="-")
def export_(file: str) -> None:
    """Write every connector's current mapping (with versions and ETags) to FILE (default stdout)."""
    from hub.core import admin

    with hub_app():
        data = admin.export_all()
    text = json.dumps(data, indent=2, default=str) + "\n"
    if file == "-":
        click.echo(text, nl=False)
    else:
        with open(file, "w", encoding="utf-8") as out:
            out.write(text)
        click.echo(f"wrote {len(data['mappings'])} mappings to {file}")


@mappings.command("import")
@click.argument("file")
@click.option("--comment", "-m", default="", help="why (recorded in each history)")
@author_option
@click.option("--force", is_flag=True, help="ignore the ETags in the file (copying from another hub)")
@click.option("--dry-run", is_flag=True, help="validate everything and count re-syncs; save nothing")
@click.option("--resync/--no-resync", default=True, show_default=True)
@live_option
def import_(file: str, comment: str, author: str, force: bool, dry_run: bool, resync: bool, live: bool) -> None:
    """Import an export file: all mappings validated first, then the changed ones saved."""
    from hub.core import admin

    from hub.cli.progress import command

    payload = read_document(file)
    with hub_app(), command("resync", unit="contacts") as progress:
        result = admin.import_all(payload, author=author, comment=comment, force=force, live=live,
                                  do_resync=resync, dry_run=dry_run, progress=progress)
    emit(result)


@click.group()
def connectors() -> None:
    """Connectors: list (settings masked), check credentials, list the account's fields."""


@connectors.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_(as_json: bool) -> None:
    """Every connector, whether it is enabled, its settings (secrets masked) and mapping version."""
    from hub.core import admin

    with hub_app():
        rows = admin.connectors_list()
    if as_json:
        emit(rows)
        return
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        if row.get("paused"):
            state = "paused"
        click.echo(f"{row['name']:<11} {state:<9} mapping v{row['mapping']['version']:<4} {row['base_url']}")


@connectors.command()
@click.argument("connector")
def check(connector: str) -> None:
    """Prove CONNECTOR's credentials work (one cheap authenticated call)."""
    from hub.core import admin

    with hub_app():
        result = admin.connector_check(connector)
    emit(result)
    if not result.get("ok"):
        sys.exit(1)


@connectors.command()
@click.argument("connector")
def fields(connector: str) -> None:
    """List the custom fields CONNECTOR's account has (empty: the platform takes any name)."""
    from hub.core import admin

    with hub_app():
        emit(admin.connector_fields(connector))


@connectors.command("lists")
@click.argument("connector")
def lists_(connector: str) -> None:
    """List the lists CONNECTOR's account has ("listable": false where the platform cannot say)."""
    from hub.core import admin

    with hub_app():
        emit(admin.connector_lists(connector))


# For a `connectors` group defined elsewhere (hub/cli.py): add these to it.
CONNECTOR_COMMANDS = (list_, check, fields, lists_)
