"""Long work run as a job on the worker pool: a job id whose progress (done of total) anyone with the ops
role can read while it runs, and cancel.

POST /v1/jobs (hub.http.tasks) starts one of the long pieces of work the CLI shows a bar for, on the worker
pool's periodic queue (hub-periodic), and answers 202 at once:

  {"kind": "resync", "connectors": [...], "restart": false}      every contact, again (ops)
  {"kind": "failed_retry", "ids": [...] | filter | "all": true}   retry failed syncs (ops)
  {"kind": "replay", "endpoint": "ep_...", "since", "until" | "message_ids"}   (admin)

  hub:job:<id>   hash: kind, state (queued, running, done, failed, cancelled), done, total,
                 unit, note, times, result or error; expires HUB_JOB_TTL after its last change
  hub:jobs       zset: id -> created, for the list (ids whose hash expired are dropped on read)

A job's record holds counts, ids and connector names, never an email address: the selection of
failed syncs by contact is resolved to job ids when the job is started.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable

from rq import Queue
from rq.serializers import JSONSerializer

from hub.core.errors import APIError
from hub.core.progress import Progress, Stopped
from hub.core import jobnames, keys, services

KEY = keys.JOB
INDEX = keys.JOBS
QUEUE = "hub-periodic"      # hub.jobs.scheduler.QUEUE: every worker pool serves it
KINDS = ("resync", "failed_retry", "replay")
FINAL = ("done", "failed", "cancelled")


def redis() -> Any:
    return services.current().redis


def ttl() -> int:
    return int(services.current().config["JOB_TTL"])


def stamp(seconds: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) if seconds else None


class Record:
    """A job's figures in Redis: a progress sink, and where a cancel is asked for."""

    def __init__(self, r: Any, job_id: str, keep: int) -> None:
        self.r, self.key, self.keep = r, KEY.format(job_id), keep

    def write(self, **fields: Any) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(self.key, mapping={k: json.dumps(v) for k, v in fields.items()})
        pipe.expire(self.key, self.keep)
        pipe.execute()

    def begin(self, progress: Progress) -> None:
        self.write(state="running", started=time.time(), **progress.figures())

    def update(self, progress: Progress) -> None:
        self.write(updated=time.time(), **progress.figures())

    def end(self, progress: Progress) -> None:
        self.write(updated=time.time(), **progress.figures())

    def cancelled(self) -> bool:
        return bool(self.r.hexists(self.key, "cancel"))


def read(job_id: str) -> dict[str, Any]:
    raw = redis().hgetall(KEY.format(job_id))
    if not raw:
        raise APIError(404, "unknown_job", f"no job {job_id!r} (or it ended more than HUB_JOB_TTL seconds ago)")
    data = {k.decode(): json.loads(v) for k, v in raw.items()}
    out = {"id": job_id, **{k: data.get(k) for k in ("kind", "state", "done", "total", "unit", "note",
                                                         "rate_per_s", "eta_s", "result", "error", "resume")}}
    for name in ("created", "started", "updated", "finished"):
        out[f"{name}_at"] = stamp(data.get(name))
    out["cancel_requested"] = "cancel" in data
    return out


def submit(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Record a job (validated parameters) and queue it on the worker pool; its record as read."""
    job_id = f"job_{uuid.uuid4().hex[:16]}"
    now = time.time()
    Record(redis(), job_id, ttl()).write(kind=kind, state="queued", done=0, total=None, created=now)
    pipe = redis().pipeline(transaction=False)
    pipe.zadd(INDEX, {job_id: now})
    pipe.zremrangebyscore(INDEX, "-inf", now - ttl())
    pipe.execute()
    Queue(QUEUE, connection=redis(), serializer=JSONSerializer).enqueue(
        jobnames.API_JOB, job_id, kind, params, job_id=job_id, job_timeout=24 * 3600, result_ttl=600,
        failure_ttl=ttl(), description=f"{kind} job {job_id}")
    return read(job_id)


def recent(limit: int = 100) -> list[dict[str, Any]]:
    """The newest jobs first (ids whose record expired are dropped from the list)."""
    jobs = []
    for job_id in [i.decode() for i in redis().zrevrange(INDEX, 0, limit - 1)]:
        try:
            jobs.append(read(job_id))
        except APIError:
            redis().zrem(INDEX, job_id)
    return jobs


def cancel(job_id: str) -> dict[str, Any]:
    """Ask a job to stop at its next step boundary; what it did stays done."""
    if read(job_id)["state"] not in FINAL:
        Record(redis(), job_id, ttl()).write(cancel=time.time())
    return read(job_id)


# -- running (an RQ job on the worker pool, with the hub's services bound) -----------------------------

def run(job_id: str, kind: str, work: Callable[[Progress], dict[str, Any]]) -> None:
    """Do the work (its entry point, hub.jobs.entry.run_task, picks it by kind), keeping its figures
    in the job's record; a cancel stops it at a step boundary."""
    record = Record(redis(), job_id, ttl())
    if record.cancelled():
        record.write(state="cancelled", finished=time.time())
        return
    progress = Progress(kind, sinks=[record], should_stop=record.cancelled)
    try:
        result = work(progress)
    except Stopped:
        record.write(state="cancelled", finished=time.time(), resume=progress.resume, **progress.figures())
        return
    except APIError as exc:
        record.write(state="failed", finished=time.time(), error=exc.message, **progress.figures())
        return
    except Exception as exc:
        record.write(state="failed", finished=time.time(), error=f"{type(exc).__name__}: {exc}"[:300],
                     **progress.figures())
        raise
    record.write(state="done", finished=time.time(), result=result, **progress.figures())
