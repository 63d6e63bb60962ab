"""The single-event baseline: a bare endpoint on the hub's own server settings.

`python -m benchmarks.bare --port P --workers W --threads T` serves a Flask app with one route,
POST /v1/events, that reads the request body and answers 202 with an empty JSON object. It runs
under gunicorn through the same function `hub serve` uses (`hub.cli.Gunicorn.run`), so workers,
threads, worker class, timeouts and log level are the hub's. The benchmark posts the same signed
single-event requests to it and to the hub, from the same clients, in the same run; the ratio of
the two p99s is what the hub's own work costs on top of the server and the load generator.
"""
from __future__ import annotations

import argparse
from typing import Any

from flask import Flask, request

ROUTE = "/v1/events"


def create_bare_app() -> Flask:
    app = Flask(__name__)

    @app.post(ROUTE)
    def receive() -> Any:
        request.get_data()       # read the whole body, as the hub does before anything else
        return {}, 202

    return app


def main() -> None:
    from hub.cli import Gunicorn
    from hub.core import logs

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread when > 1)")
    args = parser.parse_args()
    logs.setup()          # as `hub serve`: gunicorn's own lines as JSON
    Gunicorn.run(create_bare_app, args.port, args.host, args.workers, args.threads)


if __name__ == "__main__":
    main()
