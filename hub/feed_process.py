"""The event feed's delivery process of a worker pool (`python -m hub.feed_process`): it builds
the services, leads by lease, and runs hub.delivery's dispatcher."""
from __future__ import annotations

import signal
import threading
import time
from .endpoints import ENDPOINTS
from .lease import Lease
from .delivery import Dispatcher


def run() -> None:
    """The feed process of a worker pool (`python -m hub.delivery`): lead, build, deliver."""
    from . import logs
    from .bootstrap import build_services
    from .services import using

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
