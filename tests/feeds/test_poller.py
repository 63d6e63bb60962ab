"""The poller against real SFTP servers and a real Redis: rows in, report out, files moved."""
from __future__ import annotations

import csv
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hub.core.feeds import jobs
from hub.core.feeds.sftp import HostKeyMismatch, SFTPError
from hub.core.ledger import get_ledger
from tests.feeds.conftest import activity_feed
from tests.feeds.data import activity, report


def hub_with(make_app: Any, feeds_file: Any, feed: dict[str, Any]) -> Any:
    return make_app(FEEDS_FILE=feeds_file([feed]))


def numbers(state: dict[str, Any] | None) -> list[Any]:
    assert state is not None
    return [state["invites_sent"], state["friends_registered"], state["friends_converted"], state["turnover"].get("GBP", Decimal("0.00"))]


def test_a_file_lands_in_the_ledger_and_bad_rows_in_the_report(sftp_server, make_app, feeds_file) -> None:  # type: ignore[no-untyped-def]
    app = hub_with(make_app, feeds_file, activity_feed(sftp_server))
    expected = activity(sftp_server.root / "inbound" / "day1.csv", 3000)
    with app.app_context():
        result = jobs.poll_feed("activity")
        (summary,) = result["files"]
        assert (summary["outcome"], summary["rows"], summary["errors"]) == ("processed", 3000, len(expected.bad))
        assert summary["accepted"] + summary["duplicates"] == expected.good
        assert summary["duplicates"] == expected.duplicates
        states = get_ledger().states(sorted(expected.referrers))
        for email, want in expected.referrers.items():
            assert numbers(states[email]) == want, email
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    for what, value in (("rows", 3000), ("errors", len(expected.bad)), ("duplicates", expected.duplicates),
                        ("files_processed", 1)):
        assert f'hub_feed_total{{feed="activity",what="{what}"}} {float(value)}' in metrics
    inbound = sftp_server.root / "inbound"
    assert not (inbound / "day1.csv").exists()
    assert (inbound / "processed" / "day1.csv").exists()
    assert report(inbound / "processed" / "day1.csv.errors.csv") == {n: [c] for n, c in expected.bad.items()}


def test_the_same_file_again_changes_nothing(sftp_server, make_app, feeds_file, redis_client) -> None:  # type: ignore[no-untyped-def]
    app = hub_with(make_app, feeds_file, activity_feed(sftp_server))
    inbound = sftp_server.root / "inbound"
    expected = activity(inbound / "a.csv", 1000)
    with app.app_context():
        first = jobs.poll_feed("activity")["files"][0]
        before = get_ledger().states(sorted(expected.referrers))
        # the same bytes under another name: skipped whole by its content hash
        (inbound / "processed" / "a.csv").rename(inbound / "b.csv")
        assert jobs.poll_feed("activity")["files"][0]["outcome"] == "already_imported"
        # the same rows in a different file (one row fewer): every row a duplicate
        lines = (inbound / "processed" / "b.csv").read_text().splitlines(keepends=True)
        (inbound / "c.csv").write_text("".join(lines[:-1]))
        third = jobs.poll_feed("activity")["files"][0]
        assert third["accepted"] == 0
        assert third["duplicates"] == first["accepted"] + first["duplicates"] - (0 if 1001 in expected.bad else 1)
        assert get_ledger().states(sorted(expected.referrers)) == before


def test_a_file_missing_a_mandatory_column_fails_whole(sandbox_sftp, make_app, feeds_file) -> None:  # type: ignore[no-untyped-def]
    app = hub_with(make_app, feeds_file, activity_feed(sandbox_sftp))
    inbound = sandbox_sftp.root / "inbound"
    (inbound / "x.csv").write_text("referrer,friend,event_type,date\na@b.example,c@d.example,registered,2026-11-01T00:00:00Z\n")
    with app.app_context():
        (summary,) = jobs.poll_feed("activity")["files"]
    assert summary["outcome"] == "failed"
    assert (inbound / "failed" / "x.csv").exists()
    with open(inbound / "failed" / "x.csv.errors.csv", newline="") as handle:
        (line,) = list(csv.DictReader(handle))
    assert "missing mandatory column(s): order_id, total, currency" in line["reason"]


def test_a_file_in_the_wrong_encoding_fails_before_any_row_applies(sandbox_sftp, make_app, feeds_file, redis_client) -> None:  # type: ignore[no-untyped-def]
    app = hub_with(make_app, feeds_file, activity_feed(sandbox_sftp))
    inbound = sandbox_sftp.root / "inbound"
    good = "a@b.example,c@d.example,registered,,,,2026-11-01T00:00:00Z,,\n"
    body = "referrer,friend,event_type,order_id,total,currency,date,friend_opt_in,promo_code\n" + good * 3
    (inbound / "latin.csv").write_bytes(body.encode() + "zoë@b.example,c@d.example,registered,,,,2026-11-01T00:00:00Z,,\n".encode("latin-1"))
    with app.app_context():
        (summary,) = jobs.poll_feed("activity")["files"]
        assert get_ledger().state("a@b.example") is None
    assert summary["outcome"] == "failed"
    assert "not utf-8" in (inbound / "failed" / "latin.csv.errors.csv").read_text()


def test_a_changed_host_key_is_refused(sftp_server, make_app, feeds_file) -> None:  # type: ignore[no-untyped-def]
    feed = activity_feed(sftp_server)
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    feed["sftp"] = {**feed["sftp"], "host_key": other}
    app = hub_with(make_app, feeds_file, feed)
    activity(sftp_server.root / "inbound" / "a.csv", 10)
    with app.app_context(), pytest.raises(HostKeyMismatch) as caught:
        jobs.poll_feed("activity")
    message = str(caught.value)
    assert "host key mismatch" in message and "refusing to connect" in message
    assert (sftp_server.root / "inbound" / "a.csv").exists()


def test_password_authentication(tmp_path: Path, make_app, feeds_file) -> None:  # type: ignore[no-untyped-def]
    from tests.feeds.servers import sandbox_server

    server = sandbox_server(tmp_path / "pw", auth="password")
    app = hub_with(make_app, feeds_file, activity_feed(server))
    expected = activity(server.root / "inbound" / "a.csv", 50, bad_every=1000)
    with app.app_context():
        assert jobs.poll_feed("activity")["files"][0]["rows"] == 50
    assert expected.rows == 50
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    feed = activity_feed(server)
    feed["sftp"] = {**feed["sftp"], "password_file": str(wrong)}
    app = make_app(FEEDS_FILE=feeds_file([feed]))
    with app.app_context(), pytest.raises(SFTPError, match="refused the credentials"):
        jobs.poll_feed("activity")


# paramiko's prefetch thread dies with the connection we cut; that is the point of the test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_cut_mid_download_applies_whole_rows_only_and_the_next_poll_finishes(sandbox_sftp, make_app, feeds_file) -> None:  # type: ignore[no-untyped-def]
    from sandbox.sftp import Cut

    app = hub_with(make_app, feeds_file, activity_feed(sandbox_sftp, read_window=1 << 16))
    inbound = sandbox_sftp.root / "inbound"
    expected = activity(inbound / "big.csv", 6000)
    size = (inbound / "big.csv").stat().st_size
    # The first read of the file (the hash) passes; the import's read is cut at 80 %. The client
    # reads at most a window (64 KiB here) ahead of the rows it has applied, so by then whole
    # batches have been applied, whatever the timing.
    assert size * 8 // 10 > (1 << 16) * 2 + 500 * 100
    sandbox_sftp.state.cuts.append(Cut(op="read", after=size * 8 // 10, nth=2))
    with app.app_context():
        with pytest.raises(SFTPError, match="broke off"):
            jobs.poll_feed("activity")
        assert (inbound / "big.csv").exists() and not (inbound / "processed").exists()
        status = jobs.status.read(app.extensions["redis"], "activity")
        assert "broke off" in status["poll_error"]
        progress = status["importing"]["big.csv"]
        assert progress["interrupted"]
        applied = progress["accepted"]
        assert 0 < applied < expected.good - expected.duplicates
        (summary,) = jobs.poll_feed("activity")["files"]
        assert summary["outcome"] == "processed"
        assert summary["duplicates"] == expected.duplicates + applied
        assert jobs.status.read(app.extensions["redis"], "activity")["importing"] == {}
        states = get_ledger().states(sorted(expected.referrers))
        for email, want in expected.referrers.items():
            assert numbers(states[email]) == want, email


def test_two_pollers_import_each_file_once(sftp_server, make_app, feeds_file) -> None:  # type: ignore[no-untyped-def]
    app = hub_with(make_app, feeds_file, activity_feed(sftp_server, batch=100))
    inbound = sftp_server.root / "inbound"
    wanted = {}
    for n in range(4):
        wanted[f"f{n}.csv"] = activity(inbound / f"f{n}.csv", 1500, seed=n)
    results: list[Any] = []
    start = threading.Barrier(2)

    def poll() -> None:
        with app.app_context():
            start.wait(10)
            results.append(jobs.poll_feed("activity"))

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    files = sorted(f["file"] for r in results for f in r["files"])
    assert files == sorted(wanted)
    assert sorted(p.name for p in (inbound / "processed").iterdir() if not p.name.endswith(".errors.csv")) == sorted(wanted)
    with app.app_context():
        totals = jobs.status.read(app.extensions["redis"], "activity")["totals"]
    assert (totals["rows"], totals["files_processed"]) == (4 * 1500, 4)
