"""Splio Customer Platform: contacts with custom fields, list subscriptions, bulk erasure.

API reference: https://dev-scp.splio.com/reference (base https://api.splio.com). Auth is a JWT
from POST /authenticate, valid 24 h; there is no upsert, so create and update are separate calls.
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Sequence
from urllib.parse import quote

import jwt
import requests

from .base import (MARKETING, TRANSACTIONAL, Connector, ContactUpdate, ContactView, Probe, PushResult, chunks,
                   permission_report)
from .errors import AuthError, FatalVendorError, RetriableVendorError, VendorError
from .ratelimit import Budget

BULK_MAX = 1_000                    # contacts per bulk create / bulk delete
TOKEN_LIFETIME = 24 * 3600          # the JWT lives 24 h (the token cache renews it a little early)
# Standard contact keys; every other mapped field is a custom field, by name (or id if numeric).
STANDARD = {"email", "cellphone", "firstname", "lastname", "language", "creation_date"}
# Limits are per client IP (https://dev-scp.splio.com/reference/rate-limiting): data/contacts
# 20/s, everything else 10/s.
RATE_DOC = "https://dev-scp.splio.com/reference/rate-limiting (per client IP)"
RATE_LIMITS = {"contacts": Budget(((20, 1.0),), RATE_DOC), "default": Budget(((10, 1.0),), RATE_DOC)}
ALREADY_EXISTS = "already exists"
PROBE_KEY = "permission-check@hub.invalid"   # RFC 2606: no mailbox can exist under .invalid


def text(value: Any) -> str:
    """A custom field value as Splio's contact API types it: a string (Decimals keep their places)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def list_ids(ids: Sequence[str]) -> list[int | str]:
    return [int(i) if i.isdigit() else i for i in ids]


class SplioConnector(Connector):
    name = "splio"
    label = "Splio"
    max_batch = BULK_MAX
    # Creating is 1,000 contacts a call but every later update is one PATCH at 20/s: wait until
    # a contact's burst of events is over, so it is usually created once with its final state.
    coalesce_seconds = 1.5
    flush_interval = 1.0
    # No bulk update: the hub holds each contact to its freshness deadline instead of sending it
    # as soon as a batch is full (hub/core/coalesce.py, take_held).
    updates_one_by_one = True
    secret_settings = ("api_key",)
    required_settings = ("api_key",)
    default_base_url = "https://api.splio.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token: str | None = None      # the JWT the next call sends

    # -- auth --------------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def token_credentials(self) -> dict[str, Any]:
        return {"api_key": self.settings.get("api_key"), "base_url": self.base_url}

    def authenticate(self) -> None:
        """POST /authenticate {"api_key"} -> {"token": JWT} (https://dev-scp.splio.com/reference/authentication)."""
        self._token = None
        response = super().request("POST", "/authenticate", data=self.dumps({"api_key": self.settings["api_key"]}))
        token = str(response.json()["token"])
        self._token = self.token_cache.put(token, self.lifetime(token)).value

    def lifetime(self, token: str) -> float:
        """Seconds the JWT lives: its own `exp` where it has one within the documented 24 h, else 24 h."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            left = float(claims["exp"]) - self.clock()
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return TOKEN_LIFETIME
        return left if 0 < left <= TOKEN_LIFETIME else TOKEN_LIFETIME

    def request(self, method: str, path: str, *, ok: Sequence[int] = (), **kwargs: Any) -> requests.Response:
        """Every data call carries the cached JWT (this instance's, or the one other jobs share);
        a 401 drops it, re-authenticates once and retries."""
        cached = self.token_cache.get()
        if cached is None:
            self.authenticate()
        else:
            self._token = cached.value
        try:
            return super().request(method, path, ok=ok, **kwargs)
        except AuthError as exc:
            if exc.status != 401:
                raise
        self.token_cache.drop()
        self.authenticate()
        return super().request(method, path, ok=ok, **kwargs)

    rate_limits = RATE_LIMITS

    def bucket_for(self, method: str, path: str) -> str:
        return "contacts" if path.startswith("/data/contacts") else "default"

    def error_from_response(self, response: requests.Response) -> VendorError:
        """Splio errors: {"status", "errors": [{"error_key", "error", "error_description"}]};
        a 429 is {"message": "API rate limit exceeded"} with RateLimit-* headers and no Retry-After,
        so the wait comes from RateLimit-Reset (seconds)."""
        code, message = None, self.describe(response)
        try:
            data = response.json()
            first = (data.get("errors") or [{}])[0]
            code = first.get("error")
            if first:
                message = f"{first.get('error_key', '')}: {first.get('error_description') or first.get('error')}"
            elif data.get("message"):
                message = str(data["message"])
        except (ValueError, AttributeError, IndexError, TypeError):
            pass
        error = self.classify(response, code, message)
        if isinstance(error, RetriableVendorError) and error.retry_after is None:
            error.retry_after = self.reset_seconds(response)
        return error

    @staticmethod
    def reset_seconds(response: requests.Response) -> float | None:
        try:
            return max(0.0, float(response.headers["RateLimit-Reset"]))
        except (KeyError, ValueError):
            return None

    # -- bodies ------------------------------------------------------------------------------
    @staticmethod
    def dumps(body: Any) -> str:
        return json.dumps(body, separators=(",", ":"), default=str)

    @staticmethod
    def key(update: ContactUpdate) -> str:
        """The universe's unique key (email by default; the mapping's identity says otherwise)."""
        return str(update.identity.get("email") or update.email)

    @staticmethod
    def attributes(update: ContactUpdate) -> dict[str, Any]:
        """Standard keys plus `custom_fields` [{name|id, value}], every value a string.

        https://dev-scp.splio.com/reference/postdatacontacts types `custom_fields[].value` as a string
        ("can be an integer, a float, a string or a date ... depending on the configuration of the
        custom field"), so numbers go as their decimal text, never as JSON numbers.
        """
        body: dict[str, Any] = {}
        custom: list[dict[str, Any]] = []
        for name, value in update.fields.items():
            if value is None and name in STANDARD:
                continue
            if value is None:
                value = ""   # a value the hub forgot: Splio keeps a custom field until it is overwritten
            if name in STANDARD:
                body[name] = value
            else:
                custom.append({"id": int(name)} if name.isdigit() else {"name": name})
                custom[-1]["value"] = text(value)
        if custom:
            body["custom_fields"] = custom
        return body

    @staticmethod
    def joins(update: ContactUpdate) -> list[str]:
        """Lists to subscribe now. In Splio joining a list IS subscribing, so a marketing list is
        joined only when the hub's consent turns to yes (or the contact is created with it), never
        because a marketing list was added to the mapping: that could re-subscribe someone who
        unsubscribed inside Splio. Transactional lists are joined when they are new."""
        lists = set(update.new_lists(TRANSACTIONAL))
        if update.consent_granted:
            lists |= set(update.lists_of(MARKETING))
        return sorted(lists)

    @staticmethod
    def leaves(update: ContactUpdate) -> list[str]:
        lists = set(update.dropped_lists())
        if update.consent_withdrawn:
            lists |= {i for i, kind in (update.previous_lists or {}).items() if kind == MARKETING}
        return sorted(lists - set(update.lists))

    def create_body(self, update: ContactUpdate) -> dict[str, Any]:
        # https://dev-scp.splio.com/reference/postdatacontactsbulk - `lists` on a NEW contact
        # subscribes it at creation, saving a subscribe call per new contact.
        body = {**self.attributes(update), "email": update.email}
        if self.key(update) != update.email:
            body["unique_key"] = self.key(update)
        # In Splio a list IS the email subscription, so both kinds of list are subscriptions (a
        # judgement: Splio has no plain membership).
        joins = self.joins(update)
        if joins:
            body["lists"] = [{"id": i} for i in list_ids(joins)]
        return body

    # -- push --------------------------------------------------------------------------------
    def push(self, updates: list[ContactUpdate]) -> PushResult:
        """Create-vs-update with the fewest calls. Splio has no upsert and no bulk update, so every
        existing contact costs one PATCH whatever we do; the only choice is how to find out which
        contacts exist. Contacts the hub never pushed (previous_lists is None) go to the bulk
        create (1 call per 1,000, lists included); those it reports "already exists" (created
        outside the hub) fall back to PATCH + subscribe. Contacts the hub pushed before go straight
        to PATCH, so a flush of updates spends no bulk call. A PATCH answered 404 (deleted in Splio
        meanwhile; that status is UNVERIFIED) is created in a second bulk call."""
        result = PushResult()
        fresh = [u for u in updates if u.previous_lists is None]
        known = [u for u in updates if u.previous_lists is not None]
        known += self.bulk_create(fresh, result)
        missing = [u for u in known if not self.update(u, result)]
        for update in self.bulk_create(missing, result):
            result.fail(update.email, FatalVendorError("Splio says the contact both exists and is missing",
                                                       code="not_found"))
        result.calls = self.calls
        return result

    def bulk_create(self, updates: list[ContactUpdate], result: PushResult) -> list[ContactUpdate]:
        """Bulk create; returns the contacts Splio says already exist (to be updated instead)."""
        existing: list[ContactUpdate] = []
        for batch in chunks(updates, BULK_MAX):
            response = self.request("POST", "/data/contacts/bulk", ok=(207,),
                                    data=self.dumps({"contacts": [self.create_body(u) for u in batch]}))
            for update, item in self.items(batch, response):
                code = int(item.get("code") or 0)
                description = str(item.get("description") or "")
                if 200 <= code < 300:
                    continue
                if ALREADY_EXISTS in description.lower():
                    existing.append(update)
                else:
                    result.fail(update.email, self.item_error(code, description))
        return existing

    def items(self, batch: Sequence[ContactUpdate], response: requests.Response) -> list[tuple[ContactUpdate, dict]]:
        """Pair 207 items with contacts by contact_id (the unique key), else by position."""
        items = ((response.json() or {}).get("items") or []) if response.content else []
        by_key = {self.key(u).lower(): u for u in batch}
        pairs = []
        for index, item in enumerate(items):
            update = by_key.get(str(item.get("contact_id") or "").lower())
            if update is None and index < len(batch):
                update = batch[index]
            if update is not None:
                pairs.append((update, item))
        return pairs

    @staticmethod
    def item_error(code: int, description: str) -> VendorError:
        if code == 429 or code >= 500:
            return RetriableVendorError(description or f"item {code}", status=code, code=str(code))
        return FatalVendorError(description or f"item {code}", status=code, code=str(code))

    def update(self, update: ContactUpdate, result: PushResult) -> bool:
        """PATCH the fields, then (un)subscribe lists. False when Splio does not know the contact."""
        path = f"/data/contacts/{quote(self.key(update), safe='@')}"
        try:
            body = self.attributes(update)
            if body:
                # Never send `lists` on PATCH: it replaces every membership the contact has.
                self.request("PATCH", path, data=self.dumps(body))
            for action, ids in (("subscribe", self.joins(update)), ("unsubscribe", self.leaves(update))):
                if ids:
                    # https://dev-scp.splio.com/reference/postdatacontactsbyidlistssubscribe
                    self.request("POST", f"{path}/lists/{action}", data=self.dumps({"list_ids": list_ids(ids)}))
        except VendorError as exc:
            if exc.status == 404:
                return False
            if exc.retriable or isinstance(exc, AuthError):
                raise
            result.fail(update.email, exc)
        return True

    # -- erase, check, fields ----------------------------------------------------------------
    def erase(self, emails: list[str]) -> PushResult:
        """DELETE /data/contacts/bulk {"contacts": [keys]} (max 1,000, asynchronous, 207 per item).
        A 404 item means Splio holds nothing for that key, which is what erasure wants."""
        result = PushResult()
        for batch in chunks(emails, BULK_MAX):
            response = self.request("DELETE", "/data/contacts/bulk", ok=(207,),
                                    data=self.dumps({"contacts": list(batch)}))
            stand_ins = [ContactUpdate(email=e) for e in batch]
            for update, item in self.items(stand_ins, response):
                code = int(item.get("code") or 0)
                if not (200 <= code < 300 or code == 404):
                    result.fail(update.email, self.item_error(code, str(item.get("description") or "")))
        result.calls = self.calls
        return result

    def check(self) -> dict[str, Any]:
        """A fresh JWT proves the key; Splio has no call that lists what a key may do, so each
        endpoint the hub uses gets a harmless call (a read, an empty bulk, a PATCH of nothing on a
        contact that cannot exist) and a 403 (Forbidden) marks it missing."""
        self.authenticate()
        nobody = f"/data/contacts/{quote(PROBE_KEY, safe='@')}"
        found = self.probe([
            Probe("GET /data/fields/contacts", "GET", "/data/fields/contacts", {"params": {"per_page": 1}}),
            Probe("POST /data/contacts/bulk", "POST", "/data/contacts/bulk", {"data": self.dumps({"contacts": []})}),
            Probe("PATCH /data/contacts/{key}", "PATCH", nobody, {"data": "{}"}),
            Probe("POST /data/contacts/{key}/lists/subscribe", "POST", f"{nobody}/lists/subscribe",
                  {"data": self.dumps({"list_ids": []})}),
            Probe("POST /data/contacts/{key}/lists/unsubscribe", "POST", f"{nobody}/lists/unsubscribe",
                  {"data": self.dumps({"list_ids": []})}),
            Probe("DELETE /data/contacts/bulk", "DELETE", "/data/contacts/bulk", {"data": self.dumps({"contacts": []})})])
        report = permission_report(found)
        if found.get("GET /data/fields/contacts"):
            report["custom_fields"] = len(self.fields())
        return report

    def fields(self) -> list[dict[str, Any]]:
        """GET /data/fields/contacts, paged: {"count_element", "elements": [{id, name, data_type}]}."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self.request("GET", "/data/fields/contacts", params={"per_page": 100, "page_number": page}).json()
            elements = data.get("elements") or []
            found += [{"name": e["name"], "id": e.get("id"), "type": e.get("data_type")}
                      for e in elements if not e.get("is_system")]
            if not elements or page * 100 >= int(data.get("count_element") or 0):
                return found
            page += 1

    def lists(self) -> list[dict[str, Any]]:
        """GET /data/v1/lists, paged like the fields: {"count_element", "elements": [{id, name}]}."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self.request("GET", "/data/v1/lists", params={"per_page": 100, "page_number": page}).json()
            elements = data.get("elements") or []
            found += [{"id": str(e["id"]), "name": e.get("name") or ""} for e in elements]
            if not elements or page * 100 >= int(data.get("count_element") or 0):
                return found
            page += 1

    # -- read (the anti-entropy audit) -------------------------------------------------------
    def read(self, updates: list[ContactUpdate]) -> dict[str, ContactView | None]:
        """GET /data/contacts/{unique_key}, one call per contact (Splio has no bulk read by key;
        https://dev-scp.splio.com/reference, "Get a contact"): standard keys at the top level,
        `custom_fields` [{id, name, value, data_type}] and `lists` [{id, name}]. A 404 means
        Splio holds no such contact. Consent is list membership in Splio, so there is no
        separate consent to read."""
        views: dict[str, ContactView | None] = {}
        for update in updates:
            try:
                data = self.request("GET", f"/data/contacts/{quote(self.key(update), safe='@')}").json()
            except VendorError as exc:
                if exc.status != 404:
                    raise
                views[update.email] = None
                continue
            fields = {k: data[k] for k in STANDARD if k in data and k != "email"}
            for item in data.get("custom_fields") or []:
                fields[str(item.get("name"))] = item.get("value")
                fields[str(item.get("id"))] = item.get("value")
            views[update.email] = ContactView(fields=fields, lists={str(i.get("id")) for i in data.get("lists") or []})
        return views
