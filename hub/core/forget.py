"""After an erasure: everything outside the ledger that may still name the erased people."""
from __future__ import annotations

from hub.core import failed, failindex, feed, services, timeline, webhooks
from hub.core.keys import LAST


def forget(emails: list[str]) -> dict[str, int]:
    """Everything outside the ledger that may still name erased people: failed syncs
    (rewritten without them or discarded), webhook identities, parked and rejected webhooks,
    each connector's per-contact stores, and the contact index and timelines. One pass for a
    whole batch of erasures. Idempotent: an erasure retried runs it again."""
    svc = services.current()
    redis = svc.redis
    pipe = redis.pipeline(transaction=False)
    for connector in svc.queues.connectors:
        pipe.hdel(LAST.format(connector), *emails)
    timeline.forget(pipe, emails)      # the contact index and timelines (hub/core/timeline.py)
    pipe.execute()
    done = {"failed": failed.forget(emails)}
    failindex.forget(redis, emails)    # the console's failed-sync index (hub/core/failindex.py)
    done.update(webhooks.forget_address(emails))
    done["feed"] = feed.forget(redis, emails)
    return done
