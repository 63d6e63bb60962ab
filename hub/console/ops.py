"""The ops pages: overview, failed syncs, pause and resume, contacts, webhook sources."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from markupsafe import Markup
from rq.job import Job
from rq.serializers import JSONSerializer

from hub.core import contacts as contacts_api
from hub.core import failed, failindex, history, metrics, recent, sync, timeline, webhooks
from hub.http.auth import actor
from hub.core.ledger import dirty_key, get_ledger
from hub.core.queue import get_queues
from hub.core import services
from hub.console import bp, charts
from hub.console.session import require_role


def redis() -> Any:
    return services.current().redis


def iso(moment: float | None) -> str | None:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else None


def ago(seconds: float | None) -> str:
    """A wait as people read it: 45s, 12m 5s, 3h 20m, 2d 4h."""
    if seconds is None:
        return "-"
    whole = int(max(0.0, seconds))
    days, hours, minutes, secs = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60, whole % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def connector_overview(connector: str, hour: dict[str, dict[str, Any]], now: float) -> dict[str, Any]:
    """One connector at a glance: every figure a single Redis read, none a scan."""
    state = sync.status(connector)
    oldest = redis().zrange(dirty_key(connector), 0, 0, withscores=True)
    calls = hour.get(connector, {})
    return {**state, "oldest_wait": now - oldest[0][1] if oldest else None,
            "calls": calls.get("calls", 0), "errors": calls.get("errors", 0)}


def intake() -> list[dict[str, Any]]:
    """Events taken in since the counters began, by source and outcome (the /metrics counters)."""
    totals: dict[tuple[str, str], int] = {}
    for raw, count in redis().hgetall(metrics.EVENTS).items():
        parts = raw.decode().split(metrics.SEP)
        if len(parts) == 3:
            totals[(parts[1], parts[2])] = totals.get((parts[1], parts[2]), 0) + int(float(count))
    sources = sorted({s for s, _ in totals})
    outcomes = sorted({o for _, o in totals})
    return [{"source": s, "outcomes": {o: totals.get((s, o), 0) for o in outcomes}} for s in sources]


def connector_charts(c: dict[str, Any], series: dict[str, Any]) -> dict[str, Markup]:
    """The connector's four charts over the last hour. The backlog's current minute shows the
    reading this page just made (newer than the sweep's sample of it; drawn, never stored)."""
    name, minutes = c["connector"], series["minutes"]
    backlog = list(series["backlog"])
    live = int(c["dirty"]) + int(c["erase_pending"])
    if backlog:
        backlog[-1] = live
    p95 = series["fresh_p95"]
    hour95 = series["fresh_hour"]["p95"]
    return {
        "backlog": Markup(charts.minute_chart("Backlog (contacts waiting)", minutes, backlog, kind="line",
                                             colour=charts.COLOURS["backlog"], latest=f"now {live}",
                                             chart_id=f"chart-backlog-{name}")),
        "calls": Markup(charts.minute_chart("Calls per minute", minutes, series["calls"], overlay=series["errors"],
                                            overlay_label="errors", latest=f"{sum(series['calls'])} in the hour",
                                            chart_id=f"chart-calls-{name}")),
        "errors": Markup(charts.minute_chart("Errors per minute", minutes, series["errors"],
                                             colour=charts.COLOURS["errors"],
                                             latest=f"{sum(series['errors'])} in the hour",
                                             chart_id=f"chart-errors-{name}")),
        "freshness": Markup(charts.minute_chart("Freshness p95 (seconds)", minutes, p95, kind="line",
                                                colour=charts.COLOURS["freshness"], unit="s",
                                                latest=f"hour: ≤ {charts.number(hour95, 's')}" if hour95 is not None else None,
                                                chart_id=f"chart-freshness-{name}")),
    }


@bp.get("/overview")
@require_role("ops")
def overview() -> Any:
    now = time.time()
    hour = recent.last_hour(redis(), now)
    connectors = [connector_overview(c, hour, now) for c in get_queues().connectors]
    past = history.last_hour(redis(), [c["connector"] for c in connectors], now, hour)
    for c in connectors:
        c["charts"] = connector_charts(c, past[c["connector"]])
    rows = intake()
    outcomes = sorted({o for row in rows for o in row["outcomes"]})
    return render_template("console/overview.html", connectors=connectors, intake=rows, outcomes=outcomes,
                           ago=ago, now=iso(now), notices=notices())


@bp.post("/connectors/<name>/pause")
@require_role("ops")
def pause(name: str) -> Any:
    """Pause with a reason everyone sees (overview, API, `hub connectors status`)."""
    check_enabled(name)
    reason = " ".join(str(request.form.get("reason") or "").split())[:300]
    if not reason:
        return redirect(url_for("console.overview", error=f"say why {name} is paused"))
    sync.pause(name, reason, by=actor())
    return redirect(url_for("console.overview", done=f"{name} paused"))


@bp.post("/connectors/<name>/resume")
@require_role("ops")
def resume(name: str) -> Any:
    check_enabled(name)
    sync.resume(name, actor())
    return redirect(url_for("console.overview", done=f"{name} resumed"))


def check_enabled(name: str) -> None:
    if name not in get_queues().connectors:
        abort(404, description=f"no enabled connector named {name!r}")


# -- failed syncs ---------------------------------------------------------------------------
PAGE = 50


def failed_filters(source: Any) -> dict[str, Any]:
    """The filter of a failed-syncs request: connector, class, code, since (ISO or 30m/2h/1d)."""
    connector = (source.get("connector") or "").strip() or None
    if connector:
        check_enabled(connector)
    klass = (source.get("class") or "").strip() or None
    if klass and klass not in failindex.CLASSES:
        abort(400, description=f"class must be one of {', '.join(failindex.CLASSES)}")
    code = (source.get("code") or "").strip() or None
    since = (source.get("since") or "").strip() or None
    try:
        moment = failed.parse_since(since)
    except ValueError as exc:
        abort(400, description=str(exc))
    return {"connector": connector, "class": klass, "code": code, "since": since,
            "after": moment.timestamp() if moment else None}


def matching(filters: dict[str, Any], offset: int = 0, limit: int | None = PAGE) -> tuple[int, list[str]]:
    failindex.reconcile(redis())
    return failindex.query(redis(), filters["connector"], filters["class"], filters["code"], filters["after"],
                           offset, limit)


def described(job_ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for job in Job.fetch_many(job_ids, connection=redis(), serializer=JSONSerializer):
        if job is not None:
            item = failed.describe(job, job.origin.removeprefix("sync-"))
            item["class"] = failindex.classify(item)
            out.append(item)
    return out


def query_string(filters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {k: v for k, v in {**{k: filters[k] for k in ("connector", "class", "code", "since")}, **extra}.items() if v}


@bp.get("/failed", endpoint="failed")
@require_role("ops")
def failed_page() -> Any:
    filters = failed_filters(request.args)
    try:
        offset = max(0, int(request.args.get("offset") or 0))
    except ValueError:
        abort(400, description="offset must be a whole number")
    total, ids = matching(filters, offset)
    groups = failindex.groups(redis(), get_queues().connectors)
    return render_template("console/failed.html", filters=filters, total=total, items=described(ids),
                           offset=offset, page=PAGE, groups=groups, classes=failindex.CLASSES,
                           connectors=get_queues().connectors, qs=query_string, notices=notices())



@bp.post("/failed/action")
@require_role("ops")
def failed_action() -> Any:
    """Retry or discard the selected failed syncs, or all matching the filter: first a page that
    says how many, then (confirmed) the API's own retry or discard."""
    action = request.form.get("action")
    if action not in ("retry", "discard"):
        abort(400, description="action must be retry or discard")
    filters = failed_filters(request.form)
    scope = request.form.get("scope")
    if scope == "matching":
        total, ids = matching(filters, 0, None)
    else:
        ids = [i for i in request.form.getlist("ids") if i]
        if not ids:
            return redirect(url_for("console.failed", **query_string(filters, error="select failed syncs first")))
    if request.form.get("confirmed") != "yes":
        return render_template("console/failed_confirm.html", action=action, ids=ids, scope=scope,
                               filters=filters, count=len(ids), qs=query_string)
    done = failed.retry(ids, actor=actor()) if action == "retry" else failed.discard(ids, actor=actor())
    verb = "retried" if action == "retry" else "discarded"
    return redirect(url_for("console.failed", **query_string(filters, done=f"{verb} {len(done)} failed sync(s)")))


def notices() -> list[tuple[str, str]]:
    """A short outcome carried in the redirect's query (never personal data)."""
    out = []
    if request.args.get("done"):
        out.append(("ok", request.args["done"][:200]))
    if request.args.get("error"):
        out.append(("error", request.args["error"][:200]))
    return out


# -- contacts -------------------------------------------------------------------------------
@bp.get("/contacts")
@require_role("ops")
def contacts() -> Any:
    """Look up a contact by email; below, the most recently active contacts, a page at a time."""
    email = (request.args.get("email") or "").strip().lower()
    if email:
        return redirect(url_for("console.contact", email=email))
    try:
        offset = max(0, int(request.args.get("offset") or 0))
    except ValueError:
        abort(400, description="offset must be a whole number")
    total, rows = timeline.page(redis(), offset, PAGE)
    return render_template("console/contacts.html", total=total, rows=rows, offset=offset, page=PAGE, iso=iso,
                           notices=notices())


def contact_failures(email: str) -> list[dict[str, Any]]:
    """Failed syncs naming the contact, from the index's per-contact set (no registry read)."""
    failindex.reconcile(redis())
    return [f for f in described(failindex.of_contact(redis(), email)) if email in f["contacts"]]


@bp.get("/contacts/<path:email>")
@require_role("ops")
def contact(email: str) -> Any:
    email = contacts_api.normal(email)
    ledger = get_ledger()
    state, erased = ledger.state(email), ledger.is_erased(email)
    if state is None:
        return render_template("console/contact_missing.html", email=email, erased=erased), 404
    failures = contact_failures(email)
    per = {c: contacts_api.connector_view(redis(), c, email, failures) for c in get_queues().connectors}
    entries = timeline.read(redis(), email)
    drawn = Markup(charts.timeline(entries, get_queues().connectors, f"Timeline of {email}"))
    return render_template("console/contact.html", email=email, state=contacts_api.plain(state), connectors=per,
                           timeline=entries, timeline_chart=drawn, iso=iso, notices=notices())


@bp.post("/contacts/<path:email>/resync")
@require_role("ops")
def contact_resync(email: str) -> Any:
    email = contacts_api.normal(email)
    names = contacts_api.resync(email)
    current_app.logger.warning("contact resync from the console", extra={"by": actor(), "connectors": names})
    return redirect(url_for("console.contact", email=email, done=f"resync queued for {', '.join(names)}"))


@bp.post("/contacts/<path:email>/erase")
@require_role("admin")
def contact_erase(email: str) -> Any:
    """Erase (admin only), with the address typed again to confirm."""
    email = contacts_api.normal(email)
    typed = (request.form.get("confirm_email") or "").strip().lower()
    if typed != email:
        return redirect(url_for("console.contact", email=email,
                                error="type the contact's email address again to confirm the erasure"))
    result = contacts_api.erase(email, actor())
    return redirect(url_for("console.contacts", done=f"erased; deletion queued for {', '.join(result['connectors'])}"))


# -- webhook sources ------------------------------------------------------------------------
@bp.get("/webhooks", endpoint="webhooks")
@require_role("ops")
def webhooks_page() -> Any:
    """Parked webhooks (oldest first, waiting for an identity) and rejected ones (newest first)."""
    r = redis()
    parked = []
    for member, since in r.zrange(webhooks.PARKED_INDEX, 0, PAGE - 1, withscores=True):
        handle = member.decode()
        source = handle.split(":", 1)[0]
        parked.append({"source": source, "reason": webhooks.why(handle), "since": iso(since),
                       "events": r.hlen(webhooks.PARKED.format(handle))})
    rejected = []
    for entry_id, fields in r.xrevrange(webhooks.REJECTED, count=PAGE):
        item = {k.decode(): v.decode() for k, v in fields.items()}
        rejected.append({"at": iso(int(entry_id.decode().split("-")[0]) / 1000), "source": item.get("source"),
                         "event_id": item.get("event_id"), "type": item.get("type"), "reasons": item.get("reasons")})
    stats: dict[str, dict[str, int]] = {}
    for field, value in r.hgetall(webhooks.STATS).items():
        source, outcome, _ = field.decode().split(":", 2)
        stats.setdefault(source, {}).setdefault(outcome, 0)
        stats[source][outcome] += int(value)
    return render_template("console/webhooks.html", parked=parked, parked_total=r.zcard(webhooks.PARKED_INDEX),
                           rejected=rejected, rejected_total=r.xlen(webhooks.REJECTED), stats=stats,
                           outcomes=sorted({o for s in stats.values() for o in s}))

