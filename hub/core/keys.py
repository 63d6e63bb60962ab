"""Every Redis key the hub writes, named in one place.

A name with `{}` is a template: `.format()` it with the connector, feed, endpoint or person it
belongs to. The ledger's Lua step (hub/core/ledger.lua) receives PREFIX as an argument and builds the
same names inside the script: `c:<email>`, `c:<email>:n`, `c:<email>:orders`, `c:<email>:log`, `dirty:<connector>`, `erase:<connector>`, `ver`,
`seen:<id>`, `order:<id>`, `erased:<tag>`, `events`, `last:`, `suspect:` below.
"""
from __future__ import annotations

PREFIX = "hub:"

# -- the ledger: contacts and their state ---------------------------------------------------
CONTACT = PREFIX + "c:{}"                 # hash: one contact's state (fields, `field@` timestamps)
CONTACT_PREFIX = PREFIX + "c:"
PUSHED_FIELD = "p:{}"                     # field of hub:c:<email> per connector: what was last pushed (hub/core/pushstate.py)
CONTACT_LINKS = PREFIX + "c:{}:n"         # hash: `f:<friend>`, `r:<referrer>`, `g:`/`v:<friend's SHA-1>`, `o:<order id>` credited
DIRTY = PREFIX + "dirty:{}"               # zset per connector: email -> when it is due for a push
ERASE = PREFIX + "erase:{}"               # zset per connector: emails to delete at the vendor
VERSIONS = PREFIX + "ver"                 # hash: email -> version, bumped by every change
ERASED = PREFIX + "erased:{}"             # string per erased person (keyed hash): when
SEEN = PREFIX + "seen:{}"                 # string per event id: dedupe window
EVENTS = PREFIX + "events"                # stream: the event log
LAYOUT = PREFIX + "layout"                # string: the data layout version (hub/core/migrate.py); absent = 1
LAYOUT_LOCK = PREFIX + "layout:lock"      # lock held while a migration runs

# -- sync: pushes, back-off, pause ----------------------------------------------------------
PUSHED = PREFIX + "pushed:{}"             # hash per connector up to layout 5 (email -> pushed JSON); layout 6 moves it to PUSHED_FIELD
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
RESYNC_RUN = PREFIX + "resync:run:{}"     # hash per connector list: where a re-sync of every contact got to (SCAN cursor, done)
TOKEN = PREFIX + "token:{}"               # string per connector: its vendor access token, Fernet-encrypted with a key
                                          # derived from the connector's credentials; expires before the token does

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

# -- failed syncs: an index derived from RQ's failed registries (hub/core/failindex.py) ----------
FAIL_INDEX = PREFIX + "fx:{}"             # zset: failed job id -> when, per filter ("all", "c=<connector>|x=<class>" ...)
FAIL_INDEX_META = PREFIX + "fx:meta"      # hash: failed job id -> JSON of the index keys it is in
FAIL_INDEX_PERSON = PREFIX + "fx:p:{}"    # set per contact id: the failed syncs naming that contact

# -- contacts: the index and timelines (hub/core/timeline.py) -----------------------------------
CONTACT_INDEX = PREFIX + "contacts"       # zset: email -> last activity, every contact the hub holds
CONTACT_INDEX_BUILT = PREFIX + "contacts:built"  # string: set once the index was filled from the ledger
TIMELINE = PREFIX + "tl:{}"               # list per email: what happened to the contact, oldest first
TIMELINE_SHAPES = PREFIX + "tl:shapes"    # hash: shape id -> JSON, the field names and lists push entries share

# -- ingest admission (hub/core/admission.py) ------------------------------------------------
METRIC_REFUSED = PREFIX + "m:refused"     # hash: reason -> ingest requests answered 503
DURABLE = PREFIX + "durable"              # counter: bumped before each WAIT, so the WAIT has a write to wait for

# -- API jobs (hub/core/tasks.py) -------------------------------------------------------------
JOB = PREFIX + "job:{}"                   # hash per job id: kind, state, done, total, result ...
JOBS = PREFIX + "jobs"                    # zset: job id -> created, for the list

# -- the console (hub/console/session.py) and its overview (hub/core/recent.py) ---------------
CONSOLE_SESSION = PREFIX + "console:session:{}"  # string per SHA-256 of a session id: its JSON (who, role, CSRF token)
RECENT_CALLS = PREFIX + "recent:{}"       # hash per minute: "<connector>\t<status>" -> vendor calls

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


def in_ledger(name: str, prefix: str = PREFIX) -> str:
    """A ledger key by its name relative to the ledger's prefix (`c:<email>`, `seen:<id>`, as
    ledger.lua builds them): PREFIX for the real ledger, a PREVIEW scratch prefix for a copy."""
    return prefix + name


def contact(email: str) -> str:
    return CONTACT.format(email)


def dirty(connector: str) -> str:
    return DIRTY.format(connector)


def erase(connector: str) -> str:
    return ERASE.format(connector)


# -- the console's short history (hub/core/history.py): aggregates only, never a person ------
HISTORY = PREFIX + "hist:{}"              # hash per minute since the epoch, expires after 2 h:
                                          # "<connector>\tbacklog" -> contacts waiting (sampled),
                                          # "<connector>\tfresh\t<le|n|sum|max>" -> push freshness
