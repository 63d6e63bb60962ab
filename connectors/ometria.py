"""Ometria: contact records through the push endpoint, lists and marketing_optin on the record, erasure.

Ometria Data API v2 (https://docs.ometria.com/docs/ometria-data-api-introduction). Custom fields
are free-form `properties`, lists are numeric ids in `@add_to_lists` / `@remove_from_lists`, and
marketing consent is the record's `marketing_optin`, separate from lists.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence

import requests

from .base import MARKETING, TRANSACTIONAL, Connector, ContactUpdate, Probe, PushResult, chunks, permission_report
from .errors import AuthError, FatalVendorError, RateLimited, VendorError
from .ratelimit import Budget

PUSH_MAX = 100              # records per push call
RECORD_BYTES = 60_000       # "Payload invalid: Record is too large." above 60 KB; kept under 61,440
# Standard contact keys (RS ometria/data/OmetriaContact.json); every other mapped field is a property.
CONTACT_KEYS = {"customer_id", "firstname", "lastname", "middlename", "prefix", "phone_number",
                "date_of_birth", "country_id", "timezone", "gender", "store_ids", "timestamp_acquired",
                "timestamp_subscribed", "timestamp_unsubscribed"}
# Published per-account limits (Ometria API introduction): push 8/s, data API 4/s, GDPR 6/min.
INTRO = "Ometria API introduction, rate limits (per account)"
RATE_LIMITS = {"push": Budget(((8, 1.0),), INTRO), "data": Budget(((4, 1.0),), INTRO),
               "gdpr": Budget(((6, 60.0),), INTRO)}
# Ometria sends no Retry-After on 429 (UNVERIFIED: assume absent). Wait one slot of the bucket's
# own limit, and longer when the push queue backlog (50k records) is what is full.
FALLBACK_WAIT = {"push": 1.0, "data": 1.0, "gdpr": 10.0}
QUEUE_FULL_WAIT = 60.0


def list_id(value: str) -> int | str:
    """Ometria list ids are numeric; keep anything else as given so the vendor names the problem."""
    return int(value) if value.isdigit() else value


class OmetriaConnector(Connector):
    name = "ometria"
    label = "Ometria"
    max_batch = PUSH_MAX
    # Push is 100 records a call at 8 calls/s: a record pushed before its story settles is a
    # second record later, so let contacts rest a little longer.
    coalesce_seconds = 1.5
    secret_settings = ("api_key",)
    required_settings = ("api_key",)
    default_base_url = "https://api.ometria.com"

    @property
    def collection(self) -> str:
        return self.settings.get("collection") or "referral_hub"

    def auth_headers(self) -> dict[str, str]:
        return {"X-Ometria-Auth": self.settings["api_key"], "Accept": "application/json",
                "Content-Type": "application/json"}

    @staticmethod
    def bucket(path: str) -> str:
        """The limit a call counts against; `path` may be relative or a full URL."""
        if "/v2/push" in path:
            return "push"
        if "/v2/data-deletion-requests" in path:
            return "gdpr"
        return "data"

    rate_limits = RATE_LIMITS

    def bucket_for(self, method: str, path: str) -> str:
        return self.bucket(path)

    def error_from_response(self, response: requests.Response) -> VendorError:
        """Ometria's error body is UNVERIFIED: take a `message`/`error` string when there is one."""
        message = self.describe(response)
        try:
            data = response.json()
            message = str(data.get("message") or data.get("error") or data.get("detail") or message)
        except (ValueError, AttributeError):
            pass
        error = self.classify(response, str(response.status_code), message)
        if isinstance(error, RateLimited) and error.retry_after is None:
            url = response.request.url if response.request is not None else ""
            queue_full = response.headers.get("X-QueueSize-Remaining") == "0"
            error.retry_after = QUEUE_FULL_WAIT if queue_full else FALLBACK_WAIT[self.bucket(url or "")]
        return error

    def now(self) -> str:
        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- bodies ------------------------------------------------------------------------------
    def record(self, update: ContactUpdate) -> dict[str, Any]:
        """One `@type: contact` record (https://docs.ometria.com/reference/push-contacts)."""
        contact_id = str(update.identity.get("id") or "")
        if not contact_id or "@" in contact_id:
            # `id` is required and must carry no PII such as an email address.
            raise FatalVendorError("Ometria contact id missing or looks like an email address; map identity "
                                   "to contact_id", code="invalid_id")
        record: dict[str, Any] = {"@type": "contact", "@collection": self.collection, "id": contact_id,
                                  "email": update.email}
        properties: dict[str, Any] = {}
        for key, value in update.fields.items():
            (record if key in CONTACT_KEYS else properties)[key] = value
        if properties:
            record["properties"] = properties
        self.consent(update, record)
        self.memberships(update, record)
        return record

    def consent(self, update: ContactUpdate, record: dict[str, Any]) -> None:
        """marketing_optin with its timestamp, sent together: Ometria fires the subscription event
        (and its welcome campaign) only when both arrive. Without @force_optin an opt-out wins."""
        if update.consent_granted:
            record["marketing_optin"] = "EXPLICITLY_OPTEDIN"
            record.setdefault("timestamp_subscribed", self.now())
            if self.settings.get("force_optin") in (True, "1", "true", "yes"):
                record["@force_optin"] = True
        elif update.consent_withdrawn:
            record["marketing_optin"] = "EXPLICITLY_OPTEDOUT"
            record.setdefault("timestamp_unsubscribed", self.now())

    @staticmethod
    def memberships(update: ContactUpdate, record: dict[str, Any]) -> None:
        """Only new memberships are added; marketing lists only with consent. Transactional lists
        are a plain add: the record then carries no marketing_optin key at all."""
        add = set(update.new_lists(TRANSACTIONAL))
        if update.marketing_consent is True:
            add |= set(update.lists_of(MARKETING) if update.consent_granted else update.new_lists(MARKETING))
        remove = set(update.dropped_lists())
        if update.consent_withdrawn:
            remove |= {i for i, kind in (update.previous_lists or {}).items() if kind == MARKETING}
        if add:
            record["@add_to_lists"] = [list_id(i) for i in sorted(add)]
        if remove - add:
            record["@remove_from_lists"] = [list_id(i) for i in sorted(remove - add)]

    @staticmethod
    def dumps(body: Any) -> str:
        return json.dumps(body, separators=(",", ":"), default=str)

    # -- push --------------------------------------------------------------------------------
    def push(self, updates: list[ContactUpdate]) -> PushResult:
        result = PushResult()
        ready: list[tuple[str, dict[str, Any]]] = []
        for update in updates:
            try:
                record = self.record(update)
            except FatalVendorError as exc:
                result.fail(update.email, exc)
                continue
            if len(self.dumps(record).encode()) > RECORD_BYTES:
                result.fail(update.email, FatalVendorError("Payload invalid: Record is too large.",
                                                           code="record_too_large"))
                continue
            ready.append((update.email, record))
        for batch in chunks(ready, PUSH_MAX):
            self.push_batch(list(batch), result)
        result.calls = self.calls
        return result

    def push_batch(self, batch: list[tuple[str, dict[str, Any]]], result: PushResult) -> None:
        unnamed = self.push_records(batch, result)
        self.bisect([p for p in batch if p[0] not in result.failed], unnamed, result)

    def push_records(self, part: Sequence[tuple[str, dict[str, Any]]], result: PushResult) -> int:
        """One push; fails the records the answer names and returns how many it rejected unnamed."""
        response = self.request("POST", "/v2/push", data=self.dumps([r for _, r in part]))
        return self.rejections([email for email, _ in part], response, result)

    def bisect(self, part: list[tuple[str, dict[str, Any]]], rejected: int, result: PushResult) -> None:
        """Find the `rejected` records Ometria counted but did not name, by pushing halves until
        each is alone. Pushes are idempotent upserts per (collection, id), so the good records a
        half carries again land again unchanged; a half whose share of the count is zero is not
        pushed again at all (its records landed with the batch), one wholly rejected is failed."""
        if rejected <= 0 or not part:
            return
        if rejected >= len(part):
            error = FatalVendorError("rejected by Ometria (the answer counted it without naming it; found by "
                                     "pushing the batch in halves)", code="rejected")
            result.fail_all([email for email, _ in part], error)
            return
        first, second = part[:len(part) // 2], part[len(part) // 2:]
        failed_before = len(result.failed)
        unnamed = self.push_records(first, result)
        named = len(result.failed) - failed_before
        self.bisect([p for p in first if p[0] not in result.failed], unnamed, result)
        self.bisect(second, rejected - named - unnamed, result)

    @staticmethod
    def rejections(emails: Sequence[str], response: requests.Response, result: PushResult) -> int:
        """The push response schema is UNVERIFIED. The one second opinion (RudderStack's Ometria
        handler) reads only {"success", "rejected"}; we also read "errors": [{"index", "message"}]
        when present. Rejections pinned to a record fail that record; the count left over is
        returned for `bisect` to find. `success: false` with nothing counted or named rejects
        every record: a rejected contact is never reported as landed."""
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            return 0
        pinned: set[int] = set()
        for error in data.get("errors") or []:
            index = error.get("index") if isinstance(error, dict) else None
            if isinstance(index, int) and 0 <= index < len(emails) and index not in pinned:
                result.fail(emails[index], FatalVendorError(str(error.get("message") or "rejected by Ometria"),
                                                            code="rejected"))
                pinned.add(index)
        try:
            rejected = int(data.get("rejected") or 0)
        except (TypeError, ValueError):
            rejected = len(emails)
        if data.get("success") is False and not pinned and rejected == 0:
            rejected = len(emails)
        return max(0, min(rejected, len(emails)) - len(pinned))

    # -- erase, check, fields ----------------------------------------------------------------
    def erase(self, emails: list[str]) -> PushResult:
        """One deletion request per person: the GDPR endpoint is not for bulk (6/min). Ometria
        anonymises rather than hard-deletes, within 14 days of the request."""
        result = PushResult()
        for done, email in enumerate(emails):
            try:
                # https://support.ometria.com/hc/en-gb/articles/360011809938 - the body is UNVERIFIED:
                # the doc only says the request takes "the email address".
                self.request("POST", "/v2/data-deletion-requests", data=self.dumps({"email": email}))
            except RateLimited as exc:
                if not done:
                    raise
                # Keep what landed; the rest waits for the next GDPR slot.
                result.fail_all(emails[done:], exc)
                break
            except VendorError as exc:
                if exc.retriable:
                    raise
                result.fail(email, exc)
        result.calls = self.calls
        return result

    def check(self) -> dict[str, Any]:
        """Ometria cannot say what a key may do; it answers 403 where a key is not authorised
        (docs.ometria.com data_api_v2). So each endpoint the hub uses gets a harmless call: an
        empty push (nothing to write) and the list of deletion requests (a read, counted against
        the GDPR budget, the safer reading of which limit it falls under)."""
        found = self.probe([Probe("POST /v2/push", "POST", "/v2/push", {"data": "[]"}),
                            Probe("GET /v2/data-deletion-requests", "GET", "/v2/data-deletion-requests")])
        if not any(found.values()):
            raise AuthError("the Ometria API key opens none of the endpoints the hub uses", status=403,
                            code="forbidden")
        return permission_report(found, collection=self.collection)

    def fields(self) -> list[dict[str, Any]]:
        # Ometria `properties` are free-form: any name is accepted, none must pre-exist.
        return []
