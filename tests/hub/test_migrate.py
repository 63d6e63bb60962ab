"""Upgrades keep the data: a store written by today's code, with the keys an older hub left
(erasure markers and dedupe markers named by plain addresses, no layout version), is brought
forward by `hub migrate`, and the hub then reads it exactly as before, with no address left."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from tests.conftest import signed_headers
from tests.e2e.stack import Stack
from tests.faults.test_erasure_scan import ERASURE_KEY, keyed, scan
from tests.hub.test_cli import clean_env, hub, one_line_error
from tests.story import event, story

ERASED = "dan@example.com"
ADMIN = {"Authorization": "Bearer admin-token"}
PEOPLE = ("anna@example.com", "ben@example.com", "cleo@example.com", ERASED, "eve@example.com")
# Mention Me builds event ids from addresses: the hub keeps their dedupe markers keyed.
NAMED = [{**event(30, "referral.invited", referrer={"email": "anna@example.com"}), "id": "mm-invite-anna@example.com-7"},
         {**event(31, "contact.updated", contact={"email": ERASED, "first_name": "Daniel"}), "id": f"mm-update-{ERASED}"}]


def seen_key(event_id: str) -> str:
    """The keyed dedupe marker, computed here independently of the hub."""
    return f"hub:seen:#{keyed('event:' + event_id)}"


def post(client: Any, events: list[dict[str, Any]], msg_id: str) -> dict[str, Any]:
    body = json.dumps({"events": events}).encode()
    answer = client.post("/v1/events", data=body, headers=signed_headers(body, msg_id=msg_id))
    assert answer.status_code == 202, answer.get_data(as_text=True)
    return answer.get_json()  # type: ignore[no-any-return]


def views(client: Any) -> dict[str, Any]:
    """What the hub shows of each person (404 for someone it does not know as erased)."""
    out = {}
    for email in PEOPLE:
        answer = client.get(f"/v1/contacts/{email}", headers=ADMIN)
        out[email] = (answer.status_code, answer.get_json())
    return out


def written_by_today(app: Any) -> dict[str, Any]:
    """The story and the address-named events through the API, then an erasure through it."""
    client = app.test_client()
    assert post(client, story() + NAMED, "story") == {"accepted": len(story()) + 2, "duplicates": 0}
    assert client.post(f"/v1/contacts/{ERASED}/erase", headers=ADMIN).status_code == 202
    return views(client)


def as_an_older_hub_left_it(redis_client: redis_lib.Redis) -> None:
    """The keys an older hub wrote instead of today's: the erasure marker named by the address
    (its erasure bumped `hub:ver` for the address rather than removing it), dedupe markers named
    by the raw event id, and no layout version."""
    assert redis_client.rename(f"hub:erased:{keyed(ERASED)}", f"hub:erased:{ERASED}")
    redis_client.hset("hub:ver", ERASED, 3)
    for named in NAMED:
        assert redis_client.rename(seen_key(named["id"]), f"hub:seen:{named['id']}")  # RENAME keeps the TTL
    assert not redis_client.exists("hub:layout")


FROM_LAYOUT_1 = ("layout 1 -> 4: 1 erasure markers keyed, 2 dedupe markers keyed, 0 queued jobs renamed, "
                 "0 jobs pointed at entry points")


def migrate_env(redis_url: str) -> dict[str, str]:
    return clean_env(HUB_REDIS_URL=redis_url, HUB_ERASURE_KEY=ERASURE_KEY)


def test_a_store_left_by_an_older_hub_reads_the_same_after_hub_migrate(
        make_app, redis_client: redis_lib.Redis, redis_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ERASURE_KEY=ERASURE_KEY)
    before = written_by_today(app)
    assert before[ERASED][1]["erased"] is True and before[ERASED][1]["state"] is None
    ttls = {n["id"]: redis_client.pttl(seen_key(n["id"])) for n in NAMED}
    as_an_older_hub_left_it(redis_client)

    # Today's code misreads the old keys: the erased person looks unknown, and the address is in Redis.
    assert views(app.test_client())[ERASED][0] == 404
    assert f"hub:erased:{ERASED}: the key name (clear {ERASED})" in scan(redis_client, ERASED)

    done = hub("migrate", cwd=tmp_path, env=migrate_env(redis_url))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == FROM_LAYOUT_1
    assert redis_client.get("hub:layout") == b"4"

    client = app.test_client()
    assert views(client) == before
    found = scan(redis_client, ERASED)
    assert not found, "the erased address is still in Redis:\n" + "\n".join(found)
    for named in NAMED:     # the dedupe markers keep their expiry (a few ms pass between the reads)
        assert 0 < ttls[named["id"]] - redis_client.pttl(seen_key(named["id"])) < 60_000
    # Everything already applied is still a duplicate, and the erased person stays erased.
    assert post(client, story() + NAMED, "again") == {"accepted": 0, "duplicates": len(story()) + 2}
    later = event(40, "friend.registered", referrer={"email": "anna@example.com"}, friend={"email": ERASED})
    assert post(client, [later], "later") == {"accepted": 1, "duplicates": 0}
    assert views(client)[ERASED] == before[ERASED]
    anna = views(client)["anna@example.com"][1]["state"]
    assert anna["friends_registered"] == before["anna@example.com"][1]["state"]["friends_registered"] == 2

    again = hub("migrate", cwd=tmp_path, env=migrate_env(redis_url))
    assert again.returncode == 0 and again.stdout.strip() == "layout 4 (current): nothing to migrate"


def test_processes_starting_at_once_migrate_once(make_app, redis_client: redis_lib.Redis, redis_url: str,
                                                 tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ERASURE_KEY=ERASURE_KEY)
    before = written_by_today(app)
    as_an_older_hub_left_it(redis_client)
    procs = [subprocess.Popen([sys.executable, "-m", "hub", "migrate"], cwd=tmp_path, env=migrate_env(redis_url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    answers = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, answers
    outputs = sorted(out.strip() for out, _ in answers)
    assert outputs == [FROM_LAYOUT_1] + \
        ["layout 4 (current): nothing to migrate"] * 3
    assert views(app.test_client()) == before
    assert not redis_client.exists("hub:layout:lock")


def test_a_store_from_a_newer_hub_is_refused_in_one_line(redis_client: redis_lib.Redis, redis_url: str,
                                                        tmp_path: Path) -> None:
    redis_client.set("hub:layout", 99)
    env = migrate_env(redis_url)
    one_line_error(hub("migrate", cwd=tmp_path, env=env), 2, "layout 99", "newer hub")
    one_line_error(hub("serve", "--port", "0", cwd=tmp_path, env=env), 2, "layout 99")
    assert redis_client.get("hub:layout") == b"99"


@pytest.mark.e2e
def test_serve_and_worker_migrate_at_start(make_app, redis_client: redis_lib.Redis, redis_url: str,
                                           tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ERASURE_KEY=ERASURE_KEY)
    before = written_by_today(app)
    as_an_older_hub_left_it(redis_client)
    stack = Stack(redis_url, tmp_path, env={"HUB_ERASURE_KEY": ERASURE_KEY})
    try:
        assert redis_client.get("hub:layout") == b"4"      # the hub answers only once it has migrated
        answer = stack.api("GET", f"/v1/contacts/{ERASED}")
        assert answer.status_code == 200 and (answer.json()["erased"], answer.json()["state"]) == (True, None)
        answer = stack.api("GET", "/v1/contacts/anna@example.com")
        assert answer.json()["state"] == before["anna@example.com"][1]["state"]
        assert not scan(redis_client, ERASED)
        assert stack.post(NAMED, "named").json() == {"accepted": 0, "duplicates": 2}
    finally:
        stack.stop()


# Where an older hub's job functions lived, spelt in two parts so that no rename of the code
# rewrites them: RQ stored exactly these strings.
OLD = "hub."


def test_jobs_an_older_hub_queued_call_the_moved_functions_after_hub_migrate(
        redis_client: redis_lib.Redis, redis_url: str, tmp_path: Path) -> None:
    """The relayout moved the sync module into hub.core (and the API's job runner to hub.core.tasks): RQ
    names a job's function by its path, so jobs queued, scheduled and failed before the upgrade
    are rewritten to the new path, and a worker finds the function."""
    from datetime import datetime, timedelta, timezone

    from rq import Queue
    from rq.job import Job
    from rq.registry import FailedJobRegistry
    from rq.serializers import JSONSerializer
    from rq.utils import import_attribute

    queue = Queue("sync-klaviyo", connection=redis_client, serializer=JSONSerializer)
    queued = queue.enqueue(OLD + "sync.flush", "klaviyo", job_id="queued-flush")
    later = queue.enqueue_at(datetime.now(timezone.utc) + timedelta(hours=1), OLD + "sync.flush", "klaviyo",
                             job_id="scheduled-flush")
    failed = queue.create_job(OLD + "vendorjobs.sweep_all", job_id="failed-sweep")
    failed.save()
    FailedJobRegistry(queue=queue).add(failed, ttl=3600, exc_string="Traceback: vendor down")
    work = Queue("hub-periodic", connection=redis_client, serializer=JSONSerializer).enqueue(
        OLD + "jobs.run", "job_1", "resync", {"connectors": ["klaviyo"]}, job_id="api-job")
    current = queue.enqueue(OLD + "core.sync.flush", "klaviyo", job_id="already-current")   # layout 3's path
    redis_client.set("hub:layout", 2)

    done = hub("migrate", cwd=tmp_path, env=migrate_env(redis_url))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "layout 2 -> 4: 4 queued jobs renamed, 5 jobs pointed at entry points"
    expected = {queued.id: "hub.jobs.entry.flush", later.id: "hub.jobs.entry.flush",
                failed.id: "hub.jobs.entry.sweep_vendor_jobs", work.id: "hub.jobs.entry.run_task",
                current.id: "hub.jobs.entry.flush"}
    for job_id, name in expected.items():
        job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
        assert job.func_name == name
        assert callable(import_attribute(job.func_name)), "a worker must find the function"
    # the arguments, the registries and the queue are as they were
    assert Job.fetch("api-job", connection=redis_client, serializer=JSONSerializer).args == \
        ["job_1", "resync", {"connectors": ["klaviyo"]}]
    assert queue.job_ids == ["queued-flush", "already-current"]
    assert FailedJobRegistry(queue=queue).get_job_ids() == ["failed-sweep"]
    assert Job.fetch("queued-flush", connection=redis_client, serializer=JSONSerializer).description == \
        "hub.jobs.entry.flush('klaviyo')"


def test_jobs_queued_by_core_functions_run_through_the_entry_points_after_hub_migrate(
        redis_client: redis_lib.Redis, redis_url: str, tmp_path: Path) -> None:
    """Layout 3 named the core's functions in RQ's jobs; RQ now runs the jobs layer's entry points
    (hub/jobs/entry.py). Every kind of job a layout-3 hub stored (queued, scheduled, failed syncs
    that ops retry later, periodic runs, API tasks) is pointed at its entry point, which accepts
    the stored arguments; jobs that are not the hub's, or already current, are left alone."""
    import inspect
    from datetime import datetime, timedelta, timezone

    from rq import Queue
    from rq.job import Job, JobStatus
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry
    from rq.serializers import JSONSerializer
    from rq.utils import import_attribute

    sync_queue = Queue("sync-klaviyo", connection=redis_client, serializer=JSONSerializer)
    periodic = Queue("hub-periodic", connection=redis_client, serializer=JSONSerializer)
    stored: dict[str, tuple[str, str]] = {}      # job id -> (the path it was stored with, the entry point)

    def failed(func: str, args: list[Any], job_id: str, queue: Queue) -> None:
        """A failed job as the hub files one (hub.core.sync.record_failure), under an old path."""
        job = Job.create(OLD + func, args=args, connection=redis_client, origin=queue.name, id=job_id,
                         meta={"connector": "klaviyo", "contacts": args[1] if len(args) > 1 else []},
                         serializer=JSONSerializer, status=JobStatus.FAILED,
                         description=f"{func.rsplit('.', 1)[1]} klaviyo: 1 contact(s)")
        job.save()
        FailedJobRegistry(queue=queue).add(job, ttl=3600, exc_string="VendorError: HTTP 400: bad phone")

    sync_queue.enqueue(OLD + "core.sync.flush", "klaviyo", job_id="flush")
    sync_queue.enqueue_at(datetime.now(timezone.utc) + timedelta(hours=1), OLD + "core.sync.flush", "klaviyo",
                          job_id="retry-flush")
    sync_queue.enqueue_in(timedelta(minutes=5), OLD + "core.vendorjobs.check", "klaviyo", "import-7",
                          job_id="vendor-check")
    failed("core.sync.sync_contacts", ["klaviyo", ["anna@example.com"]], "failed-sync", sync_queue)
    failed("core.sync.erase_contacts", ["klaviyo", ["dan@example.com"]], "failed-erasure", sync_queue)
    failed("core.feeds.jobs.export", ["crm"], "failed-export", periodic)
    periodic.enqueue(OLD + "core.sync.sweep", job_id="sweep")
    periodic.enqueue(OLD + "core.vendorjobs.sweep_all", job_id="vendor-sweep")
    periodic.enqueue(OLD + "core.audit.audit_job", "klaviyo", job_id="audit")
    periodic.enqueue(OLD + "core.feeds.jobs.poll_feeds", job_id="poll")
    periodic.enqueue(OLD + "core.feeds.jobs.exports_due", job_id="exports")
    periodic.enqueue(OLD + "core.tasks.run", "job_1", "resync", {"connectors": ["klaviyo"], "restart": False},
                     job_id="api-job")
    for job_id, entry in [("flush", "flush"), ("retry-flush", "flush"), ("vendor-check", "check_vendor_job"),
                          ("failed-sync", "sync_contacts"), ("failed-erasure", "erase_contacts"),
                          ("failed-export", "export_feed"), ("sweep", "sweep"), ("vendor-sweep", "sweep_vendor_jobs"),
                          ("audit", "audit"), ("poll", "poll_feeds"), ("exports", "exports_due"),
                          ("api-job", "run_task")]:
        old = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer).func_name
        stored[job_id] = (old, "hub.jobs.entry." + entry)
    current = sync_queue.enqueue("hub.jobs.entry.flush", "klaviyo", job_id="already-current")
    foreign = periodic.enqueue("os.path.join", "a", "b", job_id="not-the-hubs")
    redis_client.set("hub:layout", 3)

    done = hub("migrate", cwd=tmp_path, env=migrate_env(redis_url))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"layout 3 -> 4: {len(stored)} jobs pointed at entry points"
    assert redis_client.get("hub:layout") == b"4"
    for job_id, (old, new) in stored.items():
        job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
        assert job.func_name == new, f"{job_id} was {old}"
        inspect.signature(import_attribute(job.func_name)).bind(*job.args, **job.kwargs)  # a worker can call it
    assert Job.fetch("failed-sync", connection=redis_client, serializer=JSONSerializer).args == \
        ["klaviyo", ["anna@example.com"]]
    assert Job.fetch("failed-sync", connection=redis_client, serializer=JSONSerializer).description == \
        "sync_contacts klaviyo: 1 contact(s)"
    assert Job.fetch("sweep", connection=redis_client, serializer=JSONSerializer).description == \
        "hub.jobs.entry.sweep()"
    assert Job.fetch(current.id, connection=redis_client, serializer=JSONSerializer).func_name == "hub.jobs.entry.flush"
    assert Job.fetch(foreign.id, connection=redis_client, serializer=JSONSerializer).func_name == "os.path.join"
    # the registries and queues are as they were
    assert sorted(FailedJobRegistry(queue=sync_queue).get_job_ids()) == ["failed-erasure", "failed-sync"]
    assert FailedJobRegistry(queue=periodic).get_job_ids() == ["failed-export"]
    assert sorted(ScheduledJobRegistry(queue=sync_queue).get_job_ids()) == ["retry-flush", "vendor-check"]
    assert sync_queue.job_ids == ["flush", "already-current"]


def test_every_job_the_core_queues_names_an_entry_point_that_exists() -> None:
    """The core enqueues by name (hub/core/jobnames.py) and never imports hub.jobs: each name must
    be a function of hub/jobs/entry.py, and layout 4 must point only at those."""
    from rq.utils import import_attribute

    from hub.core import jobnames, migrate

    for name in jobnames.ALL:
        assert name.startswith("hub.jobs.entry.") and callable(import_attribute(name)), name
    assert {"hub." + new for new in migrate.ENTRY_POINTS.values()} <= set(jobnames.ALL)
