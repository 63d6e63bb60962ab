"""The event feed's delivery process of a worker pool (`python -m hub.jobs.feed`): it builds
the services, leads by lease, and runs hub.core.delivery's dispatcher."""
from __future__ import annotations

import signal
import threading
import time
from hub.core.endpointstore import ENDPOINTS
from hub.core.lease import Lease
from hub.core.delivery import Dispatcher


def run() -> None:
    """The feed process of a worker pool (`python -m hub.core.delivery`): lead, build, deliver."""
    from hub.core import logs
    from hub.core.bootstrap import build_services
    from hub.core.services import using

    logs.setup(names=("hub",))
    core = build_services()
    with using(core):
        r, config = core.redis, core.config
        lease = Lease(r, "feed", 30.0)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        dispatcher = Dispatcher(r, config, core.resolver)
        renewed = 0.0
        try:
            while not stop.is_set():
                if time.time() - renewed > 5:
                    if not ((lease.token and lease.renew()) or lease.acquire()):
                        lease.token = None
                        stop.wait(2)
                        continue
                    renewed = time.time()
                started = dispatcher.step()
                if not r.exists(ENDPOINTS):
                    stop.wait(1)            # nothing to feed: look again in a second
                elif not started:
                    dispatcher.wait(0.05)
        finally:
            dispatcher.close()
            lease.release()


if __name__ == "__main__":
    run()
