"""Redis memory by key family, and Redis CPU, of a hub's store.

    python -m benchmarks.redis_cost --data-dir /tmp/rsh-bench-XXXX/redis --referrers 2000
    python -m benchmarks.redis_cost --url redis://127.0.0.1:6379/5 --referrers 2000
    python -m benchmarks.redis_cost --growth --referrers 10000 [--ledger-script FILE]

`--data-dir` starts the embedded Redis a kept benchmark run left behind (`./dev bench --keep`;
its AOF is loaded again) and stops it afterwards. Every key is read once with `MEMORY USAGE
<key> SAMPLES 0` (exact, not sampled), grouped by family: the key name with each person, connector
and id replaced by a placeholder (`hub:c:*`, `hub:c:*:reg`, `hub:pushed:*`, `hub:seen:*`). Each
family is either the sync path's own (the ledger, dirty sets, fingerprints, dedupe, the event
log) or an optional store (contact index and timelines, replay, RQ's job records), reported
apart. `measure()` returns the figures as a dict, so the benchmark report can use them.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict
from typing import Any

# Families that are not the sync path's own: the console's contact index and timelines, the
# replay and failure indexes, RQ's records of jobs. They are reported apart.
OPTIONAL = ("hub:tl:", "hub:contacts", "hub:fx:", "hub:recent:", "hub:job:", "hub:jobs", "rq:")
CONNECTOR_SCOPED = ("dirty", "erase", "pushed", "last", "lastok", "suspect", "paused", "backoff", "attempts",
                    "flushretry", "flushq", "lease", "fence", "vjobs", "vjobwait", "recent")


def family(name: str) -> str:
    """The key's family: its name with the variable parts replaced by `*`."""
    if name.startswith("hub:c:"):
        rest = name[len("hub:c:"):]
        suffix = re.search(r":([a-z]+)$", rest)
        return "hub:c:*" + (f":{suffix.group(1)}" if suffix and "@" not in suffix.group(1) else "")
    if name.startswith("hub:tl:"):
        return "hub:tl:*"
    parts = name.split(":")
    if parts[0] == "rq":
        return ":".join(parts[:2]) + (":*" if len(parts) > 2 else "")
    if len(parts) >= 3 and parts[1] in CONNECTOR_SCOPED:
        return f"{parts[0]}:{parts[1]}:*"
    if len(parts) >= 3 and parts[1] in ("seen", "order", "erased", "cron", "fx", "job", "parked", "ident"):
        return f"{parts[0]}:{parts[1]}:*"
    return name


def measure(client: Any, referrers: int) -> dict[str, Any]:
    """Memory per key family (bytes, keys, encodings) and INFO memory / cpu, per referrer too."""
    families: dict[str, dict[str, Any]] = defaultdict(lambda: {"bytes": 0, "keys": 0, "encodings": defaultdict(int)})
    for page in _pages(client):
        pipe = client.pipeline(transaction=False)
        for name in page:
            pipe.memory_usage(name, samples=0)
            pipe.object("encoding", name)
        answers = pipe.execute()
        for i, name in enumerate(page):
            used, encoding = answers[2 * i], answers[2 * i + 1]
            entry = families[family(name.decode(errors="replace"))]
            entry["bytes"] += int(used or 0)
            entry["keys"] += 1
            entry["encodings"][encoding.decode() if isinstance(encoding, bytes) else str(encoding)] += 1
    memory, cpu = client.info("memory"), client.info("cpu")
    rows = {name: {"bytes": e["bytes"], "keys": e["keys"], "per_referrer": round(e["bytes"] / referrers, 1),
                   "encodings": dict(e["encodings"])} for name, e in families.items()}
    sync = {n: r for n, r in rows.items() if not n.startswith(OPTIONAL)}
    optional = {n: r for n, r in rows.items() if n.startswith(OPTIONAL)}
    used = int(memory["used_memory"])
    return {
        "referrers": referrers,
        "used_memory": used, "used_memory_dataset": int(memory.get("used_memory_dataset", 0)),
        "used_memory_per_referrer": round(used / referrers, 1),
        "dataset_per_referrer": round(int(memory.get("used_memory_dataset", 0)) / referrers, 1),
        "sync_path_bytes": sum(r["bytes"] for r in sync.values()),
        "sync_path_per_referrer": round(sum(r["bytes"] for r in sync.values()) / referrers, 1),
        "optional_bytes": sum(r["bytes"] for r in optional.values()),
        "optional_per_referrer": round(sum(r["bytes"] for r in optional.values()) / referrers, 1),
        "sync_path": dict(sorted(sync.items(), key=lambda kv: -kv[1]["bytes"])),
        "optional": dict(sorted(optional.items(), key=lambda kv: -kv[1]["bytes"])),
        "cpu": {k: float(cpu[k]) for k in ("used_cpu_sys", "used_cpu_user", "used_cpu_sys_children",
                                           "used_cpu_user_children") if k in cpu},
    }


def _pages(client: Any) -> Any:
    cursor = 0
    while True:
        cursor, names = client.scan(cursor, count=1000)
        if names:
            yield names
        if cursor == 0:
            return


def watch(pattern: str, every: float = 0.5) -> dict[str, Any]:
    """Poll the newest embedded Redis whose socket matches `pattern` until it stops: its last
    INFO cpu and fork counts (a stopped server's counters are gone, so they are read while it runs)."""
    import glob
    import time

    import redis

    while not glob.glob(pattern):
        time.sleep(every)
    socket = max(glob.glob(pattern), key=lambda p: os.path.getmtime(p))
    client = redis.Redis(unix_socket_path=socket, socket_timeout=5)
    last: dict[str, Any] = {}
    while True:
        try:
            info = client.info()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return last
        last = {k: info.get(k) for k in ("used_cpu_sys", "used_cpu_user", "used_cpu_sys_children",
                                         "used_cpu_user_children", "total_forks", "aof_rewrites",
                                         "aof_last_cow_size", "expired_keys", "used_memory", "total_commands_processed")}
        last["socket"] = socket
        time.sleep(every)


def growth(referrers: int, steps: int = 5, ledger_script: str | None = None, batch: int = 100,
           settings: dict[str, str] | None = None) -> dict[str, Any]:
    """Redis CPU per event as the data grows, for the ledger step alone (no flush runs): the
    standard workload applied in `steps` slices to a fresh embedded Redis (AOF on, as the hub
    runs it); after each slice, INFO's CPU (the server's own and its AOF-rewrite children's),
    commands and memory. `ledger_script` swaps in another version of the step (e.g. the layout 3
    one kept in tests/hub/fixtures/) to compare like with like; `settings` override the embedded
    server's configuration (e.g. auto-aof-rewrite-percentage)."""
    import tempfile
    from pathlib import Path

    from sandbox import DEMO_SETTINGS

    from hub import create_app
    from hub.core.ledger import WHOLE_OPERATIONS, get_ledger, with_timelines
    from hub.core.schemas import load_events
    from hub.core import store

    from .workload import build

    folder = Path(tempfile.mkdtemp(prefix="rsh-growth-"))
    defaults = dict(store.SERVER_CONFIG)
    store.SERVER_CONFIG.update(settings or {})
    try:
        server = store.start_embedded(folder / "redis")
    finally:
        store.SERVER_CONFIG.clear()
        store.SERVER_CONFIG.update(defaults)
    config: dict[str, Any] = {"REDIS_URL": server.url, "DATA_DIR": str(folder / "var"), "INGEST_SECRETS": "x" * 32}
    for vendor, settings in DEMO_SETTINGS.items():
        config.update({f"{vendor.upper()}_{k.upper()}": v for k, v in settings.items()})
    stream, problems = load_events(build(referrers).stream)
    assert not problems, problems[:3]
    app = create_app(config)
    rows: list[dict[str, Any]] = []
    try:
        with app.app_context():
            ledger = get_ledger()
            if ledger_script:
                other = WHOLE_OPERATIONS + Path(ledger_script).read_text()   # a step of any age
                ledger.script = server.client.register_script(other)
                ledger.step = server.client.register_script(with_timelines(other))   # what ingest runs
            connectors = sorted(DEMO_SETTINGS)

            def snapshot() -> dict[str, float]:
                info = server.client.info()
                return {"main": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
                        "children": float(info["used_cpu_user_children"]) + float(info["used_cpu_sys_children"]),
                        "commands": float(info["total_commands_processed"]), "forks": float(info.get("total_forks", 0)),
                        "memory": float(info["used_memory"])}

            size = -(-len(stream) // steps)
            for start in range(0, len(stream), size):
                before = snapshot()
                part = stream[start:start + size]
                for i in range(0, len(part), batch):
                    ledger.apply_each(part[i:i + batch], connectors)
                after = snapshot()
                n = len(part)
                rows.append({"events_so_far": start + n, "used_memory_mb": round(after["memory"] / 2**20, 1),
                             "us_per_event_main": round((after["main"] - before["main"]) / n * 1e6, 1),
                             "us_per_event_children": round((after["children"] - before["children"]) / n * 1e6, 1),
                             "commands_per_event": round((after["commands"] - before["commands"]) / n, 1),
                             "forks": int(after["forks"] - before["forks"])})
    finally:
        server.stop()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return {"referrers": referrers, "events": len(stream), "ledger": ledger_script or "hub/core/ledger.lua",
            "settings": settings or {}, "slices": rows}


def table(result: dict[str, Any]) -> str:
    """The breakdown as plain text, largest family first."""
    lines = [f"R = {result['referrers']}: used_memory {result['used_memory_per_referrer']} B a referrer "
             f"(dataset {result['dataset_per_referrer']}); keys: sync path {result['sync_path_per_referrer']} B, "
             f"optional stores {result['optional_per_referrer']} B a referrer"]
    for part in ("sync_path", "optional"):
        lines.append(f"{part}:")
        for name, row in result[part].items():
            encodings = ", ".join(f"{k} {v}" for k, v in row["encodings"].items())
            lines.append(f"  {name:<28} {row['per_referrer']:>9} B/referrer  {row['keys']:>8} keys  {encodings}")
    return "\n".join(lines)


def main() -> None:
    import redis

    from hub.core.store import Embedded, connect

    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a Redis URL (its current database is read)")
    where.add_argument("--data-dir", help="the embedded Redis folder of a kept benchmark run")
    where.add_argument("--growth", action="store_true", help="apply the workload to a fresh embedded Redis "
                       "through the ledger step alone and print Redis CPU per event as the data grows")
    where.add_argument("--watch", metavar="GLOB", help="poll the newest embedded Redis socket matching GLOB "
                       "(e.g. '/tmp/rsh-bench-*/redis/redis.sock') until it stops; print its last INFO cpu")
    parser.add_argument("--referrers", type=int, default=0, help="R of the run, to divide by")
    parser.add_argument("--json", action="store_true", help="print JSON rather than a table")
    parser.add_argument("--ledger-script", help="with --growth: another version of hub/core/ledger.lua to run")
    parser.add_argument("--redis-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="with --growth: a setting of the embedded Redis (repeatable)")
    args = parser.parse_args()
    if args.watch:
        print(json.dumps(watch(args.watch), indent=1))
        return
    if args.referrers <= 0:
        parser.error("--referrers: give the R of the run (a positive number)")
    if args.growth:
        settings = dict(item.split("=", 1) for item in args.redis_setting)
        print(json.dumps(growth(args.referrers, ledger_script=args.ledger_script, settings=settings), indent=1))
        return
    server = None
    if args.data_dir:
        server = Embedded.of(args.data_dir)
        server.start(timeout=300)
        client = connect(server.url)
    else:
        client = redis.Redis.from_url(args.url)
    try:
        result = measure(client, args.referrers)
    finally:
        client.close()
        if server is not None:
            server.stop()
    print(json.dumps(result, indent=1) if args.json else table(result))


if __name__ == "__main__":
    main()
