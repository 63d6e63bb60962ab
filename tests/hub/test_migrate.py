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

from hub.core.ledger import WHOLE_OPERATIONS
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


FROM_LAYOUT_1 = ("layout 1 -> 6: 1 erasure markers keyed, 2 dedupe markers keyed, 0 queued jobs renamed, "
                 "0 jobs pointed at entry points, 0 contacts' link sets merged, 0 push outcomes moved, "
                 "0 pushed entries moved into contacts, 0 pushed entries of gone contacts dropped")


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
    assert redis_client.get("hub:layout") == b"6"

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
    assert again.returncode == 0 and again.stdout.strip() == "layout 6 (current): nothing to migrate"


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
        ["layout 6 (current): nothing to migrate"] * 3
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
        assert redis_client.get("hub:layout") == b"6"      # the hub answers only once it has migrated
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
    assert done.stdout.strip() == ("layout 2 -> 6: 4 queued jobs renamed, 5 jobs pointed at entry points, "
                                   "0 contacts' link sets merged, 0 push outcomes moved, "
                                   "0 pushed entries moved into contacts, 0 pushed entries of gone contacts dropped")
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
    assert done.stdout.strip() == (f"layout 3 -> 6: {len(stored)} jobs pointed at entry points, "
                                   "0 contacts' link sets merged, 0 push outcomes moved, "
                                   "0 pushed entries moved into contacts, 0 pushed entries of gone contacts dropped")
    assert redis_client.get("hub:layout") == b"6"
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


# -- layout 5: a contact's five link sets become one hash ----------------------------------------
# Layout 3's step, handed whole operations as it was then (hub.core.ledger.WHOLE_OPERATIONS).
LAYOUT_3_LEDGER = WHOLE_OPERATIONS + (Path(__file__).parent / "fixtures" / "ledger_layout3.lua").read_text()
BIG = "bea@example.com"                     # a referrer with more friends than a compact hash holds
CROWD = [f"friend{i:03d}@example.com" for i in range(300)]
OLD_SETS = {":friends": "f:", ":referrers": "r:", ":reg": "g:", ":conv": "v:", ":credited": "o:"}


def linked_story() -> list[dict[str, Any]]:
    """The story, with a referrer of many friends (half of whom buy), a friend claimed by two
    referrers, a conversion sent again under a new id, and an erased friend."""
    out = story()
    n = 100
    for i, friend in enumerate(CROWD):
        out.append(event(n, "friend.registered", referrer={"email": BIG}, friend={"email": friend}))
        n += 1
        if i % 2 == 0:
            out.append(event(n, "friend.converted", referrer={"email": BIG}, friend={"email": friend},
                             order={"id": f"ord_b{i}", "total": "10.50", "currency": "EUR"}))
            n += 1
    out.append(event(n, "friend.registered", referrer={"email": "ben@example.com"}, friend={"email": "cleo@example.com"}))
    again = event(n + 1, "friend.converted", referrer={"email": "anna@example.com"}, friend={"email": "cleo@example.com"},
                  order={"id": "ord_1", "total": "59.90", "currency": "GBP"})
    out.append(again)
    out.append(event(n + 2, "contact.erased", contact={"email": CROWD[1]}))
    return out


def everyone() -> list[str]:
    return list(PEOPLE) + [BIG] + CROWD


def written_by_layout_3(app: Any, redis_client: redis_lib.Redis) -> dict[str, Any]:
    """The linked story applied by the ledger step layout 3 ran; the states it reads as."""
    from hub.core.ledger import SOURCE, STEP, get_ledger, with_timelines

    client = app.test_client()
    with app.app_context():
        ledger = get_ledger()
        ledger.script = redis_client.register_script(LAYOUT_3_LEDGER)
        ledger.step = redis_client.register_script(with_timelines(LAYOUT_3_LEDGER))   # what ingest runs
        events = linked_story()
        assert post(client, events[:200], "first") == {"accepted": 200, "duplicates": 0}
        assert post(client, events[200:], "rest") == {"accepted": len(events) - 200, "duplicates": 0}
        ledger.script = redis_client.register_script(SOURCE)
        ledger.step = redis_client.register_script(STEP)
        states = ledger.states(everyone())
    redis_client.set("hub:layout", 3)
    return states


def old_sets(redis_client: redis_lib.Redis) -> dict[str, set[bytes]]:
    """Each contact's links as the fields layout 5 keeps them: email -> {b"f:<friend>", ...}."""
    out: dict[str, set[bytes]] = {}
    for key in redis_client.scan_iter(match="hub:c:*", count=1000):
        name = key.decode()
        for suffix, tag in OLD_SETS.items():
            if name.endswith(suffix):
                email = name[len("hub:c:"):-len(suffix)]
                out.setdefault(email, set()).update(tag.encode() + m for m in redis_client.smembers(key))
    return out


def test_link_sets_become_one_hash_and_every_count_reads_the_same(
        make_app, redis_client: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from hub.core import migrate
    from hub.core.erasure import Keyed
    from hub.core.ledger import get_ledger

    app = make_app(ERASURE_KEY=ERASURE_KEY)
    before = written_by_layout_3(app, redis_client)
    assert before[BIG]["friends_registered"] == 300 and before[BIG]["friends_converted"] == 150
    assert str(before[BIG]["turnover"]["EUR"]) == "1575.00" and before[CROWD[1]] is None
    expected = old_sets(redis_client)
    assert expected["anna@example.com"] and len(expected[BIG]) > 512 and expected["cleo@example.com"] == {
        b"r:anna@example.com", b"r:ben@example.com"}
    assert not any(e == CROWD[1] for e in expected)

    # A run cut short (its process dies after two pages of keys) leaves the layout as it was;
    # the next run finishes the job.
    monkeypatch.setattr(migrate, "PAGE", 20)
    pages_done = []

    class Dies:
        def reacquire(self) -> None:
            pages_done.append(1)
            if len(pages_done) == 2:
                raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        migrate.links_in_one_hash(redis_client, Keyed(ERASURE_KEY.encode()), Dies())
    assert redis_client.get("hub:layout") == b"3"
    report = migrate.migrate(redis_client, Keyed(ERASURE_KEY.encode()))
    assert (report.before, report.after) == (3, 6)
    assert 0 < report.changed["contacts' link sets merged"] <= len(expected)

    # No old set is left; each contact's hash holds exactly what its sets held, compact when small.
    assert not [k for k in redis_client.scan_iter(match="hub:c:*", count=1000) if k.decode().endswith(tuple(OLD_SETS))]
    for email, fields in expected.items():
        assert set(redis_client.hkeys(f"hub:c:{email}:n")) == fields, email
    assert redis_client.object("encoding", f"hub:c:{BIG}:n") == b"hashtable"
    assert redis_client.object("encoding", "hub:c:anna@example.com:n") in (b"ziplist", b"listpack")  # by version
    with app.app_context():
        assert get_ledger().states(everyone()) == before

    # Everything applied is still a duplicate; credits already given are not given twice.
    client = app.test_client()
    events = linked_story()
    assert post(client, events[:200], "again") == {"accepted": 0, "duplicates": 200}
    assert post(client, events[200:], "again-2") == {"accepted": 0, "duplicates": len(events) - 200}
    resent = event(900, "friend.converted", referrer={"email": BIG}, friend={"email": CROWD[0]},
                   order={"id": "ord_b0", "total": "10.50", "currency": "EUR"})
    first_buy = event(901, "friend.converted", referrer={"email": BIG}, friend={"email": CROWD[3]},
                      order={"id": "ord_b3", "total": "1.00", "currency": "EUR"})
    assert post(client, [resent, first_buy], "later") == {"accepted": 2, "duplicates": 0}
    assert post(client, [event(902, "contact.erased", contact={"email": CROWD[0]})], "erase") == \
        {"accepted": 1, "duplicates": 0}
    with app.app_context():
        ledger = get_ledger()
        big = ledger.state(BIG)
        assert big is not None and (big["friends_registered"], big["friends_converted"]) == (300, 151)
        assert str(big["turnover"]["EUR"]) == "1576.00"
        # Erasure found the links the step moved: the friend left no trace, the referrer kept counts.
        assert ledger.state(CROWD[0]) is None and not redis_client.hexists(f"hub:c:{BIG}:n", f"f:{CROWD[0]}")
    assert not scan(redis_client, CROWD[0])
    assert migrate.migrate(redis_client, Keyed(ERASURE_KEY.encode())).summary() == "layout 6 (current): nothing to migrate"


def test_push_successes_move_beside_their_fingerprints_and_read_the_same(redis_client: redis_lib.Redis) -> None:
    """`hub:last:<connector>` as layout 3 wrote it (a success per contact pushed, or the failure
    noted since) reads the same in the contact view before and after the step, and keeps only
    the failures."""
    from hub.core import migrate, pushstate
    from hub.core.contacts import last_push
    from hub.core.erasure import Keyed

    def fingerprint(n: int) -> str:
        return json.dumps({"fp": f"{n:040x}", "lists": {"RfMkt1": "marketing"}, "consent": True})

    ok = {f"p{i}@example.com": 1796000000.25 + i for i in range(700)}          # more than one HSCAN page
    for email in [*ok, "f@example.com", "gone@example.com"]:
        redis_client.hset(f"hub:c:{email}", "email", email)
    for email, at in ok.items():
        redis_client.hset("hub:pushed:klaviyo", email, fingerprint(int(at)))
        redis_client.hset("hub:last:klaviyo", email, json.dumps({"at": at, "ok": True}))
    failure = {"at": 1796000999.5, "ok": False, "status": 400, "code": "invalid"}
    redis_client.hset("hub:pushed:splio", "f@example.com", fingerprint(1))
    redis_client.hset("hub:last:splio", "f@example.com", json.dumps(failure))   # failed after a success
    redis_client.hset("hub:last:splio", "gone@example.com", json.dumps({"at": 1796000001.0, "ok": True}))  # nothing pushed kept
    redis_client.set("hub:layout", 3)
    people = [("klaviyo", e) for e in ok] + [("splio", "f@example.com"), ("splio", "gone@example.com")]
    before = {p: last_push(redis_client, *p) for p in people}
    assert before[("klaviyo", "p3@example.com")] == {"at": 1796000003.25, "ok": True}
    assert before[("splio", "f@example.com")] == failure

    report = migrate.migrate(redis_client, Keyed(ERASURE_KEY.encode()))
    assert report.changed["push outcomes moved"] == 700
    assert {p: last_push(redis_client, *p) for p in people} == before
    assert set(redis_client.hkeys("hub:last:splio")) == {b"f@example.com", b"gone@example.com"}
    assert not redis_client.exists("hub:last:klaviyo")
    # layout 6 then moves it into the contact's hash, the fingerprint's first 16 digits intact
    landed = pushstate.unpack(redis_client.hget("hub:c:p3@example.com", "p:klaviyo"))
    assert landed == {**json.loads(fingerprint(int(ok["p3@example.com"]))), "at": 1796000003.25,
                      "fp": f"{int(ok['p3@example.com']):040x}"[:16]}


def test_a_fingerprint_an_older_hub_kept_in_full_still_means_unchanged(make_app, redis_client: redis_lib.Redis) -> None:  # type: ignore[no-untyped-def]
    """Layout 5 keeps 16 hex digits of a push's fingerprint where layout 3 kept 40: a contact an
    older hub pushed is not pushed again after the upgrade unless its rendering changed."""
    import hashlib

    from hub.core import migrate, sync
    from hub.core.erasure import Keyed
    from hub.core.ledger import get_ledger
    from hub.core.mappingstore import current_mapping

    app = make_app()
    assert post(app.test_client(), story(), "story")["accepted"] == len(story())
    with app.app_context():
        mapping = current_mapping(redis_client, "klaviyo")
        states = get_ledger().states(["anna@example.com", "cleo@example.com"])
        rendered = {e: sync.render(mapping, s) for e, s in states.items()}
        for email, r in rendered.items():   # the full SHA-1 of the same rendering, as layout 3 wrote it
            text = json.dumps({k: r[k] for k in ("identity", "fields", "lists", "marketing_consent")},
                              sort_keys=True, default=str)
            full = hashlib.sha1(text.encode()).hexdigest()
            if email == "cleo@example.com":
                full = hashlib.sha1(text.encode() + b" changed").hexdigest()    # a rendering since changed
            redis_client.hset("hub:pushed:klaviyo", email, json.dumps({"fp": full, "lists": {}, "consent": None}))
        redis_client.set("hub:layout", 3)
        migrate.migrate(redis_client, Keyed(ERASURE_KEY.encode()))
        planned = {e["email"]: e["status"] for e in sync.plan("klaviyo", mapping, states)}
    assert planned == {"anna@example.com": "unchanged", "cleo@example.com": "would_push"}


# -- layout 6: what was pushed, in the contact's own hash -----------------------------------------
def test_pushed_entries_move_into_the_contact_hashes_and_read_the_same(
        make_app, redis_client: redis_lib.Redis, redis_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A layout 5 store: `hub:pushed:<connector>` hashes of JSON entries (with and without a time,
    consent given, refused or not sent, both kinds of list, a fingerprint an older hub kept
    whole, a resync's mark) and an entry left for a person erased since. Step 6 moves each into
    its contact's hash; the contact view, the coalescer's and the history's reads and the sync's
    plan read the same as they did before; the erased person gets nothing back; a run cut short
    is finished by the next."""
    from hub.core import coalesce, history, migrate, pushstate, sync
    from hub.core.contacts import last_push
    from hub.core.erasure import Keyed
    from hub.core.ledger import get_ledger
    from hub.core.mappingstore import current_mapping

    app = make_app(ERASURE_KEY=ERASURE_KEY)
    written_by_today(app)
    assert not redis_client.exists(f"hub:c:{ERASED}")
    lists = {"RfMkt1": "marketing", "RfTxn1": "transactional"}
    old = {("klaviyo", "anna@example.com"): {"fp": "0123456789abcdef", "lists": lists, "consent": True, "at": 2000000000},
           ("klaviyo", "ben@example.com"): {"fp": "f" * 40, "lists": {}, "consent": False, "at": 2000000001.5},
           ("klaviyo", "cleo@example.com"): {"fp": "resync", "lists": {"RfTxn1": "transactional"}, "consent": None},
           ("splio", "anna@example.com"): {"fp": "", "lists": {"25": "marketing"}, "consent": True, "at": 2000000002},
           ("splio", ERASED): {"fp": "abcdefabcdefabcd", "lists": {}, "consent": None, "at": 2000000003}}
    for (connector, email), entry in old.items():
        redis_client.hset(f"hub:pushed:{connector}", email, json.dumps(entry))
    redis_client.set("hub:layout", 5)

    done = hub("migrate", cwd=tmp_path, env=migrate_env(redis_url))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "layout 5 -> 6: 4 pushed entries moved into contacts, " \
                                  "1 pushed entries of gone contacts dropped"
    assert redis_client.get("hub:layout") == b"6"
    assert not redis_client.keys("hub:pushed:*")
    assert not redis_client.exists(f"hub:c:{ERASED}"), "an erased person's hash is not made again"
    assert not scan(redis_client, ERASED)
    raw = {(c, e): redis_client.hget(f"hub:c:{e}", f"p:{c}") for c, e in old if e != ERASED}
    assert raw[("klaviyo", "anna@example.com")] == b'0123456789abcdef 2000000000 1 {"RfMkt1":"m","RfTxn1":"t"}'
    assert raw[("klaviyo", "ben@example.com")] == b"ffffffffffffffff 2000000001.5 0 "
    assert raw[("klaviyo", "cleo@example.com")] == b'resync   {"RfTxn1":"t"}'
    assert raw[("splio", "anna@example.com")] == b' 2000000002 1 {"25":"m"}'
    for (connector, email), entry in old.items():
        if email != ERASED:
            assert pushstate.unpack(raw[(connector, email)]) == \
                {"at": None, **entry, "fp": entry["fp"][:16]}, (connector, email)
    with app.app_context():
        assert last_push(redis_client, "klaviyo", "ben@example.com") == {"at": 2000000001.5, "ok": True}
        assert last_push(redis_client, "klaviyo", "cleo@example.com") is None     # no time was kept
        assert history.dirty_since(redis_client, "klaviyo", ["anna@example.com"]) == {"anna@example.com": 2000000000}
        assert coalesce.last_landed(raw[("splio", "anna@example.com")], None) == 2000000002
        mapping = current_mapping(redis_client, "klaviyo")
        plan = sync.plan("klaviyo", mapping, get_ledger().states(["anna@example.com", "cleo@example.com"]))
        update = {e["email"]: e["update"] for e in plan}["anna@example.com"]
        assert (update.previous_lists, update.previous_consent) == (lists, True)    # the diff is against what was sent

    # Cut short: a run that moved some entries and not others, and died before the version.
    redis_client.hset("hub:pushed:emarsys", "eve@example.com", json.dumps({"fp": "1" * 16, "lists": {}, "consent": None, "at": 7}))
    redis_client.set("hub:layout", 5)
    again = migrate.migrate(redis_client, Keyed(ERASURE_KEY.encode()))
    assert again.changed == {"pushed entries moved into contacts": 1, "pushed entries of gone contacts dropped": 0}
    assert redis_client.hget("hub:c:eve@example.com", "p:emarsys") == b"1111111111111111 7  "
    assert redis_client.hget("hub:c:anna@example.com", "p:klaviyo") == raw[("klaviyo", "anna@example.com")]
    assert migrate.migrate(redis_client, Keyed(ERASURE_KEY.encode())).summary() == "layout 6 (current): nothing to migrate"
