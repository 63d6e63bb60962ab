"""One failed sync as ops see it, read from its RQ job: what the failed list, the failed-sync
index (hub/core/failindex.py) and the console show. Below both hub.core.failed and the index."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rq.job import Job
from rq.results import Result

from hub.core.sync import scrub_secrets


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def failure_text(job: Job) -> str:
    """The exception RQ recorded for the job's last run ("code: message" for syncs the hub filed)."""
    result = job.latest_result()
    return (result.exc_string or "") if result is not None and result.type == Result.Type.FAILED else ""


def last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return scrub_secrets(lines[-1].strip())[:500] if lines else ""


def describe(job: Job, connector: str) -> dict[str, Any]:
    """A failed job as ops see it. Jobs the hub filed carry structured meta; anything else RQ
    failed on its own (a flush whose worker died, say) is shown from its exception."""
    meta = job.meta or {}
    func = job.func_name.rsplit(".", 1)[-1] if job.func_name else "?"
    ended = _iso(job.ended_at)
    return {"id": job.id, "connector": meta.get("connector", connector), "kind": func,
            "contacts": meta.get("contacts", job.args[1] if func.endswith("_contacts") and len(job.args) > 1 else []),
            "status": meta.get("status"), "code": meta.get("code") or ("worker_error" if not meta else None),
            "message": meta.get("message") or last_line(failure_text(job)),
            "retriable": meta.get("retriable"), "attempts": meta.get("attempts", 1),
            "retries": meta.get("retries", 0),
            "first_attempt": meta.get("first_attempt", ended), "last_attempt": meta.get("last_attempt", ended)}
