"""The ledger: each event applied in one atomic Redis step (hub/core/ledger.lua), and contact state
read back as the plain dict the mappings render."""
from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from importlib import resources
from typing import Any, Callable, Iterable

import msgspec

from hub.core import keys, services, timeline
from hub.core.erasure import Keyed, seen_id
from hub.core.queue import FLAG_TTL

PREFIX = keys.PREFIX
SCALE = Decimal(10_000)          # money is stored as integer ten-thousandths: exact in Redis
COUNTERS = ("invites_sent", "friends_registered", "friends_converted", "rewards_earned")
PARTY_FIELDS = ("first_name", "last_name", "customer_id", "locale")
MAX_DEFER = 60.0                 # a dirty contact is pushed at most this long after it became dirty
SEP = keys.METRIC_SEP
# JSON as the step reads it (UTF-8; Decimal as its text), about ten times as fast as json.dumps
ENCODE = msgspec.json.Encoder().encode
SOURCE = resources.files("hub.core").joinpath("ledger.lua").read_text()  # the one atomic step; its key prefix is ARGV[2]
# What ingest runs: the ledger step, then the timelines of the events it applied, in one script
# call (one round trip a request). The step runs as written in ledger.lua, as a function; the
# timeline's entries come as an extra last argument, taken off before the step reads ARGV.
def with_timelines(source: str) -> str:
    """The ledger step `source`, followed in the same script by the timelines of what it applied."""
    return (timeline.AFTER_LEDGER + "local tl = cjson.decode(table.remove(ARGV))\n"
            "local function ledger_step()\n" + source + "\nend\n"
            "local answer = ledger_step()\n"
            "if #answer == 2 then record_applied(answer[1], tl) end\n"
            "return answer\n")


STEP = with_timelines(SOURCE)
# A step written before the shared settings and the logged events travelled apart (ARGV[3]
# `op`, ARGV[4]) and empty field sets were left out read every operation whole. Prefixed to such
# a step (layout 3's, which tests/hub/test_migrate.py runs, or one handed to
# `python -m benchmarks.redis_cost --growth --ledger-script`), this puts each operation back
# together; an operation's own fields win.
WHOLE_OPERATIONS = """
local meta, ops, logs = cjson.decode(ARGV[3]), cjson.decode(ARGV[1]), {}
for line in string.gmatch(ARGV[4], '[^\\n]+') do logs[#logs + 1] = line end
for i, o in ipairs(ops) do
  for f, v in pairs(meta.op) do
    if o[f] == nil then o[f] = v end
  end
  o.log, o.metric = o.log or logs[i], o.metric or (o.type .. meta.source)
  for _, role in ipairs({'referrer', 'friend', 'contact'}) do o[role .. '_set'] = o[role .. '_set'] or {} end
end
ARGV[1] = cjson.encode(ops)
table.remove(ARGV, 4)
"""


class LedgerRefused(Exception):
    """The ledger step refused a batch before its first write: nothing of it was applied."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(f"event {index}: {field}: {message}")
        self.index, self.field, self.message = index, field, message


key = keys.contact
dirty_key = keys.dirty
erase_key = keys.erase


def scaled(amount: Decimal) -> str:
    return str(int((amount * SCALE).to_integral_value()))


def unscaled(value: str | bytes) -> Decimal:
    """Scaled integer back to Decimal, with at least two places ("59.90", "0.1234")."""
    amount = Decimal(int(value)) / SCALE
    cents = amount.quantize(Decimal("0.01"))
    return cents if cents == amount else amount.normalize()


def _values(part: dict[str, Any] | None, names: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        value = (part or {}).get(name)
        if value is None:
            continue
        out[name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


def operation(event: dict[str, Any], connectors: list[str], config: dict[str, Any],
              mac: Keyed | None = None) -> dict[str, Any]:
    """The JSON the Lua step reads: emails, the scalar fields to set, money as scaled ints."""
    return {**shared(connectors, config), **own(event, mac or services.current().erasure)}


def shared(connectors: list[str], config: dict[str, Any]) -> dict[str, Any]:
    """What every operation of a batch shares (the step takes it once, in its ARGV[3] `op`)."""
    return {"conns": connectors, "ttl": config["DEDUPE_DAYS"] * 86400, "maxlen": config["EVENT_LOG_MAXLEN"]}


ROLES = (("referrer", PARTY_FIELDS + ("referrer_id", "share_url")),
         ("friend", PARTY_FIELDS + ("marketing_opt_in", "promo_code")),
         ("contact", PARTY_FIELDS + ("marketing_opt_in",)))


def own(event: dict[str, Any], mac: Keyed) -> dict[str, Any]:
    """What is the event's own in its operation: everything but `shared`. A party's `<role>_set`
    (the scalar fields to set) is left out when the event gives none."""
    op: dict[str, Any] = {"id": event["id"], "type": event["type"], "ts": event["occurred_at"]}
    tags: dict[str, str] = {}
    for role, names in ROLES:
        part = event.get(role)
        if not part:
            continue
        email = part.get("email")
        if email:
            op[role] = email
            if email not in tags:  # the keyed hash the ledger looks erasure up by (hub/core/erasure.py)
                tags[email] = mac(email)
        if len(part) > 1:
            values = _values(part, names)
            if values:
                op[role + "_set"] = values
    if tags:
        op["tags"] = tags
    seen = seen_id(event["id"], mac)
    if seen:
        op["seen"] = seen
    if event.get("order"):
        order = event["order"]
        op["order"] = {"id": order["id"], "amount": scaled(order["total"]), "currency": order["currency"]}
    if event.get("reward"):
        reward = event["reward"]
        op["reward"] = {"recipient": reward["recipient"], "code": reward.get("code"),
                        "value": scaled(reward["value"]) if reward.get("value") is not None else None,
                        "currency": reward.get("currency")}
    return op


class Ledger:
    """Applies events and reads state; one per process, in the services (hub.core.bootstrap)."""

    def __init__(self, redis: Any, config: dict[str, Any], erasure: Keyed, prefix: str = PREFIX,
                 forget: Callable[[list[str]], Any] | None = None) -> None:
        self.redis = redis
        self.forget = forget      # what else names erased people (hub.core.forget.forget): wired by hub.core.bootstrap
        self.config = config
        self.erasure = erasure
        self.prefix = prefix
        self.script = redis.register_script(SOURCE)      # the bare step (previews run it on a scratch prefix)
        self.step = redis.register_script(STEP)

    def windows(self, connectors: list[str]) -> list[float]:
        """Seconds each connector lets a contact rest after its last touch before pushing it:
        HUB_FLUSH_WINDOW_<CONNECTOR>, else the connector's own `coalesce_seconds` (vendors whose
        updates cost one call per record wait longer), else HUB_FLUSH_WINDOW; none when
        HUB_FLUSH_WINDOW is 0."""
        from connectors import CONNECTORS

        if not self.config["FLUSH_WINDOW"]:
            return [0.0] * len(connectors)      # HUB_FLUSH_WINDOW=0: push at once (tests)
        out = []
        for name in connectors:
            value = self.config.get(f"FLUSH_WINDOW_{name.upper()}")
            if value in (None, ""):
                value = getattr(CONNECTORS.get(name), "coalesce_seconds", None)
            out.append(float(self.config["FLUSH_WINDOW"] if value is None else value))
        return out

    def apply_each(self, events: list[dict[str, Any]], connectors: list[str], source: str = "api",
                   flags: list[str] | None = None) -> tuple[list[bool], list[int]]:
        """Apply events in order, all or nothing; (True where applied / False for a duplicate,
        the indexes of the `flags` this call set). Events are counted for /metrics by type,
        `source` and outcome in the same call. One script call takes the whole batch (at most
        HUB_MAX_EVENTS), so the step's bound checks cover every event before anything is written;
        LedgerRefused names the event and field when a running total would overflow."""
        if not events:
            return [], []
        common = {**shared(connectors, self.config), "wins": self.windows(connectors),
                  "cap": float(self.config.get("FLUSH_MAX_DEFER") or MAX_DEFER)}
        ops = [own(event, self.erasure) for event in events]
        # each event as logged, one a line: JSON escapes every line break inside a text
        logs = b"\n".join(map(ENCODE, events))
        meta = json.dumps({"metrics": keys.METRIC_EVENTS, "flags": flags or [], "ttl": FLAG_TTL,
                           "source": f"{SEP}{source}{SEP}", "op": common})
        # the contact index and each applied event's timeline entries are written by the same call
        entries = json.dumps(timeline.applied_entries(events, source), separators=(",", ":"))
        answer = self.step(args=[ENCODE(ops), self.prefix, meta, logs, entries])
        if len(answer) == 3:
            index, field, message = answer[2]
            raise LedgerRefused(int(index) - 1, field.decode(), message.decode())
        done, flagged = answer
        erased = sorted({e["contact"]["email"] for e in events if e["type"] == "contact.erased"})
        if erased and self.forget:  # duplicates too: a retried erasure finishes the job
            self.forget(erased)
        return [r == 1 for r in done], sorted(i - 1 for i in flagged)

    def apply(self, events: list[dict[str, Any]], connectors: list[str]) -> tuple[int, int]:
        """Apply events in order, each atomically; returns (accepted, duplicates)."""
        outcomes, _ = self.apply_each(events, connectors)
        accepted = sum(outcomes)
        return accepted, len(outcomes) - accepted

    def raw(self, emails: list[str]) -> list[dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for email in emails:
            pipe.hgetall(key(email))
        return [{k.decode(): v.decode() for k, v in row.items()} for row in pipe.execute()]

    def states(self, emails: list[str]) -> dict[str, dict[str, Any] | None]:
        """email -> state (the dict mappings read), None for unknown or erased contacts."""
        return self.states_of(emails, self.raw(emails))

    def states_of(self, emails: list[str], rows: list[dict[str, str]]) -> dict[str, dict[str, Any] | None]:
        """`states` from the contact hashes as read (decoded), e.g. in a caller's pipeline."""
        return {email: (state_of(email, row, self.config["CURRENCY"]) if row else None)
                for email, row in zip(emails, rows)}

    def state(self, email: str) -> dict[str, Any] | None:
        return self.states([email])[email]

    def is_erased(self, email: str) -> bool:
        return bool(self.redis.exists(keys.ERASED.format(self.erasure(email))))

    def versions(self, emails: list[str]) -> list[int]:
        if not emails:
            return []
        return [int(v or 0) for v in self.redis.hmget(keys.VERSIONS, emails)]


def contact_id(email: str) -> str:
    """A stable id that carries no personal data, for vendors that forbid PII in ids."""
    return "rsh_" + hashlib.sha256(email.encode()).hexdigest()[:24]


def state_of(email: str, row: dict[str, str], currency: str) -> dict[str, Any]:
    """The stored hash as the contact state: counters as ints, money as Decimal per currency."""
    # An empty value is one the hub forgot (a friend's referred_by after their referrer's
    # erasure): it stays in the state as None, so every mapping renders an explicit null and the
    # vendor's old value is overwritten rather than left behind.
    state: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()
                             if not k.endswith("@") and ":" not in k}
    state["email"] = email
    state["contact_id"] = contact_id(email)
    for name in COUNTERS:
        if name in state:
            state[name] = int(state[name])
    for flag in ("is_referrer", "is_friend"):
        state[flag] = state.get(flag) == "1"
    if "marketing_opt_in" in state:
        state["marketing_opt_in"] = state["marketing_opt_in"] == "1"
    turnover = {k.split(":", 1)[1]: unscaled(v) for k, v in row.items() if k.startswith("turnover:")}
    state["turnover"] = turnover
    if turnover:
        main = currency if currency in turnover else sorted(turnover)[0]
        state["turnover_amount"], state["turnover_currency"] = turnover[main], main
    elif state["is_referrer"]:
        state["turnover_amount"], state["turnover_currency"] = Decimal("0.00"), currency
    rewards = {k.split(":", 1)[1]: unscaled(v) for k, v in row.items() if k.startswith("reward_value:")}
    if rewards:
        state["reward_value"] = rewards
    if "first_order_total" in state:
        state["first_order_total"] = unscaled(state["first_order_total"])
    state.pop("first_order_at", None)
    return state


def get_ledger() -> Ledger:
    return services.current().ledger
