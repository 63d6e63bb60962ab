"""RQ queues, one per connector, and the coalesced flush trigger."""
from __future__ import annotations

from typing import Any

from rq import Queue, Retry
from rq.serializers import JSONSerializer

from connectors import CONNECTORS

from hub.core import jobnames, services
from hub.core.config import connector_settings
from hub.core import keys

FLAG = keys.FLUSH_FLAG
FLAG_TTL = 120


def queue_name(connector: str) -> str:
    return f"sync-{connector}"


def enabled_connectors(config: dict[str, Any]) -> list[str]:
    """A connector is enabled when its credentials are set."""
    return [name for name, cls in CONNECTORS.items() if cls.configured(connector_settings(config, name))]


class Queues:
    def __init__(self, redis: Any, connectors: list[str], config: dict[str, Any] | None = None) -> None:
        self.redis = redis
        self.config = config if config is not None else {"FAILURE_TTL": 30 * 86400}
        self.connectors = connectors
        self.queues = {c: Queue(queue_name(c), connection=redis, serializer=JSONSerializer) for c in connectors}

    def get(self, connector: str) -> Queue:
        return self.queues[connector]

    def flags(self) -> list[str]:
        return [FLAG.format(name) for name in self.connectors]

    def kick(self, connectors: list[str] | None = None) -> int:
        """Make sure one flush job per connector is queued; concurrent kicks coalesce on a flag."""
        names = self.connectors if connectors is None else connectors
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.set(FLAG.format(name), "1", nx=True, ex=FLAG_TTL)
        fresh = [name for name, set_now in zip(names, pipe.execute()) if set_now]
        return self.enqueue_flushes(fresh)

    def enqueue_flushes(self, names: list[str]) -> int:
        """Queue a flush for each connector whose flag the caller has just set."""
        for name in names:
            # Retry covers a worker killed mid-flush: RQ re-runs the abandoned job, and a flush
            # run twice pushes the same absolute state twice.
            self.get(name).enqueue(jobnames.FLUSH, name, job_timeout=300, result_ttl=60,
                                   retry=Retry(max=3, interval=[10, 30, 60]),
                                   failure_ttl=self.config["FAILURE_TTL"],
                                   description=f"flush {name}")
        return len(names)


def get_queues() -> Queues:
    return services.current().queues
