"""The profile summary (benchmarks/profile.py) reads py-spy's collapsed stacks as py-spy writes them."""
from __future__ import annotations

from benchmarks.profile import render, summarise

MASTER = 'process 10:"python -m hub serve";<module> (hub/__main__.py:3);Arbiter.run (gunicorn/arbiter.py:231)'
WORKER = ('process 11:"python -m hub serve";<module> (hub/__main__.py:3);Arbiter.run (gunicorn/arbiter.py:231);'
          "SyncWorker.run (gunicorn/workers/sync.py:125)")
HANDLE = WORKER + ";SyncWorker.handle (gunicorn/workers/sync.py:153)"
RAW = "\n".join([
    f"{MASTER};Arbiter.wait_for_signals (gunicorn/arbiter.py:390) 500",          # the master: left out
    f"{WORKER};SyncWorker.wait (gunicorn/workers/sync.py:40) 300",               # waiting for a connection: out
    f"{HANDLE};receive_events (hub/http/ingest.py:120);Ledger.apply_each (hub/core/ledger.py:140) 60",
    f"{HANDLE};receive_events (hub/http/ingest.py:118);authenticate_ingest (hub/http/auth.py:50) 15",
    f"{HANDLE};receive_events (hub/http/ingest.py:121) 5",
    f"{HANDLE};close_graceful (gunicorn/util.py:312) 20",
])


def test_only_request_handling_counts_and_lines_of_one_function_add_up() -> None:
    summary = summarise(RAW)
    assert summary["samples"] == 100
    inclusive = dict(summary["inclusive"])
    assert inclusive["SyncWorker.handle (gunicorn/workers/sync.py)"] == 100
    assert inclusive["receive_events (hub/http/ingest.py)"] == 80           # three lines, one function
    assert "Arbiter.run (gunicorn/arbiter.py)" not in inclusive
    own = dict(summary["self"])
    assert own == {"Ledger.apply_each (hub/core/ledger.py)": 60, "close_graceful (gunicorn/util.py)": 20,
                   "authenticate_ingest (hub/http/auth.py)": 15, "receive_events (hub/http/ingest.py)": 5}
    text = render(summary)
    assert "100 samples" in text and " 80.0%  receive_events (hub/http/ingest.py)" in text
