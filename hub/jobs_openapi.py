"""The OpenAPI entries of the long-job routes (/v1/jobs), merged into hub.openapi's ROUTES."""
from __future__ import annotations

from typing import Any

from .jobs import KINDS
from .openapi import arr, obj, op, t

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

JOB_ROUTES: dict[str, dict[str, Any]] = {
    "jobs.start_route": op(ok=(202, "Started; poll Location for progress.", JOB), body=START,
                           errors={400: "The body is not a JSON object.", 403: "replay needs the admin role.",
                                   404: "No such connector, failed sync or endpoint.",
                                   422: ("A field is invalid (named in details).", arr(t("object")))}),
    "jobs.list_route": op(ok=(200, "Newest first, at most 100.", obj(jobs=arr(JOB)))),
    "jobs.show_route": op(ok=(200, "The job.", JOB), errors={404: NOT_FOUND}),
    "jobs.cancel_route": op(ok=(202, "The job, with cancel_requested; it stops at its next step.", JOB),
                            errors={404: NOT_FOUND}),
}
