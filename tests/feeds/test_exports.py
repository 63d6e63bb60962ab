"""Exports against real SFTP servers: rows equal the hub's state, the manifest checks out, the
upload is atomic, and the schedule runs an export once when its cron time comes."""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from hub.core.feeds import jobs
from hub.core.feeds.sftp import SFTPError
from hub.core.ledger import get_ledger
from tests.feeds.conftest import activity_feed
from tests.feeds.data import activity


def export_spec(server: Any, name: str = "stats", kind: str = "referrer-stats", **extra: Any) -> dict[str, Any]:
    (server.root / "outbound").mkdir(exist_ok=True)
    return {"name": name, "kind": kind, "sftp": server.server, "folder": server.remote("outbound"),
            "filename": "{name}-{date}.csv", **extra}


def load_state(app: Any, server: Any, rows: int = 2000) -> None:
    """Referral activity imported through a feed, so the ledger holds referrers and friends."""
    activity(server.root / "inbound" / "seed.csv", rows)
    with app.app_context():
        jobs.poll_feed("activity")


def read_export(server: Any, name: str) -> tuple[list[dict[str, str]], dict[str, Any], bytes]:
    raw = (server.root / "outbound" / name).read_bytes()
    manifest = json.loads((server.root / "outbound" / f"{name}.manifest.json").read_text())
    text = gzip.decompress(raw).decode() if name.endswith(".gz") else raw.decode()
    return list(csv.DictReader(io.StringIO(text, newline=""))), manifest, raw


def test_referrer_stats_equal_the_hubs_state_and_the_manifest_checks_out(sftp_server, make_app, feeds_file) -> None:  # type: ignore[no-untyped-def]
    extra = [{"target": "share_url", "source": "share_url"}, {"target": "last_activity", "source": "last_activity_at"}]
    app = make_app(FEEDS_FILE=feeds_file([activity_feed(sftp_server)], [export_spec(sftp_server, extra=extra)]))
    load_state(app, sftp_server)
    with app.app_context():
        manifest = jobs.export("stats")
        rows, written, raw = read_export(sftp_server, manifest["file"])
        assert written == manifest
        assert (manifest["rows"], manifest["bytes"], manifest["sha256"]) == (len(rows), len(raw), hashlib.sha256(raw).hexdigest())
        assert list(rows[0]) == ["email", "referral_referrer_id", "referral_nb_potential_referred",
                                 "referral_nb_converted_prospects", "referral_nb_converted_customers",
                                 "referral_turnover_generated", "referral_promocode", "share_url", "last_activity"]
        from hub.core.mappingstore import known_contacts

        referrers = {e: s for e, s in get_ledger().states(list(known_contacts(app.extensions["redis"]))).items()
                     if s and s["is_referrer"]}
        assert sorted(r["email"] for r in rows) == sorted(referrers)
        for row in rows:
            state = referrers[row["email"]]
            assert (int(row["referral_nb_potential_referred"]), int(row["referral_nb_converted_prospects"]),
                    int(row["referral_nb_converted_customers"]), Decimal(row["referral_turnover_generated"])) == (
                state["invites_sent"], state["friends_registered"], state["friends_converted"], state["turnover_amount"])
            assert row["last_activity"] == state["last_activity_at"]
    assert [p.name for p in (sftp_server.root / "outbound").iterdir() if p.name.startswith(".")] == []


def test_friends_export_gzipped(sandbox_sftp, make_app, feeds_file) -> None:  # type: ignore[no-untyped-def]
    spec = export_spec(sandbox_sftp, name="friends", kind="friends", gzip=True)
    app = make_app(FEEDS_FILE=feeds_file([activity_feed(sandbox_sftp)], [spec]))
    load_state(app, sandbox_sftp)
    with app.app_context():
        manifest = jobs.export("friends")
        assert manifest["file"].endswith(".csv.gz")
        rows, _, raw = read_export(sandbox_sftp, manifest["file"])
        assert manifest["sha256"] == hashlib.sha256(raw).hexdigest() and manifest["rows"] == len(rows) > 0
        states = get_ledger().states([r["email"] for r in rows])
        for row in rows:
            state = states[row["email"]]
            assert state is not None and state["is_friend"]
            assert row["referred_by"] == state["referred_by"]
            assert row["converted"] == ("true" if state.get("converted_at") else "false")
            assert row["marketing_opt_in"] == {True: "true", False: "false", None: ""}[state.get("marketing_opt_in")]
            lists = set(filter(None, row["lists"].split(";")))
            assert ("25" in lists, "26" in lists) == (state.get("marketing_opt_in") is True, bool(state.get("converted_at")))


def test_a_cut_mid_upload_leaves_nothing_under_the_final_name(sandbox_sftp, make_app, feeds_file) -> None:  # type: ignore[no-untyped-def]
    from sandbox.sftp import Cut

    app = make_app(FEEDS_FILE=feeds_file([activity_feed(sandbox_sftp)], [export_spec(sandbox_sftp)]))
    load_state(app, sandbox_sftp)
    sandbox_sftp.state.cuts.append(Cut(op="write", after=2000))
    with app.app_context():
        with pytest.raises(SFTPError, match="broke off"):
            jobs.export("stats")
        assert jobs.export_status("stats")["error"]
        outbound = sandbox_sftp.root / "outbound"
        assert [p for p in outbound.iterdir() if not p.name.startswith(".")] == []
        # the next attempt publishes the whole file
        manifest = jobs.export("stats")
        assert (outbound / manifest["file"]).exists()
        assert "error" not in jobs.export_status("stats")


def test_the_schedule_runs_an_export_once_when_its_time_comes(sandbox_sftp, make_app, feeds_file, redis_client) -> None:  # type: ignore[no-untyped-def]
    spec = export_spec(sandbox_sftp, cron="0 2 * * *", timezone="Europe/Paris")
    app = make_app(FEEDS_FILE=feeds_file([activity_feed(sandbox_sftp)], [spec]))
    load_state(app, sandbox_sftp, rows=300)
    with app.app_context():
        assert jobs.exports_due("2026-11-29T00:30:00Z") == []        # first sight: starts at the next slot
        assert jobs.exports_due("2026-11-29T00:59:00Z") == []        # 01:59 in Paris: not yet
        queued = jobs.exports_due("2026-11-29T01:00:30Z")            # 02:00:30 in Paris: due
        assert len(queued) == 1
        assert jobs.exports_due("2026-11-29T01:05:00Z") == []        # once per slot, however many ticks
        queue = Queue(jobs.QUEUE, connection=redis_client, serializer=JSONSerializer)
        SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer).work(burst=True)
        manifest = jobs.export_status("stats")["last"]
    assert (sandbox_sftp.root / "outbound" / manifest["file"]).exists()


def test_a_failing_export_is_retried_then_lands_in_the_failed_registry(sandbox_sftp, make_app, feeds_file, redis_client, caplog) -> None:  # type: ignore[no-untyped-def]
    spec = export_spec(sandbox_sftp)
    spec["sftp"] = {**spec["sftp"], "port": 1}                   # nothing listens there
    app = make_app(FEEDS_FILE=feeds_file([], [spec]), RETRY_SCHEDULE="0,0")
    with app.app_context():
        job_id = jobs.enqueue_export("stats")
        queue = Queue(jobs.QUEUE, connection=redis_client, serializer=JSONSerializer)
        worker = SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer)
        worker.work(burst=True)        # RETRY_SCHEDULE 0,0: each retry is queued at once
        registry = FailedJobRegistry(queue=queue)
        assert job_id in registry.get_job_ids()
        job = queue.fetch_job(job_id)
        assert job is not None and "cannot reach" in (job.latest_result().exc_string or "")
        runs = [r for r in caplog.records if job_id in r.getMessage() and "exception raised" in r.getMessage()]
        assert len(runs) == 3                      # the first run, then the schedule's two retries


@pytest.mark.parametrize("now, slot", [
    ("2026-11-29T01:00:30+00:00", "2026-11-29T01:00:00+00:00"),   # winter: 02:00 in Paris is 01:00 UTC
    ("2026-07-15T00:30:00+00:00", "2026-07-15T00:00:00+00:00"),   # summer: 02:00 in Paris is 00:00 UTC
    ("2026-07-14T23:59:00+00:00", "2026-07-14T00:00:00+00:00"),
])
def test_a_cron_time_is_read_in_the_exports_time_zone(now: str, slot: str) -> None:
    from datetime import datetime, timezone

    spec = {"cron": "0 2 * * *", "timezone": "Europe/Paris"}
    got = jobs.last_slot(spec, datetime.fromisoformat(now))
    assert got.astimezone(timezone.utc) == datetime.fromisoformat(slot)


def test_an_export_made_due_runs_through_the_hubs_scheduler(sandbox_sftp, make_app, feeds_file, redis_client) -> None:  # type: ignore[no-untyped-def]
    from hub.core.mappingstore import known_contacts
    from hub.jobs.scheduler import HubScheduler, QUEUE, periodic_jobs

    spec = export_spec(sandbox_sftp, cron="0 2 * * *", timezone="Europe/Paris")
    app = make_app(FEEDS_FILE=feeds_file([activity_feed(sandbox_sftp)], [spec]))
    activity(sandbox_sftp.root / "inbound" / "seed.csv", 1500)
    # the last run was long ago, so the latest 02:00 in Paris is due now: no waiting on a clock
    redis_client.set("hub:feeds:export:stats:slot", 0)
    scheduler = HubScheduler(redis_client, periodic_jobs(app.config["HUB"]), 30)
    scheduler.register_birth()
    try:
        queued = {j.name for j in scheduler.enqueue_jobs()}
        assert {"feeds-exports", "feeds-poll", "sweep"} <= queued
    finally:
        scheduler.register_death()
    queue = Queue(QUEUE, connection=redis_client, serializer=JSONSerializer)
    with app.app_context():
        # the poll imports the file; exports_due queues the export; the export runs: one pass
        SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer).work(burst=True)
        manifest = jobs.export_status("stats")["last"]
        states = get_ledger().states(list(known_contacts(redis_client)))
    rows, written, raw = read_export(sandbox_sftp, manifest["file"])
    assert written == manifest and manifest["sha256"] == hashlib.sha256(raw).hexdigest() and manifest["rows"] == len(rows)
    referrers = {e: s for e, s in states.items() if s and s["is_referrer"]}
    assert len(referrers) > 100
    assert {r["email"]: (int(r["referral_nb_potential_referred"]), int(r["referral_nb_converted_prospects"]),
                         int(r["referral_nb_converted_customers"]), Decimal(r["referral_turnover_generated"]),
                         r["referral_referrer_id"], r["referral_promocode"]) for r in rows} == {
        e: (s["invites_sent"], s["friends_registered"], s["friends_converted"], s["turnover_amount"],
            s.get("referrer_id", ""), s.get("promo_code", "")) for e, s in referrers.items()}
