"""A smoke run of the standard benchmark at R = 200: the whole stack as processes, correctness only.

No timing is asserted here: speed is what `make bench` reports, never a test that can flake.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import charts, expected, report, workload
from benchmarks.runner import Options, VENDORS, run
from tests.benchmarks import png


def test_workload_is_seeded_and_shaped_as_benchmark_md_says() -> None:
    first, again = workload.build(200, seed=7), workload.build(200, seed=7)
    assert first.stream == again.stream
    assert first.story_events == 9 * 200
    ids = [e["id"] for e in first.stream]
    assert len(ids) > len(set(ids)), "client retries reuse event ids"
    again_ids = [i for i in ids if i.endswith("-again")]
    assert again_ids, "some conversions are reported again with a new id"
    assert any(e["order"]["currency"] == "EUR" for e in first.stream if e["type"] == "friend.converted")


def test_expected_state_ignores_duplicates_and_order() -> None:
    events = workload.build(30, seed=3).stream
    ordered = expected.model_of(events)
    shuffled = expected.model_of(list(reversed(events)) + events[:50])
    for email in ordered.people:
        assert ordered.state(email) == shuffled.state(email)
    referrer = ordered.state("ref000009@bench.example")
    assert (referrer["invites_sent"], referrer["friends_registered"], referrer["friends_converted"]) == (5, 2, 1)
    assert referrer["turnover_currency"] == "EUR"


def test_comparison_catches_a_wrong_count() -> None:
    events = workload.build(5, seed=1).stream
    want = expected.expected_for(events, ["splio"])
    held = {"splio": {e: {"fields": dict(r["fields"]), "lists": sorted(r["lists"]),
                          "marketing_consent": r["consent"] if r["consent"] else None, "deleted": False}
                      for e, r in want.vendors["splio"].items()}}
    assert expected.compare(want, held)["splio"]["mismatched"] == 0
    held["splio"]["ref000001@bench.example"]["fields"]["referral_nb_potential_referred"] = 6
    assert expected.compare(want, held)["splio"]["mismatched"] == 1


def sensible_chart(path: Path) -> png.Image:
    """A real PNG of a readable size that draws something (axes, lines and bars in several colours)."""
    image = png.read(path.read_bytes())
    assert 600 <= image.width <= 2000 and 300 <= image.height <= 1500, (path.name, image.width, image.height)
    assert len(image.colours()) >= 6, f"{path.name} is nearly blank"
    return image


@pytest.mark.timeout(300)
def test_smoke_run_every_vendor_holds_the_expected_state(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Correctness at R = 200, with one short freshness rate; progress goes to stderr as plain
    lines (stderr is not a terminal here), one per step, and every figure lands in the report."""
    result = run(Options(referrers=200, single=False, freshness_rates=(50,), freshness_seconds=1, drain_timeout=90))
    progress = capfd.readouterr().err.splitlines()
    stream = workload.build(200, seed=42).stream
    sent, contacts = len(stream), 600 * len(VENDORS)
    assert f"ingest: {sent:,} events to do" in progress
    assert any(line.startswith(f"ingest: {sent:,}/{sent:,} events (100%)") for line in progress), progress
    assert any(line.startswith(f"drain, no longer waiting: {contacts:,}/{contacts:,} contacts x vendors (100%)")
               for line in progress), progress
    assert any(line.startswith(f"confirm, as expected at the vendors: {contacts:,}/{contacts:,} contacts x vendors (100%)")
               for line in progress), progress
    assert len(progress) < 200, "plain lines are throttled, not one per request"
    assert result["correctness"]["failed_syncs"] == 0
    for vendor in VENDORS:
        assert result["correctness"][vendor]["contacts"] == 600
        assert result["correctness"][vendor]["mismatched"] == 0, result["correctness"][vendor]["examples"]
    # The drain is read at the vendors once they all hold the final state: each has a last write.
    assert not result["drain"]["timed_out"], result["drain"]
    assert set(result["drain"]["per_vendor_s"]) == set(VENDORS)
    assert all(seconds > 0 for seconds in result["drain"]["per_vendor_s"].values()), result["drain"]
    # CPU per event counts the events the ledger accepted: each distinct event id once.
    cpu = result["cpu_per_event_us"]
    assert cpu["accepted_events"] == len({e["id"] for e in stream}) and cpu["events_sent"] == sent
    assert cpu["total"] == cpu["http"] + cpu["redis"] + cpu["workers"] > 0
    # Redis memory: the families count what the workload created, read from the keyspace.
    families = result["redis_memory"]["families"]
    assert families["contact hashes"]["keys"] == 600
    assert families["dedupe markers"]["keys"] == cpu["accepted_events"]
    assert "dirty sets" not in families, "drained: nothing waits, so no dirty set is left"
    assert "pushed fingerprints" not in families, "what was pushed is a field of the contact hashes (layout 6)"
    assert families["timelines"]["sync_path"] is False and families["contact hashes"]["sync_path"] is True
    assert result["redis_memory"]["used_memory_per_referrer"] > 0
    projection = result["redis_memory"]["projection_10m"]
    assert projection["used_memory_bytes"] > projection["sync_path_bytes"] > 0
    # Freshness: the one rate, every vendor's percentiles and what its declared limits allow.
    (fresh,) = result["freshness"]["rates"]
    assert fresh["rate"] == 50 and fresh["events"] == 300 and fresh["probes"] > 0
    assert set(fresh["vendors"]) == set(fresh["limits"]) == set(VENDORS)
    assert all(isinstance(v["can_meet"], bool) and v["why"] for v in fresh["limits"].values())
    json_path, md_path = report.write(result, tmp_path)
    assert json.loads(json_path.read_text())["referrers"] == 200 and md_path.exists()
    assert "Freshness at 50 events/s" in md_path.read_text() and "Redis memory per referrer" in md_path.read_text()
    for name in ("backlog", "calls", "freshness", "memory"):
        sensible_chart(tmp_path / f"{name}.png")


@pytest.mark.timeout(240)
def test_ctrl_c_tears_the_stack_down_and_says_which_phases_finished(tmp_path: Path) -> None:
    """Ctrl-C once the ingest has begun (its first progress line is the synchronisation point):
    exit 130, the phases before it finished, one stopped, the rest not started or skipped, no
    report written and nothing of the stack left: its temp dir gone, no process naming it."""
    root = Path(__file__).resolve().parents[2]
    bench = subprocess.Popen([sys.executable, "-m", "benchmarks", "--referrers", "200", "--no-single",
                              "--no-freshness", "--out", str(tmp_path / "out")], cwd=root,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert bench.stderr is not None
        seen = []
        for line in bench.stderr:
            seen.append(line)
            if line.startswith("ingest:"):
                break
        assert seen and seen[-1].startswith("ingest:"), seen
        bench.send_signal(signal.SIGINT)
        out, err = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 130, err
    assert "Traceback" not in err
    states = dict(re.findall(r"^  (\S.*?)  +(finished|stopped|not started|skipped|failed)$", err, re.M))
    assert states["workload and floor"] == states["stack"] == "finished", err
    assert list(states.values()).count("stopped") == 1, err
    assert states["single"] == states["freshness"] == "skipped", err
    assert "not started" in states.values(), err
    assert not (tmp_path / "out" / "latest.json").exists()
    stack_dir = re.search(r"logs (/\S+)/logs", out)
    assert stack_dir, out
    assert not Path(stack_dir.group(1)).exists()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert stack_dir.group(1) not in cmdline, (entry.name, cmdline)


def test_charts_of_a_full_report_and_of_missing_figures(tmp_path: Path) -> None:
    """The committed R = 10,000 report (freshness and memory included) draws all four; a report
    without a section skips its chart instead of failing."""
    result = json.loads((report.REPORTS / "latest.json").read_text())
    written = charts.draw(result, tmp_path / "full")
    assert [p.name for p in written] == ["backlog.png", "calls.png", "freshness.png", "memory.png"]
    for path in written:
        sensible_chart(path)
    partial = {"referrers": 5, "drain": {"backlog_trace": "not a list"}, "calls": {"splio": {"total": 3}}}
    assert [p.name for p in charts.draw(partial, tmp_path / "partial")] == ["calls.png"]


def test_the_charts_the_docs_show_are_sensible_pngs() -> None:
    shown = sorted((report.REPORTS.parent.parent / "docs" / "benchmark").glob("*.png"))
    assert {p.name for p in shown} >= {"backlog.png", "calls.png", "freshness.png", "memory.png"}
    for path in shown:
        sensible_chart(path)


def test_the_png_reader_is_not_fooled() -> None:
    blob = (report.REPORTS.parent.parent / "docs" / "benchmark" / "calls.png").read_bytes()
    png.read(blob)
    broken = bytearray(blob)
    broken[40] ^= 0xFF          # inside IHDR's body or the first chunk after it: a CRC no longer matches
    with pytest.raises(AssertionError):
        png.read(bytes(broken))
