"""Klaviyo: profiles with custom properties, list membership, email marketing consent, erasure.

API revision pinned in `revision` (https://developers.klaviyo.com/en/reference/api_overview).
Every body built here validates against Klaviyo's official OpenAPI spec (tests check it).
"""
from __future__ import annotations

import json
import re
from urllib.parse import quote_plus, urlencode
from dataclasses import dataclass, field
from typing import Any, Sequence

import requests

from .base import MARKETING, TRANSACTIONAL, Connector, ContactUpdate, ContactView, JobCheck, PushResult, chunks
from .errors import FatalVendorError, VendorError
from .ratelimit import Budget

REVISION = "2026-07-15"
JSONAPI = "application/vnd.api+json"
# Standard profile attributes; every other mapped field lands in `properties`.
ATTRIBUTES = {"email", "phone_number", "external_id", "first_name", "last_name", "organization",
              "locale", "title", "image"}
# Per-endpoint limits from the spec's x-klaviyo-ratelimit (burst per second, steady per minute),
# obeyed a little under the published figure.
SPEC = "Klaviyo OpenAPI spec, x-klaviyo-ratelimit of the operation"
SKEW = ("a little under the published figure, so clock skew between the hub's sliding window and "
        "Klaviyo's own windows never trips a 429")


def _budget(published: tuple[int, int], obeyed: tuple[int, int]) -> Budget:
    """Klaviyo's (burst per second, steady per minute), and the pair the connector obeys."""
    return Budget(((published[0], 1.0), (published[1], 60.0)), SPEC,
                  margin=((obeyed[0], 1.0), (obeyed[1], 60.0)), reason=SKEW)


RATE_LIMITS = {
    "profile-import": _budget((75, 750), (70, 740)),
    "bulk-import": _budget((10, 150), (9, 145)),
    "subscriptions": _budget((75, 750), (70, 740)),     # subscribe and unsubscribe jobs share it here
    "lists": _budget((10, 150), (9, 145)),
    "profiles": _budget((75, 750), (70, 740)),
    "deletion": _budget((3, 60), (3, 59)),
    "accounts": _budget((1, 15), (1, 14)),
    "profile-lists": _budget((3, 60), (3, 59)),
}
BULK_MAX = 10_000            # profiles per bulk import job
BULK_BYTES = 4_500_000       # under the 5 MB payload cap
SUBSCRIBE_MAX = 1_000        # profiles per subscription job
UNSUBSCRIBE_MAX = 100        # profiles per unsubscribe job
LIST_MAX = 1_000             # profile ids per list add/remove
# The longest encoded query of a profile lookup: request lines are commonly capped at 4 KB (e.g.
# gunicorn's 4,094 bytes; Klaviyo publishes no figure), and 100 long addresses would pass it.
QUERY_MAX = 3_800
# A profile's size as json.dumps(profile, default=str) writes it, by an encoder built once.
_PROFILE_JSON = json.JSONEncoder(default=str).encode
ERRORS_PAGE = 100            # import errors per page (20 by default, 100 at most)
# Global suppressions: a subscription would lift UNSUBSCRIBE, SPAM_COMPLAINT and USER_SUPPRESSED
# (bulk_subscribe_profiles), and HARD_BOUNCE / INVALID_EMAIL mean no marketing email can reach
# the person anyway, so any of them stops the hub from subscribing.
SUPPRESSIONS = {"UNSUBSCRIBE", "SPAM_COMPLAINT", "SPAM_REPORT", "USER_SUPPRESSED", "HARD_BOUNCE", "INVALID_EMAIL"}


# Each scope the hub needs (the spec's x-klaviyo-scopes of the operations it calls), the probe
# that shows it, and the scopes that probe's operation also needs.
SCOPE_PROBES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("accounts:read", "GET", "/api/accounts", ()),                       # check
    ("lists:read", "GET", "/api/lists", ()),                             # import job status
    ("profiles:read", "GET", "/api/profiles", ()),                       # lookups, job status, errors
    ("profiles:write", "POST", "/api/profile-import", ()),
    ("lists:write", "POST", "/api/profile-bulk-import-jobs", ("profiles:write",)),
    ("subscriptions:write", "POST", "/api/profile-subscription-bulk-create-jobs", ("profiles:write", "lists:write")),
    ("data-privacy:write", "POST", "/api/data-privacy-deletion-jobs", ()),
)


@dataclass
class ConsentHeld:
    """A profile's email marketing state at Klaviyo, as it bears on subscribing it."""

    blocked: bool
    list_blocked: set[str | None] = field(default_factory=set)

    @classmethod
    def of(cls, attributes: dict[str, Any]) -> ConsentHeld:
        """From get_profiles' `subscriptions.email.marketing` (additional-fields[profile])."""
        marketing = (((attributes.get("subscriptions") or {}).get("email") or {}).get("marketing") or {})
        suppressed = {str(s.get("reason")) for s in marketing.get("suppression") or []}
        blocked = marketing.get("consent") == "UNSUBSCRIBED" or bool(suppressed & SUPPRESSIONS)
        lists = {str(s.get("list_id")) for s in marketing.get("list_suppressions") or []}
        return cls(blocked=blocked, list_blocked=set(lists))


class KlaviyoConnector(Connector):
    name = "klaviyo"
    label = "Klaviyo"
    # One bulk import job takes up to 10,000 profiles; jobs are scarce (10/s, 150/min, the status
    # read counted too), so flushes carry as many as are due and come at most every 2 s.
    max_batch = BULK_MAX
    coalesce_seconds = 1.0
    flush_interval = 1.0
    fill_forced_flush = True
    secret_settings = ("api_key",)
    required_settings = ("api_key",)
    default_base_url = "https://a.klaviyo.com"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Klaviyo-API-Key {self.settings['api_key']}",
                "revision": self.settings.get("revision") or REVISION,
                "Accept": JSONAPI, "Content-Type": JSONAPI}

    rate_limits = RATE_LIMITS

    def bucket_for(self, method: str, path: str) -> str:
        if path.startswith("/api/profile-import"):
            bucket = "profile-import"
        elif path.startswith("/api/profile-bulk-import-jobs"):
            bucket = "bulk-import"
        elif path.startswith("/api/profile-subscription"):
            bucket = "subscriptions"
        elif path.startswith("/api/lists"):
            bucket = "lists"
        elif path.startswith("/api/data-privacy"):
            bucket = "deletion"
        elif path.startswith("/api/accounts"):
            bucket = "accounts"
        elif path.startswith("/api/profiles/") and path.endswith("/relationships/lists"):
            bucket = "profile-lists"
        else:
            bucket = "profiles"
        return bucket

    def error_from_response(self, response: requests.Response) -> VendorError:
        """Klaviyo errors are JSON:API: {"errors": [{"status", "code", "title", "detail", ...}]}."""
        code, message = None, self.describe(response)
        try:
            first = response.json()["errors"][0]
            code = first.get("code")
            message = f"{first.get('title', '')}: {first.get('detail', '')}".strip(": ")
        except (ValueError, KeyError, IndexError, TypeError):
            pass
        return self.classify(response, code, message)

    # -- bodies ------------------------------------------------------------------------------
    @staticmethod
    def profile(update: ContactUpdate) -> dict[str, Any]:
        """A ProfileUpsertQueryResourceObject: standard attributes plus custom properties."""
        attributes: dict[str, Any] = {"email": update.email}
        properties: dict[str, Any] = {}
        for key, value in {**update.identity, **update.fields}.items():
            (attributes if key in ATTRIBUTES else properties)[key] = value
        if properties:
            attributes["properties"] = properties
        return {"type": "profile", "attributes": attributes}

    @staticmethod
    def bulk_import_body(profiles: list[dict[str, Any]], list_ids: Sequence[str]) -> dict[str, Any]:
        # https://developers.klaviyo.com/en/reference/bulk_import_profiles
        data: dict[str, Any] = {"type": "profile-bulk-import-job",
                                "attributes": {"profiles": {"data": profiles}}}
        if list_ids:
            data["relationships"] = {"lists": {"data": [{"type": "list", "id": i} for i in list_ids]}}
        return {"data": data}

    @staticmethod
    def subscribe_body(emails: Sequence[str], list_id: str | None) -> dict[str, Any]:
        # https://developers.klaviyo.com/en/reference/bulk_subscribe_profiles
        profiles = [{"type": "profile", "attributes": {
            "email": e, "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}} for e in emails]
        data: dict[str, Any] = {"type": "profile-subscription-bulk-create-job",
                                "attributes": {"custom_source": "Referral Sync Hub", "profiles": {"data": profiles}}}
        if list_id:
            data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
        return {"data": data}

    @staticmethod
    def unsubscribe_body(emails: Sequence[str], list_id: str | None) -> dict[str, Any]:
        # https://developers.klaviyo.com/en/reference/bulk_unsubscribe_profiles
        # Without a list the profiles are unsubscribed globally, which is what a withdrawn consent means.
        profiles = [{"type": "profile", "attributes": {
            "email": e, "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}} for e in emails]
        data: dict[str, Any] = {"type": "profile-subscription-bulk-delete-job",
                                "attributes": {"profiles": {"data": profiles}}}
        if list_id:
            data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
        return {"data": data}

    @staticmethod
    def deletion_body(email: str) -> dict[str, Any]:
        # https://developers.klaviyo.com/en/reference/request_profile_deletion (exactly one identifier)
        return {"data": {"type": "data-privacy-deletion-job", "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": email}}}}}}

    def post(self, path: str, body: dict[str, Any], **kw: Any) -> requests.Response:
        return self.request("POST", path, data=json.dumps(body, separators=(",", ":"), default=str), **kw)

    # -- push --------------------------------------------------------------------------------
    def push(self, updates: list[ContactUpdate]) -> PushResult:
        """Profiles first; consent and lists for those whose profile has landed. Contacts in an
        import job that is still running stay pending: the hub checks the job later."""
        result = PushResult()
        self.upsert_profiles(updates, result)
        waiting = {e for emails in result.pending.values() for e in emails}
        self.after_upsert([u for u in updates if u.email not in waiting], result)
        result.calls = self.calls
        return result

    def finish(self, updates: list[ContactUpdate]) -> PushResult:
        result = PushResult()
        self.after_upsert(updates, result)
        result.calls = self.calls
        return result

    def after_upsert(self, updates: list[ContactUpdate], result: PushResult) -> None:
        live = [u for u in updates if u.email not in result.failed]
        self.subscribe(live, result)
        self.join_lists(live, result)
        self.unsubscribe(live, result)
        self.leave_lists(live, result)

    def upsert_profiles(self, updates: list[ContactUpdate], result: PushResult) -> None:
        """One profile: profile-import (sync). More: bulk import jobs, grouped by the
        transactional lists to join, since the job adds every profile in it to its lists."""
        if len(updates) == 1 and not updates[0].new_lists(TRANSACTIONAL):
            self.post("/api/profile-import", {"data": self.profile(updates[0])})
            return
        groups: dict[tuple[str, ...], list[ContactUpdate]] = {}
        for update in updates:
            groups.setdefault(tuple(update.new_lists(TRANSACTIONAL)), []).append(update)
        for list_ids, group in groups.items():
            for batch in self.size_batches(group):
                job_id = self.post("/api/profile-bulk-import-jobs",
                                   self.bulk_import_body([p for _, p in batch], list_ids)).json()["data"]["id"]
                emails = [u.email for u, _ in batch]
                check = self.check_job(f"import:{job_id}", emails)
                if check.done:
                    for email, error in check.failed.items():
                        result.fail(email, error)
                else:
                    result.pending[f"import:{job_id}"] = emails

    def size_batches(self, updates: list[ContactUpdate]) -> list[list[tuple[ContactUpdate, dict[str, Any]]]]:
        """Each update with its profile (built once), in batches of at most BULK_MAX profiles
        and about BULK_BYTES of JSON."""
        batches: list[list[tuple[ContactUpdate, dict[str, Any]]]] = [[]]
        size = 0
        for update in updates:
            profile = self.profile(update)
            n = len(_PROFILE_JSON(profile))
            if batches[-1] and (len(batches[-1]) >= BULK_MAX or size + n > BULK_BYTES):
                batches.append([])
                size = 0
            batches[-1].append((update, profile))
            size += n
        return batches

    def check_job(self, ref: str, emails: list[str]) -> JobCheck:
        """One status read of an import job (`import:<id>`; `emails` in the order sent). Queued or
        processing: not done, nothing landed yet. Cancelled: every profile fails. Complete: the
        profiles its import errors name fail on their own, every page of them read."""
        job_id = ref.removeprefix("import:")
        attributes = self.request("GET", f"/api/profile-bulk-import-jobs/{job_id}").json()["data"]["attributes"]
        status = attributes["status"]
        if status in ("queued", "processing"):
            return JobCheck(done=False)
        if status == "cancelled":
            error = FatalVendorError(f"bulk import job {job_id} was cancelled", code="job_cancelled")
            return JobCheck(done=True, failed={e: error for e in emails})
        if status != "complete":
            # A status this revision does not list: not done, never called landed.
            return JobCheck(done=False)
        failed = self.import_errors(job_id, emails) if attributes.get("failed_count") else {}
        unnamed = int(attributes.get("failed_count") or 0) - len(failed)
        if unnamed > 0:
            # Rejections that name no profile: nothing says which landed, so none is called landed.
            error = FatalVendorError(f"bulk import job {job_id} rejected {unnamed} profile(s) without naming them",
                                     code="import_error_unnamed")
            failed.update({e: error for e in emails if e not in failed})
        return JobCheck(done=True, failed=failed)

    def import_errors(self, job_id: str, emails: list[str]) -> dict[str, VendorError]:
        """Every page of a job's import errors (cursor-paginated, `links.next`), as per-email
        failures. A null `original_payload` is placed by the index in `source.pointer`."""
        failed: dict[str, VendorError] = {}
        page: str | None = f"/api/profile-bulk-import-jobs/{job_id}/import-errors"
        params: dict[str, Any] | None = {"page[size]": ERRORS_PAGE}
        while page:
            body = self.request("GET", page, params=params).json()
            for item in body.get("data") or []:
                a = item.get("attributes") or {}
                email = self.rejected_email(a, emails)
                if email:
                    failed.setdefault(email, FatalVendorError(
                        f"{a.get('title', '')}: {a.get('detail', '')}".strip(": "), code=a.get("code")))
            page, params = (body.get("links") or {}).get("next"), None
        return failed

    @staticmethod
    def rejected_email(attributes: dict[str, Any], emails: list[str]) -> str | None:
        payload = attributes.get("original_payload") or {}
        email = str(payload.get("email") or "").strip().lower()
        if email in emails:
            return email
        pointer = str((attributes.get("source") or {}).get("pointer") or "")
        found = re.match(r"^/data/attributes/profiles/data/(\d+)(/|$)", pointer)
        if found and int(found.group(1)) < len(emails):
            return emails[int(found.group(1))]
        return None

    def subscribe(self, updates: list[ContactUpdate], result: PushResult) -> None:
        """Consent SUBSCRIBED only where the hub's consent went from no to yes, one job per
        marketing list (or none: the account's default). Never over a person's unsubscribe or a
        suppression Klaviyo holds: the call would lift it (bulk_subscribe_profiles)."""
        granted = [u for u in updates if u.consent_granted]
        if not granted:
            return
        holds = self.consent_held([u.email for u in granted])
        groups: dict[str | None, list[str]] = {}
        for update in granted:
            held = holds.get(update.email)
            if held is not None and held.blocked:
                continue
            targets: list[str | None] = list(update.lists_of(MARKETING)) or [None]
            for list_id in targets:
                if held is None or list_id not in held.list_blocked:
                    groups.setdefault(list_id, []).append(update.email)
        for target, emails in groups.items():
            for batch in chunks(emails, SUBSCRIBE_MAX):
                self.post("/api/profile-subscription-bulk-create-jobs", self.subscribe_body(batch, target))

    def join_lists(self, updates: list[ContactUpdate], result: PushResult) -> None:
        """A marketing list newly in the mapping, for a contact whose consent did not change:
        plain membership (add_profiles_to_list), never a new subscription."""
        groups: dict[str, list[str]] = {}
        for update in updates:
            if update.marketing_consent is True and not update.consent_granted:
                for list_id in update.new_lists(MARKETING):
                    groups.setdefault(list_id, []).append(update.email)
        self.membership("POST", groups)

    def unsubscribe(self, updates: list[ContactUpdate], result: PushResult) -> None:
        """Withdrawn consent: unsubscribe from the marketing lists the hub had joined."""
        groups: dict[str | None, list[str]] = {}
        for update in updates:
            if update.consent_withdrawn:
                dropped: list[str | None] = list(update.dropped_lists(MARKETING)) or [None]
                for list_id in dropped:
                    groups.setdefault(list_id, []).append(update.email)
        for list_id, emails in groups.items():
            for batch in chunks(emails, UNSUBSCRIBE_MAX):
                self.post("/api/profile-subscription-bulk-delete-jobs", self.unsubscribe_body(batch, list_id))

    def leave_lists(self, updates: list[ContactUpdate], result: PushResult) -> None:
        """Lists the contact no longer belongs in after a mapping change: transactional ones, and
        marketing ones while consent stands (plain removal; a withdrawal unsubscribes instead)."""
        groups: dict[str, list[str]] = {}
        for update in updates:
            dropped = update.dropped_lists(TRANSACTIONAL)
            if not update.consent_withdrawn:
                dropped += update.dropped_lists(MARKETING)
            for list_id in dropped:
                groups.setdefault(list_id, []).append(update.email)
        self.membership("DELETE", groups)

    def membership(self, method: str, groups: dict[str, list[str]]) -> None:
        """Add (POST) or remove (DELETE) profiles to or from lists, 1,000 profile ids a call."""
        for list_id, emails in groups.items():
            ids = self.profile_ids(emails)
            for batch in chunks(sorted(ids.values()), LIST_MAX):
                body = {"data": [{"type": "profile", "id": i} for i in batch]}
                self.request(method, f"/api/lists/{list_id}/relationships/profiles",
                             data=json.dumps(body, separators=(",", ":")))

    def find_profiles(self, emails: Sequence[str], subscriptions: bool = False) -> list[dict[str, Any]]:
        """The profiles Klaviyo holds for these emails (get_profiles, 100 a call, fewer when the
        addresses are long: the query stays under QUERY_MAX, see `lookup_batches`)."""
        found: list[dict[str, Any]] = []
        for batch in self.lookup_batches(list(emails), subscriptions):
            found.extend(self.request("GET", "/api/profiles", params=self.lookup_params(batch, subscriptions)).json()["data"])
        return found

    @staticmethod
    def lookup_params(emails: Sequence[str], subscriptions: bool) -> dict[str, Any]:
        quoted = ",".join(json.dumps(e) for e in emails)
        params: dict[str, Any] = {"filter": f"any(email,[{quoted}])", "page[size]": 100}
        if subscriptions:
            params["additional-fields[profile]"] = "subscriptions"
        return params

    def lookup_batches(self, emails: list[str], subscriptions: bool) -> list[list[str]]:
        """Up to 100 emails a lookup (the page size), and no more than keep the encoded query
        under QUERY_MAX: a request line longer than a server's cap is refused whole (414)."""
        # The query's length is counted as it grows, not encoded again for each address: URL
        # encoding goes character by character, so the encoded filter is the encoded parts
        # (its frame, each quoted address, a comma between them) end to end.
        empty, comma = len(urlencode(self.lookup_params([], subscriptions))), len(quote_plus(","))
        batches: list[list[str]] = [[]]
        size = empty
        for email in emails:
            quoted = len(quote_plus(json.dumps(email)))
            if batches[-1] and (len(batches[-1]) >= 100 or size + comma + quoted > QUERY_MAX):
                batches.append([])
                size = empty
            size += quoted + (comma if batches[-1] else 0)
            batches[-1].append(email)
        return [b for b in batches if b]

    def profile_ids(self, emails: Sequence[str]) -> dict[str, str]:
        return {str(item["attributes"]["email"]).lower(): item["id"] for item in self.find_profiles(emails)}

    def consent_held(self, emails: Sequence[str]) -> dict[str, ConsentHeld]:
        """What Klaviyo holds against subscribing each profile it has seen."""
        held: dict[str, ConsentHeld] = {}
        for item in self.find_profiles(emails, subscriptions=True):
            email = str(item["attributes"].get("email") or "").lower()
            held[email] = ConsentHeld.of(item["attributes"])
        return held

    # -- erase, check, fields ----------------------------------------------------------------
    def erase(self, emails: list[str]) -> PushResult:
        """One data-privacy deletion job per person (the endpoint takes exactly one identifier)."""
        result = PushResult()
        for email in emails:
            try:
                self.post("/api/data-privacy-deletion-jobs", self.deletion_body(email))
            except VendorError as exc:
                if exc.retriable:
                    raise
                result.fail(email, exc)
        result.calls = self.calls
        return result

    def check(self) -> dict[str, Any]:
        """The key works and has every scope the hub uses. Klaviyo cannot list a key's scopes, so
        each is tried: a harmless read for the read scopes; for a write scope, a body Klaviyo
        refuses, so nothing is written (400 means the key got past the scope check: granted, an
        inference; 403 means missing). A probe whose operation also needs a scope already found
        missing cannot tell: "unknown"."""
        scopes: dict[str, str] = {}
        account = None
        for scope, method, path, needs in SCOPE_PROBES:
            if any(scopes.get(n) == "missing" for n in needs):
                scopes[scope] = "unknown"
                continue
            if method == "GET":
                response = self.request(method, path, ok=(403,), params={"page[size]": 1} if path != "/api/accounts" else None)
            else:
                response = self.request(method, path, ok=(400, 403), data="{}")
            if response.status_code == 403:
                scopes[scope] = "missing"
            else:
                scopes[scope] = "granted"
                if path == "/api/accounts":
                    account = (response.json().get("data") or [{}])[0].get("id")
        missing = [s for s, state in scopes.items() if state == "missing"]
        return {"ok": not missing, "account": account, "permissions": scopes, "missing": missing}

    def fields(self) -> list[dict[str, Any]]:
        # Klaviyo custom properties are free-form: any name is accepted, none must pre-exist.
        return []

    def lists(self) -> list[dict[str, Any]]:
        """GET /api/lists (https://developers.klaviyo.com/en/reference/get_lists), following
        links.next page by page."""
        found: list[dict[str, Any]] = []
        path: str | None = "/api/lists"
        while path:
            body = self.request("GET", path).json()
            found += [{"id": str(item["id"]), "name": (item.get("attributes") or {}).get("name") or ""}
                      for item in body.get("data") or []]
            following = (body.get("links") or {}).get("next")
            path = following[len(self.base_url):] if following and following.startswith(self.base_url) else None
        return found

    # -- read (the anti-entropy audit) -------------------------------------------------------
    def read(self, updates: list[ContactUpdate]) -> dict[str, ContactView | None]:
        """Profiles by email with their email marketing consent, then each one's lists.

        GET /api/profiles?filter=any(email,[...])&additional-fields[profile]=subscriptions (up
        to 100 a page; https://developers.klaviyo.com/en/reference/get_profiles); the list ids
        come from GET /api/profiles/{id}/relationships/lists (get_list_ids_for_profile, 3/s and
        60/m in the spec's x-klaviyo-ratelimit), since get_profiles cannot include lists."""
        views: dict[str, ContactView | None] = {u.email: None for u in updates}
        for item in self.find_profiles([u.email for u in updates], subscriptions=True):
            email = str(item["attributes"].get("email") or "").strip().lower()
            if email in views:
                views[email] = self.view_of(item, self.request(
                    "GET", f"/api/profiles/{item['id']}/relationships/lists").json()["data"])
        return views

    @staticmethod
    def view_of(item: dict[str, Any], lists: list[dict[str, Any]]) -> ContactView:
        """Standard attributes and custom properties as one field map; consent SUBSCRIBED is
        True, UNSUBSCRIBED or a global suppression False, NEVER_SUBSCRIBED (or none) None."""
        attributes = item["attributes"]
        fields = {k: v for k, v in attributes.items() if k in ATTRIBUTES and k != "email"}
        fields.update(attributes.get("properties") or {})
        marketing = (((attributes.get("subscriptions") or {}).get("email") or {}).get("marketing") or {})
        consent = {"SUBSCRIBED": True, "UNSUBSCRIBED": False}.get(str(marketing.get("consent")))
        if ConsentHeld.of(attributes).blocked:
            consent = False         # a global suppression: no marketing email reaches the person
        return ContactView(fields=fields, lists={str(i["id"]) for i in lists}, marketing_consent=consent,
                           consent_read=True)
