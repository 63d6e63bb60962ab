"""`hub audit run`: one connector's anti-entropy audit, now, over hub.core.audit."""
from __future__ import annotations

import json
from typing import Any
import click
from hub.core.queue import get_queues
from hub.core.audit import audit


@click.group("audit")
def audit_cli() -> None:
    """Anti-entropy audit: read contacts back from a vendor and repair what drifted."""


@audit_cli.command("run")
@click.argument("connector")
@click.option("--sample", "size", type=click.IntRange(1, 1000), help="contacts to read back (default HUB_AUDIT_SAMPLE)")
@click.option("--contact", "contacts", multiple=True, help="audit this contact instead of a sample (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def audit_run(connector: str, size: int | None, contacts: tuple[str, ...], as_json: bool) -> None:
    """Audit one connector now and print what it found."""
    from hub.cli.context import command_services
    from hub.core.services import using

    with using(command_services()):
        if connector not in get_queues().connectors:
            raise click.ClickException(f"no enabled connector named {connector!r} "
                                       f"(enabled: {', '.join(get_queues().connectors) or 'none'})")
        report = audit(connector, size, list(contacts) or None)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    show(report)


def show(report: dict[str, Any]) -> None:
    if report["skipped"]:
        click.echo(f"{report['connector']}: not audited: {report['skipped']}")
        return
    click.echo(f"{report['connector']}: checked {report['checked']}, in step {report['in_step']}, "
               f"out of step {report['out_of_step']}, repairs queued {report['repairs_queued']}"
               + (f", left to the flush {report['changed_meanwhile']}" if report["changed_meanwhile"] else "")
               + (f"; stopped early: {report['stopped']}" if report["stopped"] else ""))
    if report.get("error"):
        error = report["error"]
        click.echo(f"  vendor answered HTTP {error['status'] or '-'} {error['code'] or ''}: {error['message']}")
    for item in report["findings"]:
        parts = ["missing at the vendor"] if item.get("missing") else []
        if item.get("fields"):
            parts.append(f"fields differ: {', '.join(item['fields'])}")
        if item.get("lists_lost"):
            parts.append(f"lists lost: {', '.join(item['lists_lost'])}")
        parts += item.get("lists_other", [])
        if item.get("consent"):
            parts.append(f"consent: hub {item['consent']['hub']}, vendor {item['consent']['vendor']} (not changed)")
        click.echo(f"  {item['email']}: {'; '.join(parts)}; {'repair queued' if item['repair'] else 'reported only'}")
