"""Every Redis key the hub writes, named in one place.

A name with `{}` is a template: `.format()` it with the connector, feed, endpoint or person it
belongs to. The ledger's Lua step (hub/core/ledger.lua) receives PREFIX as an argument and builds the
same names inside the script: `c:<email>`, `c:<email>:n`, `c:<email>:orders`, `c:<email>:log`, `dirty:<connector>`, `erase:<connector>`, `ver`,
`seen:<id>`, `order:<id>`, `erased:<tag>`, `events`, `last:`, `pushed:`, `suspect:` below.
"""
from __future__ import annotations

PREFIX = "hub:"

# -- the ledger: contacts and their state ---------------------------------------------------
CONTACT = PREFIX + "c:{}"                 # hash: one contact's state (fields, `field@` timestamps)
CONTACT_PREFIX = PREFIX + "c:"
CONTACT_LINKS = PREFIX + "c:{}:n"         # hash: `f:<friend>`, `r:<referrer>`, `g:`/`v:<friend's SHA-1>`, `o:<order id>` credited
DIRTY = PREFIX + "dirty:{}"               # zset per connector: email -> when it is due for a push
ERASE = PREFIX + "erase:{}"               # zset per connector: emails to delete at the vendor
VERSIONS = PREFIX + "ver"                 # hash: email -> version, bumped by every change
ERASED = PREFIX + "erased:{}"             # string per erased person (keyed hash): when
SEEN = PREFIX + "seen:{}"                 # string per event id: dedupe window
EVENTS = PREFIX + "events"                # stream: the event log

# -- sync: pushes, back-off, pause ----------------------------------------------------------
PUSHED = PREFIX + "pushed:{}"
PAUSED = PREFIX + "paused:{}"
BACKOFF = PREFIX + "backoff:{}"
ATTEMPTS = PREFIX + "attempts:{}"
LAST = PREFIX + "last:{}"
LAST_OK = PREFIX + "lastok:{}"              # when a push to the connector last succeeded (a time, no contact)
SUSPECT = PREFIX + "suspect:{}"           # contacts a superseded flush wrote: pushed again whatever the fingerprint
RETRY = PREFIX + "flushretry:{}"          # a flush is scheduled for when another holder's lease ends
FLUSH_FLAG = PREFIX + "flushq:{}"         # set while a flush job is queued or running
RATE_LIMIT = PREFIX + "rl"                # prefix of the vendors' rate-limiter buckets
LEASE = PREFIX + "lease:{}"               # a named lease (hub/core/lease.py)
FENCE = PREFIX + "fence:{}"               # its fencing token counter
CRON = PREFIX + "cron:{}:{}"              # periodic job name, slot: taken once per slot

# -- vendor bulk jobs ----------------------------------------------------------------------
VENDOR_JOBS = PREFIX + "vjobs:{}"         # zset: job reference -> when its next check is due
VENDOR_JOB = PREFIX + "vjob:{}:{}"        # hash: one vendor job's data
VENDOR_WAITING = PREFIX + "vjobwait:{}"   # hash: email -> the job reference it waits on

# -- metrics (hashes of counters) -----------------------------------------------------------
METRIC_SEP = "\t"                           # joins a counter's labels into its hash field
METRIC_EVENTS = PREFIX + "m:events"       # type, source, outcome -> count (written by the ledger's script)
METRIC_CALLS = PREFIX + "m:calls"         # connector, status -> count
METRIC_CONTACTS = PREFIX + "m:contacts"   # connector, outcome -> count
METRIC_BACKOFFS = PREFIX + "m:backoffs"   # connector, reason -> count
METRIC_LATENCY = PREFIX + "m:latency"     # connector, le|sum|count -> value
METRIC_SWEEPS = PREFIX + "m:sweeps"       # connector -> flushes the periodic sweep had to queue
METRIC_FEEDS = PREFIX + "m:feeds"         # feed, what -> count
METRIC_AUDIT = PREFIX + "m:audit"         # connector, outcome -> count
METRIC_AUDIT_RUNS = PREFIX + "m:audit_runs"

# -- mappings -------------------------------------------------------------------------------
MAPPING_CURRENT = PREFIX + "mapping:{}:current"
MAPPING_VERSIONS = PREFIX + "mapping:{}:versions"
MAPPING_SEQ = PREFIX + "mapping:{}:seq"

# -- webhooks -------------------------------------------------------------------------------
IDENT = PREFIX + "ident:{}"               # hash: platform person id -> email, per source
CODES = PREFIX + "ident:code"             # hash: PROMO CODE -> email (or AMBIGUOUS), all sources
PARKED = PREFIX + "parked:{}"             # hash per handle: event id -> event JSON, waiting for an email
PARKED_INDEX = PREFIX + "parked"          # zset: handle -> first parked at
REJECTED = PREFIX + "webhooks:rejected"   # stream: events the hub could not validate
WEBHOOK_STATS = PREFIX + "webhooks:stats"  # hash: "<source>:<outcome>:<type>" -> count

# -- anti-entropy audit ---------------------------------------------------------------------
AUDIT_OPEN = PREFIX + "audit:open:{}"
AUDIT_LAST = PREFIX + "audit:last:{}"     # the connector's last run, counts only

# -- the outbound event feed ----------------------------------------------------------------
FEED_CURSOR = PREFIX + "feed:cursor"
FEED_TIMES = PREFIX + "feed:times"
FEED_ERASURES = PREFIX + "feed:erasures"        # bumped by every erasure
FEED_EPHEMERAL = PREFIX + "feed:ephemeral"      # erasure messages, dropped once delivered everywhere
FEED_FAILED_SEEN = PREFIX + "feed:failed-seen"  # failed syncs already sent as sync.failed
FEED_LANE = PREFIX + "feed:lane:{}"
FEED_STATE = PREFIX + "feed:state:{}"
FEED_WHO = PREFIX + "feed:who:{}"
FEED_MESSAGE = PREFIX + "feed:m:{}"
FEED_TRIES = PREFIX + "feed:tries:{}"
FEED_ATTEMPTS = PREFIX + "feed:attempts:{}"
FEED_LAGS = PREFIX + "feed:lags:{}"
FEED_ENDPOINTS = PREFIX + "feed:endpoints"      # id -> JSON record (no secret)
FEED_SECRETS = PREFIX + "feed:secrets"          # id -> JSON list of encrypted secrets

# -- SFTP feeds -----------------------------------------------------------------------------
FEEDS_EXPORT_STATUS = PREFIX + "feeds:export:{}:status"
FEEDS_EXPORT_SLOT = PREFIX + "feeds:export:{}:slot"
FEEDS_MAPPING = PREFIX + "feeds:{}:mapping"
FEEDS_CLAIM = PREFIX + "feeds:{}:claim:{}"
FEEDS_DONE = PREFIX + "feeds:{}:done"
FEEDS_STATUS = PREFIX + "feeds:{}:status"
FEEDS_ACTIVE = PREFIX + "feeds:{}:active"

# -- scratch space ----------------------------------------------------------------------------
PREVIEW = PREFIX + "preview:{}:"          # a preview's throwaway copy of the ledger


def contact(email: str) -> str:
    return CONTACT.format(email)


def dirty(connector: str) -> str:
    return DIRTY.format(connector)


def erase(connector: str) -> str:
    return ERASE.format(connector)
