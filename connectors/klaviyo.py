"""Klaviyo: profiles with custom properties, list membership, email marketing consent, erasure.

API revision pinned in `revision` (https://developers.klaviyo.com/en/reference/api_overview).
Every body built here validates against Klaviyo's official OpenAPI spec (tests check it).
"""
from __future__ import annotations

import json
import time
from typing import Any, Sequence

import requests

from .base import MARKETING, TRANSACTIONAL, Connector, ContactUpdate, ContactView, PushResult, chunks
from .errors import FatalVendorError, VendorError

REVISION = "2026-07-15"
JSONAPI = "application/vnd.api+json"
# Standard profile attributes; every other mapped field lands in `properties`.
ATTRIBUTES = {"email", "phone_number", "external_id", "first_name", "last_name", "organization",
              "locale", "title", "image"}
# Per-endpoint limits from the spec's x-klaviyo-ratelimit (burst per second, steady per minute),
# kept a little under the published figure so clock skew never trips a 429.
LIMITS = {
    "profile-import": ((70, 1.0), (740, 60.0)),
    "bulk-import": ((9, 1.0), (145, 60.0)),
    "subscriptions": ((70, 1.0), (740, 60.0)),
    "lists": ((9, 1.0), (145, 60.0)),
    "profiles": ((70, 1.0), (740, 60.0)),
    "deletion": ((3, 1.0), (59, 60.0)),
    "accounts": ((1, 1.0), (14, 60.0)),
    "profile-lists": ((3, 1.0), (59, 60.0)),
}
BULK_MAX = 10_000            # profiles per bulk import job
BULK_BYTES = 4_500_000       # under the 5 MB payload cap
SUBSCRIBE_MAX = 1_000        # profiles per subscription job
UNSUBSCRIBE_MAX = 100        # profiles per unsubscribe job
LIST_MAX = 1_000             # profile ids per list add/remove


class KlaviyoConnector(Connector):
    name = "klaviyo"
    label = "Klaviyo"
    # One bulk import job takes up to 10,000 profiles; jobs are scarce (10/s, 150/min, the status
    # read counted too), so flushes carry as many as are due and come at most every 2 s.
    max_batch = BULK_MAX
    coalesce_seconds = 1.0
    flush_interval = 1.0
    secret_settings = ("api_key",)
    required_settings = ("api_key",)
    default_base_url = "https://a.klaviyo.com"
    job_poll_seconds = 20.0
    job_poll_interval = 0.25

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Klaviyo-API-Key {self.settings['api_key']}",
                "revision": self.settings.get("revision") or REVISION,
                "Accept": JSONAPI, "Content-Type": JSONAPI}

    def limits_for(self, method: str, path: str) -> tuple[str, Sequence[tuple[int, float]]]:
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
        return bucket, LIMITS[bucket]

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
        result = PushResult()
        self.upsert_profiles(updates, result)
        live = [u for u in updates if u.email not in result.failed]
        self.subscribe(live, result)
        self.unsubscribe([u for u in live if u.email not in result.failed], result)
        self.leave_lists([u for u in live if u.email not in result.failed], result)
        result.calls = self.calls
        return result

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
                                   self.bulk_import_body([self.profile(u) for u in batch], list_ids)).json()["data"]["id"]
                self.await_import(job_id, batch, result)

    def size_batches(self, updates: list[ContactUpdate]) -> list[list[ContactUpdate]]:
        batches: list[list[ContactUpdate]] = [[]]
        size = 0
        for update in updates:
            n = len(json.dumps(self.profile(update), default=str))
            if batches[-1] and (len(batches[-1]) >= BULK_MAX or size + n > BULK_BYTES):
                batches.append([])
                size = 0
            batches[-1].append(update)
            size += n
        return batches

    def await_import(self, job_id: str, batch: list[ContactUpdate], result: PushResult) -> None:
        """Poll the import job until it completes; profiles it rejected fail on their own."""
        deadline = time.monotonic() + self.job_poll_seconds
        while True:
            attributes = self.request("GET", f"/api/profile-bulk-import-jobs/{job_id}").json()["data"]["attributes"]
            if attributes["status"] in ("complete", "cancelled") or time.monotonic() > deadline:
                break
            self.sleep(self.job_poll_interval)
        if attributes["status"] == "cancelled":
            result.fail_all((u.email for u in batch), FatalVendorError(
                f"bulk import job {job_id} was cancelled", code="job_cancelled"))
        elif attributes.get("failed_count"):
            errors = self.request("GET", f"/api/profile-bulk-import-jobs/{job_id}/import-errors").json()["data"]
            for error in errors:
                a = error["attributes"]
                email = ((a.get("original_payload") or {}).get("email") or "").strip().lower()
                result.fail(email, FatalVendorError(f"{a['title']}: {a['detail']}", code=a["code"]))

    def subscribe(self, updates: list[ContactUpdate], result: PushResult) -> None:
        """Marketing list = consent SUBSCRIBED through the subscription job (one list a job)."""
        groups: dict[str | None, list[str]] = {}
        for update in updates:
            lists = update.lists_of(MARKETING)
            if update.consent_granted:
                targets: list[str | None] = list(lists) or [None]
            else:
                targets = list(update.new_lists(MARKETING)) if update.marketing_consent else []
            for list_id in targets:
                groups.setdefault(list_id, []).append(update.email)
        for list_id, emails in groups.items():
            for batch in chunks(emails, SUBSCRIBE_MAX):
                self.post("/api/profile-subscription-bulk-create-jobs", self.subscribe_body(batch, list_id))

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
        """Transactional lists the contact no longer belongs in (a mapping change)."""
        groups: dict[str, list[str]] = {}
        for update in updates:
            for list_id in update.dropped_lists(TRANSACTIONAL):
                groups.setdefault(list_id, []).append(update.email)
        for list_id, emails in groups.items():
            ids = self.profile_ids(emails)
            for batch in chunks(sorted(ids.values()), LIST_MAX):
                body = {"data": [{"type": "profile", "id": i} for i in batch]}
                self.request("DELETE", f"/api/lists/{list_id}/relationships/profiles",
                             data=json.dumps(body, separators=(",", ":")))

    def profile_ids(self, emails: Sequence[str]) -> dict[str, str]:
        ids: dict[str, str] = {}
        for batch in chunks(list(emails), 100):
            quoted = ",".join(json.dumps(e) for e in batch)
            response = self.request("GET", "/api/profiles", params={
                "filter": f"any(email,[{quoted}])", "page[size]": 100})
            for item in response.json()["data"]:
                ids[item["attributes"]["email"]] = item["id"]
        return ids

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
        data = self.request("GET", "/api/accounts").json()["data"]
        return {"ok": True, "account": data[0]["id"] if data else None}

    def fields(self) -> list[dict[str, Any]]:
        # Klaviyo custom properties are free-form: any name is accepted, none must pre-exist.
        return []

    # -- read (the anti-entropy audit) -------------------------------------------------------
    def read(self, updates: list[ContactUpdate]) -> dict[str, ContactView | None]:
        """Profiles by email with their email marketing consent, then each one's lists.

        GET /api/profiles?filter=any(email,[...])&additional-fields[profile]=subscriptions (up
        to 100 a page; https://developers.klaviyo.com/en/reference/get_profiles); the list ids
        come from GET /api/profiles/{id}/relationships/lists (get_list_ids_for_profile, 3/s and
        60/m in the spec's x-klaviyo-ratelimit), since get_profiles cannot include lists."""
        views: dict[str, ContactView | None] = {u.email: None for u in updates}
        for batch in chunks([u.email for u in updates], 100):
            quoted = ",".join(json.dumps(e) for e in batch)
            found = self.request("GET", "/api/profiles", params={
                "filter": f"any(email,[{quoted}])", "additional-fields[profile]": "subscriptions",
                "page[size]": 100}).json()["data"]
            for item in found:
                email = str(item["attributes"].get("email") or "").strip().lower()
                if email in views:
                    views[email] = self.view_of(item, self.request(
                        "GET", f"/api/profiles/{item['id']}/relationships/lists").json()["data"])
        return views

    @staticmethod
    def view_of(item: dict[str, Any], lists: list[dict[str, Any]]) -> ContactView:
        """Standard attributes and custom properties as one field map; consent SUBSCRIBED is
        True, UNSUBSCRIBED False, NEVER_SUBSCRIBED (or none) None."""
        attributes = item["attributes"]
        fields = {k: v for k, v in attributes.items() if k in ATTRIBUTES and k != "email"}
        fields.update(attributes.get("properties") or {})
        marketing = (((attributes.get("subscriptions") or {}).get("email") or {}).get("marketing") or {})
        consent = {"SUBSCRIBED": True, "UNSUBSCRIBED": False}.get(str(marketing.get("consent")))
        return ContactView(fields=fields, lists={str(i["id"]) for i in lists}, marketing_consent=consent,
                           consent_read=True)
