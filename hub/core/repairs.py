"""The audit's repairs, from queued to landed: the bookkeeping the anti-entropy audit
(hub/core/audit.py) leaves in each contact's hash and the pushes (hub.core.sync, hub.core.vendorjobs)
settle once they land. It sits below all three, so a push closes a repair without importing the audit.
"""
from __future__ import annotations

import json
from typing import Any

from hub.core import keys, metrics, services
from hub.core.ledger import key
from hub.core.mappingstore import now_iso

HISTORY = "audit:history"            # field of hub:c:<email>: newest finding first, bounded
PENDING = "audit:pending"            # field of hub:c:<email>: {connector: when} repairs not landed yet
# How many repairs wait to land for the connector (no emails): pushes look for repairs to close
# only while it is above 0. It lapses a day after the last repair was queued, so a repair that
# can never land (its contact erased meanwhile) does not keep every push looking.
OPEN = keys.AUDIT_OPEN
CONTACTS = metrics.AUDIT             # connector, outcome -> count
RUNS = metrics.AUDIT_RUNS            # connector, outcome -> count

_REMEMBER = """
local function remember(entry, most)
  local raw = redis.call('HGET', KEYS[1], 'audit:history')
  local list = {}
  if raw then list = cjson.decode(raw) end
  table.insert(list, 1, cjson.decode(entry))
  while #list > tonumber(most) do table.remove(list) end
  redis.call('HSET', KEYS[1], 'audit:history', cjson.encode(list))
end
"""
# KEYS: contact hash, open counter. ARGV: connector, entry, history size.
_SETTLE = _REMEMBER + """
local raw = redis.call('HGET', KEYS[1], 'audit:pending')
if not raw then return 0 end
local pending = cjson.decode(raw)
if pending[ARGV[1]] == nil then return 0 end
pending[ARGV[1]] = nil
if next(pending) == nil then
  redis.call('HDEL', KEYS[1], 'audit:pending')
else
  redis.call('HSET', KEYS[1], 'audit:pending', cjson.encode(pending))
end
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
remember(ARGV[2], ARGV[3])
return 1
"""


def close_repairs(r: Any, connector: str, emails: list[str]) -> int:
    """Called once a push has landed: close the audit repairs waiting on these contacts."""
    if not emails or int(r.get(OPEN.format(connector)) or 0) <= 0:
        return 0
    script = r.register_script(_SETTLE)
    entry = json.dumps({"at": now_iso(), "connector": connector, "event": "repaired"})
    most = services.current().config["AUDIT_HISTORY"]
    pipe = r.pipeline(transaction=False)
    for email in emails:
        script(keys=[key(email), OPEN.format(connector)], args=[connector, entry, most], client=pipe)
    done = sum(int(x) for x in pipe.execute())
    if done:
        count(r, connector, {"repaired": done})
    return done


def count(r: Any, connector: str, outcomes: dict[str, int], run: str | None = None) -> None:
    ops: list[tuple[str, str, float]] = [(CONTACTS, metrics.field(connector, k), n) for k, n in outcomes.items() if n]
    if run:
        ops.append((RUNS, metrics.field(connector, run), 1))
    metrics.add(r, ops)
