"""Long work started over the API: a job id whose progress (done of total) anyone with the ops
role can read while it runs, and cancel.

POST /v1/jobs starts one of the long pieces of work the CLI shows a bar for, on the worker
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

from flask import jsonify, request
from flask_smorest import Blueprint
from rq import Queue
from rq.serializers import JSONSerializer

from .auth import has_role
from .auth_http import bearer, require
from .errors import APIError
from .openapi import arr, declare, obj, t
from .progress import Progress, Stopped
from hub import services

bp = Blueprint("jobs", __name__)
KEY = "hub:job:{}"
INDEX = "hub:jobs"
QUEUE = "hub-periodic"      # hub.scheduler.QUEUE: every worker pool serves it
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


# -- starting: validate now, run on the worker pool ----------------------------------------------

def resync_params(data: dict[str, Any]) -> dict[str, Any]:
    from .contacts import enabled_names

    connectors = data.get("connectors")
    if connectors is not None and not (isinstance(connectors, list) and all(isinstance(c, str) for c in connectors)):
        raise APIError(422, "invalid_request", "connectors must be a list of connector names",
                       [{"field": "connectors", "message": "must be a list of strings"}])
    return {"connectors": enabled_names(connectors), "restart": bool(data.get("restart"))}


def retry_params(data: dict[str, Any]) -> dict[str, Any]:
    from .ops_http import selection

    return {"ids": selection(data)}


def replay_params(data: dict[str, Any]) -> dict[str, Any]:
    from .endpoints import replay_selection

    if not has_role(bearer(), "admin"):
        raise APIError(403, "forbidden", "replaying an endpoint's messages needs the admin role")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise APIError(422, "invalid_request", "endpoint must be an endpoint id",
                       [{"field": "endpoint", "message": "required: the endpoint's id (ep_...)"}])
    ids, start, end = replay_selection(endpoint, {k: v for k, v in data.items() if k not in ("kind", "endpoint")})
    return {"endpoint": endpoint, "ids": ids, "start": start, "end": end}


PARAMS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "resync": resync_params, "failed_retry": retry_params, "replay": replay_params}


def start(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise APIError(400, "invalid_json", "send a JSON object with a kind")
    kind = data.get("kind")
    if kind not in KINDS:
        raise APIError(422, "invalid_request", f"kind must be one of: {', '.join(KINDS)}",
                       [{"field": "kind", "message": f"one of: {', '.join(KINDS)}"}])
    params = PARAMS[kind](data)
    job_id = f"job_{uuid.uuid4().hex[:16]}"
    now = time.time()
    Record(redis(), job_id, ttl()).write(kind=kind, state="queued", done=0, total=None, created=now)
    pipe = redis().pipeline(transaction=False)
    pipe.zadd(INDEX, {job_id: now})
    pipe.zremrangebyscore(INDEX, "-inf", now - ttl())
    pipe.execute()
    Queue(QUEUE, connection=redis(), serializer=JSONSerializer).enqueue(
        "hub.jobs.run", job_id, kind, params, job_id=job_id, job_timeout=24 * 3600, result_ttl=600,
        failure_ttl=ttl(), description=f"{kind} job {job_id}")
    return read(job_id)


# -- running (an RQ job on the worker pool, inside its app context) -----------------------------

def work(kind: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    if kind == "resync":
        from .contacts import resync_all

        return resync_all(progress, params["connectors"], restart=params["restart"])
    if kind == "failed_retry":
        from . import failed

        done = failed.retry(params["ids"], progress)
        return {"retried": len(done)}
    from .feed import replay

    result = replay(redis(), params["endpoint"], params["ids"], params["start"], params["end"], progress)
    return {"queued": result["queued"], "not_found": len(result["not_found"])}


def run(job_id: str, kind: str, params: dict[str, Any]) -> None:
    """Do the work, keeping its figures in the job's record; a cancel stops it at a step boundary."""
    record = Record(redis(), job_id, ttl())
    if record.cancelled():
        record.write(state="cancelled", finished=time.time())
        return
    progress = Progress(kind, sinks=[record], should_stop=record.cancelled)
    try:
        result = work(kind, params, progress)
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


# -- routes ------------------------------------------------------------------------------------

JOB = obj(("id", "kind", "state", "done"),
          id=t("string", "job_..."), kind=t("string", enum=list(KINDS)),
          state=t("string", enum=["queued", "running", "done", "failed", "cancelled"]),
          done=t("integer", "Items done so far (a stopped run's earlier work included).", nullable=True),
          total=t("integer", "Items in all; null until counted.", nullable=True),
          unit=t("string", "What is counted: contacts, failed syncs, messages.", nullable=True),
          note=t("string", "What the work adds (e.g. how many were requeued).", nullable=True),
          rate_per_s=t("number", nullable=True), eta_s=t("number", "Seconds left at the current rate.", nullable=True),
          result=t("object", "What the work did, once done.", nullable=True),
          error=t("string", "Why it failed.", nullable=True),
          resume=t("string", "After a cancel: how to do the rest.", nullable=True),
          created_at=t("string", nullable=True), started_at=t("string", nullable=True),
          updated_at=t("string", nullable=True), finished_at=t("string", nullable=True),
          cancel_requested=t("boolean"))
START = obj(("kind",), kind=t("string", enum=list(KINDS)),
            connectors=arr(t("string"), description="resync: only these (default: every enabled connector)."),
            restart=t("boolean", "resync: start over instead of continuing a cancelled run."),
            ids=arr(t("string"), description="failed_retry: these failed syncs."),
            connector=t("string"), code=t("string"), since=t("string", "failed_retry: a filter; replay: ISO 8601."),
            contact=t("string"), all=t("boolean", "failed_retry: every failed sync."),
            endpoint=t("string", "replay: the endpoint (ep_...); needs the admin role."),
            until=t("string", "replay: ISO 8601."), message_ids=arr(t("string"), maxItems=10000))
NOT_FOUND = "No such job (or it ended more than HUB_JOB_TTL seconds ago)."


@bp.post("/v1/jobs")
@declare("Start long work as a job", (202, "Started; poll Location for progress.", JOB), START,
         errors={400: "The body is not a JSON object.", 403: "replay needs the admin role.",
                 404: "No such connector, failed sync or endpoint.",
                 422: ("A field is invalid (named in details).", arr(t("object")))})
@require("ops")
def start_job() -> Any:
    """Start long work (re-sync every contact, retry failed syncs, replay messages) as a job."""
    data = request.get_json(silent=True)
    if data is None and request.get_data():
        raise APIError(400, "invalid_json", "the body is not valid JSON")
    job = start(data if data is not None else {})
    response = jsonify(job)
    response.status_code = 202
    response.headers["Location"] = f"/v1/jobs/{job['id']}"
    return response


@bp.get("/v1/jobs")
@declare("Recent jobs", (200, "Newest first, at most 100.", obj(jobs=arr(JOB))))
@require("ops")
def list_jobs() -> Any:
    """Recent jobs, newest first."""
    ids = [i.decode() for i in redis().zrevrange(INDEX, 0, 99)]
    jobs = []
    for job_id in ids:
        try:
            jobs.append(read(job_id))
        except APIError:
            redis().zrem(INDEX, job_id)
    return jsonify({"jobs": jobs})


@bp.get("/v1/jobs/<job>")
@declare("A job's state and progress", (200, "The job.", JOB), errors={404: NOT_FOUND})
@require("ops")
def show_job(job: str) -> Any:
    """A job's state and progress: done of total, rate, time left."""
    return jsonify(read(job))


@bp.post("/v1/jobs/<job>/cancel")
@declare("Stop a job at its next step", (202, "The job, with cancel_requested; it stops at its next step.", JOB),
         errors={404: NOT_FOUND})
@require("ops")
def cancel_job(job: str) -> Any:
    """Ask a job to stop at its next step boundary; what it did stays done."""
    if read(job)["state"] not in FINAL:
        Record(redis(), job, ttl()).write(cancel=time.time())
    return jsonify(read(job)), 202
