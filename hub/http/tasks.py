"""HTTP: /v1/jobs, long work started over the API (hub.core.tasks runs it): start, list, show, cancel.

Starting validates the request here (a 4xx names the field) and resolves a selection of failed
syncs to job ids, so a job's record never holds an email address.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import jsonify, request
from flask_smorest import Blueprint

from hub.core.auth import has_role
from hub.http.auth import bearer, require
from hub.core.errors import APIError
from hub.http.openapi import arr, declare, obj, t
from hub.core.tasks import KINDS, cancel, read, recent, submit

bp = Blueprint("jobs", __name__)


# -- starting: validate now, run on the worker pool ----------------------------------------------

def resync_params(data: dict[str, Any]) -> dict[str, Any]:
    from hub.core.contacts import enabled_names

    connectors = data.get("connectors")
    if connectors is not None and not (isinstance(connectors, list) and all(isinstance(c, str) for c in connectors)):
        raise APIError(422, "invalid_request", "connectors must be a list of connector names",
                       [{"field": "connectors", "message": "must be a list of strings"}])
    return {"connectors": enabled_names(connectors), "restart": bool(data.get("restart"))}


def retry_params(data: dict[str, Any]) -> dict[str, Any]:
    from hub.http.ops import selection

    return {"ids": selection(data)}


def replay_params(data: dict[str, Any]) -> dict[str, Any]:
    from hub.core.endpoints import replay_selection

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
    return submit(kind, params)


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
    return jsonify({"jobs": recent(100)})


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
    return jsonify(cancel(job)), 202
