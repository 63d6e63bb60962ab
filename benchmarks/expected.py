"""The final state every vendor must hold, computed from the event list alone.

A plain-Python model of the counting rules, independent of the hub's ledger: an event id counts
once, an order id counts once, friends are counted once each, turnover is summed per currency,
and last-writer-wins fields go by occurred_at whatever the arrival order. The state is turned
into each vendor's fields, lists and consent by `DEFAULTS`, this module's own copy of the shipped
default mappings written out by hand, with its own value conversions (`convert`): nothing here
imports the hub, its mappings or its connectors, so a bug in a transform, a list condition or
consent handling shows up as mismatches. A test checks `DEFAULTS` against mappings/defaults/ so
the two cannot drift apart silently. The result is compared with what the sandbox holds, each
vendor's storage quirks (Emarsys field ids and strings, Ometria properties, Splio casts)
normalised in `normalise`.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable

# Values a vendor requires that the connector fills in where the hub knows nothing (Salesforce
# creates no Contact without a LastName; docs/connectors say what it writes).
VENDOR_FILLERS = {("salesforce", "LastName"): ("[not provided]",)}
CURRENCY = "GBP"      # the programme currency preferred for the turnover fields (HUB_CURRENCY)

# The shipped default mappings, written out: per vendor the identity (field, source), each field
# as (target, source, conversion), each list as id -> (kind, condition), and whether consent
# follows the person's marketing opt-in. Conversions: "" as is, "string", "integer", "upper",
# "decimal:2" (rounded half up to 2 places), "date:<format>" (see `convert`).
# Conditions: "marketing_opt_in" (opted in), "converted" (bought).
DEFAULTS: dict[str, dict[str, Any]] = {
    "klaviyo": {
        "identity": ("email", "email"),
        "fields": [
            ("first_name", "first_name", ""), ("last_name", "last_name", ""),
            ("referral_referrer_id", "referrer_id", ""), ("referral_share_url", "share_url", ""),
            ("referral_friends_invited", "invites_sent", "integer"),
            ("referral_friends_signed_up", "friends_registered", "integer"),
            ("referral_friends_converted", "friends_converted", "integer"),
            ("referral_turnover", "turnover_amount", "decimal:2"),
            ("referral_turnover_currency", "turnover_currency", ""),
            ("referral_rewards_earned", "rewards_earned", "integer"),
            ("referral_referred_by", "referred_by", ""), ("referral_promo_code", "promo_code", ""),
            ("referral_registered_at", "registered_at", "date:iso"),
            ("referral_converted_at", "converted_at", "date:iso"),
        ],
        "lists": {"RfMkt1": ("marketing", "marketing_opt_in"), "RfTxn1": ("transactional", "converted")},
        "consent": True,
    },
    "emarsys": {
        "identity": ("3", "email"),
        "fields": [
            ("1", "first_name", ""), ("2", "last_name", ""),
            ("12001", "invites_sent", "integer"), ("12002", "friends_registered", "integer"),
            ("12003", "friends_converted", "integer"), ("12004", "referrer_id", ""),
            ("12005", "turnover_amount", "decimal:2"), ("12006", "share_url", ""),
            ("12007", "referred_by", ""), ("12008", "promo_code", ""),
            ("12009", "turnover_currency", "upper"), ("12010", "last_activity_at", "date:emarsys"),
        ],
        "lists": {"740001": ("marketing", "marketing_opt_in"), "740002": ("transactional", "converted")},
        "consent": True,
    },
    "salesforce": {
        "identity": ("Referral_Hub_Email__c", "email"),
        "fields": [
            ("Email", "email", ""), ("FirstName", "first_name", ""), ("LastName", "last_name", ""),
            ("Referral_Referrer_Id__c", "referrer_id", ""), ("Referral_Share_URL__c", "share_url", ""),
            ("Referral_Friends_Invited__c", "invites_sent", "integer"),
            ("Referral_Friends_Registered__c", "friends_registered", "integer"),
            ("Referral_Friends_Converted__c", "friends_converted", "integer"),
            ("Referral_Turnover__c", "turnover_amount", "decimal:2"),
            ("Referral_Turnover_Currency__c", "turnover_currency", "upper"),
            ("Referral_Referred_By__c", "referred_by", ""), ("Referral_Promo_Code__c", "promo_code", ""),
            ("Referral_Last_Activity__c", "last_activity_at", "date:iso"),
        ],
        "lists": {"701Rf000000Mkt1AAA": ("marketing", "marketing_opt_in"),
                  "701Rf000000Txn1AAA": ("transactional", "converted")},
        "consent": True,
    },
    "ometria": {
        "identity": ("id", "contact_id"),
        "fields": [
            ("firstname", "first_name", ""), ("lastname", "last_name", ""), ("customer_id", "customer_id", ""),
            ("referrer_id", "referrer_id", "string"), ("share_url", "share_url", "string"),
            ("friends_invited", "invites_sent", "integer"), ("friends_registered", "friends_registered", "integer"),
            ("friends_converted", "friends_converted", "integer"),
            ("referral_turnover", "turnover_amount", "decimal:2"),
            ("referral_currency", "turnover_currency", "upper"), ("rewards_earned", "rewards_earned", "integer"),
            ("referred_by", "referred_by", "string"), ("promo_code", "promo_code", "string"),
            ("referral_last_activity", "last_activity_at", "date:iso"),
        ],
        "lists": {"8400": ("marketing", "marketing_opt_in"), "8401": ("transactional", "converted")},
        "consent": True,
    },
    "splio": {
        "identity": ("email", "email"),
        "fields": [
            ("firstname", "first_name", ""), ("lastname", "last_name", ""),
            ("referral_nb_potential_referred", "invites_sent", "integer"),
            ("referral_nb_converted_prospects", "friends_registered", "integer"),
            ("referral_nb_converted_customers", "friends_converted", "integer"),
            ("referral_turnover_generated", "turnover_amount", "decimal:2"),
            ("referral_referrer_id", "referrer_id", "string"), ("referral_promocode", "promo_code", "string"),
            ("referral_share_url", "share_url", "string"), ("referral_referred_by", "referred_by", "string"),
            ("referral_last_activity", "last_activity_at", "date:splio"),
        ],
        "lists": {"25": ("marketing", "marketing_opt_in"), "26": ("transactional", "converted")},
        "consent": True,
    },
}
# The workload's timestamps: UTC, milliseconds, "Z".
STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?Z$")


@dataclass
class Person:
    email: str
    lww: dict[str, tuple[str, str]] = field(default_factory=dict)   # field -> (occurred_at, value)
    last_activity: str = ""
    is_referrer: bool = False
    is_friend: bool = False
    invites: int = 0
    friends: set[str] = field(default_factory=set)          # distinct friends registered (or converted)
    converted_friends: set[str] = field(default_factory=set)
    referred_by: tuple[str, str] | None = None               # (occurred_at, referrer): earliest claim wins
    registered_at: str | None = None
    converted_at: str | None = None
    enrolled_at: str | None = None


def norm_time(value: str) -> str:
    """Sortable UTC text; the workload always sends ...Z with milliseconds."""
    return value


class Model:
    """Apply events in any order; `state(email)` is the dict the mappings render."""

    def __init__(self, currency: str = CURRENCY) -> None:
        self.currency = currency
        self.people: dict[str, Person] = {}
        self.seen: set[str] = set()
        self.orders: dict[str, tuple[str, str, Decimal, str]] = {}   # order id -> (friend, referrer, amount, cur)

    def person(self, email: str) -> Person:
        email = email.strip().lower()
        if email not in self.people:
            self.people[email] = Person(email)
        return self.people[email]

    def set_lww(self, person: Person, ts: str, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if value is None or value == "":
                continue
            text = ("1" if value else "0") if isinstance(value, bool) else str(value)
            current = person.lww.get(name)
            if current is None or ts > current[0] or (ts == current[0] and text > current[1]):
                person.lww[name] = (ts, text)

    def apply(self, event: dict[str, Any]) -> bool:
        """False for a duplicate event id."""
        if event["id"] in self.seen:
            return False
        self.seen.add(event["id"])
        ts, kind = norm_time(event["occurred_at"]), event["type"]
        ref, friend = event.get("referrer"), event.get("friend")
        r = self.person(ref["email"]) if ref else None
        f = self.person(friend["email"]) if friend else None
        for p in (r, f):
            if p is not None:
                p.last_activity = max(p.last_activity, ts)
        if r is not None:
            r.is_referrer = True
            self.set_lww(r, ts, {k: ref.get(k) for k in ("first_name", "last_name", "referrer_id", "share_url")})
        if f is not None:
            f.is_friend = True
            self.set_lww(f, ts, {k: friend.get(k) for k in ("first_name", "last_name", "marketing_opt_in", "promo_code")})
            if r is not None and (f.referred_by is None or ts < f.referred_by[0]):
                f.referred_by = (ts, r.email)
        if kind == "referrer.enrolled" and r is not None:
            r.enrolled_at = min(filter(None, (r.enrolled_at, ts)))
        elif kind == "referral.invited" and r is not None:
            r.invites += 1
        elif kind in ("friend.registered", "friend.converted") and f is not None:
            f.registered_at = min(filter(None, (f.registered_at, ts)))
            if kind == "friend.converted":
                f.converted_at = min(filter(None, (f.converted_at, ts)))
                order = event["order"]
                if order["id"] not in self.orders:
                    self.orders[order["id"]] = (f.email, "", Decimal(str(order["total"])), order["currency"])
        return True

    # -- derived state ------------------------------------------------------------------------
    def referrer_of(self, friend: Person) -> str | None:
        return friend.referred_by[1] if friend.referred_by else None

    def finish(self) -> None:
        """Credit referrers: distinct friends, converted friends, turnover of distinct orders."""
        for p in self.people.values():
            p.friends, p.converted_friends = set(), set()
        self.turnover: dict[str, dict[str, Decimal]] = {}
        for p in list(self.people.values()):
            ref = self.referrer_of(p) if p.is_friend else None
            if not ref or ref == p.email:
                continue
            referrer = self.people[ref]
            referrer.friends.add(p.email)
            if p.converted_at:
                referrer.converted_friends.add(p.email)
        for friend_email, _, amount, currency in self.orders.values():
            ref = self.referrer_of(self.people[friend_email])
            if ref and ref != friend_email:
                bucket = self.turnover.setdefault(ref, {})
                bucket[currency] = bucket.get(currency, Decimal(0)) + amount

    def state(self, email: str) -> dict[str, Any]:
        p = self.people[email]
        state: dict[str, Any] = {name: value for name, (_, value) in p.lww.items()}
        state.update({"email": email, "contact_id": contact_id(email), "is_referrer": p.is_referrer,
                      "is_friend": p.is_friend, "last_activity_at": p.last_activity})
        if "marketing_opt_in" in state:
            state["marketing_opt_in"] = state["marketing_opt_in"] == "1"
        if p.is_referrer:
            state.update({"invites_sent": p.invites, "friends_registered": len(p.friends),
                          "friends_converted": len(p.converted_friends)})
            turnover = self.turnover.get(email, {})
            if turnover:
                main = self.currency if self.currency in turnover else sorted(turnover)[0]
                state["turnover_amount"], state["turnover_currency"] = turnover[main], main
            else:
                state["turnover_amount"], state["turnover_currency"] = Decimal("0.00"), self.currency
        if p.is_friend:
            if p.referred_by:
                state["referred_by"] = p.referred_by[1]
            for name in ("registered_at", "converted_at"):
                if getattr(p, name):
                    state[name] = getattr(p, name)
        if p.enrolled_at:
            state["enrolled_at"] = p.enrolled_at
        return state


def contact_id(email: str) -> str:
    """The hub's documented non-PII contact id (identity for Ometria)."""
    return "rsh_" + hashlib.sha256(email.encode()).hexdigest()[:24]


def model_of(events: Iterable[dict[str, Any]]) -> Model:
    model = Model()
    for event in events:
        model.apply(event)
    model.finish()
    return model


# -- what each vendor should hold -------------------------------------------------------------
@dataclass
class Expected:
    """Per vendor: email -> {"fields", "lists", "consent"} as the default mapping renders it."""

    vendors: dict[str, dict[str, dict[str, Any]]]
    targets: dict[str, set[str]]        # the mapped field names per vendor


def convert(value: Any, how: str) -> Any:
    """One of `DEFAULTS`' conversions, written for the workload's values (not the hub's code)."""
    if not how:
        return value
    if how == "string":
        return str(value)
    if how == "integer":
        return int(value)
    if how == "upper":
        return str(value).upper()
    if how == "decimal:2":
        return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    kind, _, style = how.partition(":")
    if kind == "date":
        match = STAMP.match(str(value))
        if not match:
            raise ValueError(f"not a workload timestamp: {value!r}")
        day, clock = match.group(1), match.group(2)
        return {"iso": f"{day}T{clock}Z", "emarsys": day, "splio": f"{day} {clock}"}[style]
    raise ValueError(f"unknown conversion {how!r}")


def vendor_view(vendor: str, state: dict[str, Any]) -> dict[str, Any]:
    """{"fields", "identity", "lists", "consent"} a vendor should hold for one person's state."""
    spec = DEFAULTS[vendor]
    fields = {target: convert(state[source], how) for target, source, how in spec["fields"]
              if state.get(source) not in (None, "")}
    lists = {list_id for list_id, (_, condition) in spec["lists"].items()
             if (state.get("marketing_opt_in") is True if condition == "marketing_opt_in"
                 else bool(state.get("converted_at")))}
    consent = state.get("marketing_opt_in") if spec["consent"] else None
    field_name, source = spec["identity"]
    return {"fields": fields, "identity": {field_name: state[source]}, "lists": lists,
            "consent": consent if isinstance(consent, bool) else None}


def list_kinds(vendor: str) -> dict[str, str]:
    """List id -> "marketing" / "transactional", per `DEFAULTS`."""
    return {list_id: kind for list_id, (kind, _) in DEFAULTS[vendor]["lists"].items()}


def expected_for(events: Iterable[dict[str, Any]], vendors: Iterable[str]) -> Expected:
    model = model_of(events)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    targets: dict[str, set[str]] = {}
    for vendor in vendors:
        targets[vendor] = {target for target, _, _ in DEFAULTS[vendor]["fields"]}
        out[vendor] = {email: vendor_view(vendor, model.state(email)) for email in model.people}
    return Expected(out, targets)


def normalise(value: Any) -> Any:
    """One comparable form across vendors: numbers as Decimal (Emarsys sends strings, Splio casts
    to int/float, Klaviyo keeps JSON numbers), booleans as such, everything else as text."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value)).normalize()
    text = str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return number.normalize() if number.is_finite() else text


def differences(vendor: str, want: dict[str, Any], held: dict[str, Any] | None, targets: set[str]) -> list[str]:
    """Why a vendor's record differs from the expected one (empty when it matches)."""
    if held is None or held.get("deleted"):
        return ["missing"]
    problems = []
    fields = held.get("fields") or {}
    for name, value in want["fields"].items():
        if name not in fields:
            problems.append(f"field {name} missing")
        elif normalise(fields[name]) != normalise(value):
            problems.append(f"field {name}: {fields[name]!r} != {value!r}")
    for name in targets - set(want["fields"]):
        if fields.get(name) not in (None, "", *VENDOR_FILLERS.get((vendor, name), ())):
            problems.append(f"field {name}: unexpected {fields[name]!r}")
    for name, value in want["identity"].items():
        # Identity keys land in fields (Emarsys "3", Salesforce external id, Ometria "id") except
        # where the vendor keeps them apart (Klaviyo and Splio email).
        if name in fields and normalise(fields[name]) != normalise(value):
            problems.append(f"identity {name}: {fields[name]!r} != {value!r}")
    if set(held.get("lists") or []) != want["lists"]:
        problems.append(f"lists {sorted(held.get('lists') or [])} != {sorted(want['lists'])}")
    # Vendors store consent only once it is given: expect True where the mapping grants it, and
    # anything but True elsewhere.
    if (held.get("marketing_consent") is True) != (want["consent"] is True):
        problems.append(f"consent {held.get('marketing_consent')!r} != {want['consent']!r}")
    return problems


def compare(expected: Expected, held: dict[str, dict[str, dict[str, Any]]], examples: int = 5) -> dict[str, Any]:
    """Per vendor: contacts checked, mismatched (missing, different, or unexpected), a few examples."""
    out: dict[str, Any] = {}
    for vendor, rows in expected.vendors.items():
        have = {e.strip().lower(): v for e, v in (held.get(vendor) or {}).items()}
        bad: dict[str, list[str]] = {}
        for email, want in rows.items():
            problems = differences(vendor, want, have.get(email), expected.targets[vendor])
            if problems:
                bad[email] = problems
        for email in sorted(set(have) - set(rows)):
            if not have[email].get("deleted"):
                bad[email] = ["unexpected contact"]
        out[vendor] = {"contacts": len(rows), "mismatched": len(bad),
                       "examples": {e: bad[e] for e in sorted(bad)[:examples]}}
    return out
