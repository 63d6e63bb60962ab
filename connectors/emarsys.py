"""Emarsys: contacts keyed by field 3 with numeric custom field ids, opt-in field 31, contact lists, erasure.

Core API v3 with OAuth2 client credentials ("OpenID Connect" API credentials), the recommended
path and the one used whenever its credentials are set; or v2 with the legacy X-WSSE header,
which Emarsys is retiring (see WSSE_RETIREMENT). docs/connectors.md holds every fact with its source.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import date, datetime, timezone
from typing import Any, Callable, Collection, Sequence

import requests
from requests.auth import AuthBase

from .base import Connector, ContactUpdate, ContactView, Probe, PushResult, chunks, permission_report
from .errors import AuthError, FatalVendorError, RateLimited, RetriableVendorError, VendorError
from .ratelimit import Budget

# Emarsys' own API collection (github.com/emartech/Emarsys-postman-collection, readme.md) sets the
# access token URL to this, with the client id and secret in a Basic auth header, for the v3 API.
AUTH_URL = "https://auth.emarsys.net/oauth2/token"
# WSSE's end of life as a secondary source reports it (api-evangelist/emarsys lifecycle, citing the
# dev.emarsys.com changelog entry of 2024-11-08). NOT confirmed on Emarsys' own pages: none we
# could reach states a date. Logged at start-up while WSSE credentials are configured.
WSSE_RETIREMENT = "2026-12-31"
EMAIL_FIELD = "3"
OPT_IN_FIELD = "31"
OPTED_IN, OPTED_OUT = 1, 2          # field 31 is single-choice: 1 = True, 2 = False
CONTACTS_MAX = 1_000                # PUT /contact: above this, 400 with replyCode 1000
LIST_MAX = 1_000                    # external_ids per list call (10,000 is single-source)
DELETE_MAX = 1_000                  # POST /contact/delete
NOT_FOUND = "2008"                  # "No contact found with the external ID"
NO_KEY = "<NO_KEY_ID>"              # a data.errors key meaning a root-level error
PROBE_EMAIL = "permission-check@hub.invalid"   # RFC 2606: no mailbox can exist under .invalid
# The current docs say ~1000 requests/min per API user "depending on server load" (a single
# secondary source); the older docs only guarantee at least 200/min. We budget the guaranteed
# floor, a little under it, per API user (this connector's credentials).
RATE_LIMITS = {"api": Budget(((1000, 60.0),), "Emarsys API docs: about 1,000 requests a minute per API user",
                             margin=((190, 60.0),),
                             reason="the 1,000 a minute holds only 'depending on server load'; older docs "
                                    "guarantee at least 200 a minute, and the hub budgets a little under that")}


def encode(value: Any) -> str:
    """Emarsys takes Decimals as strings (keeping their places) and dates in ISO form."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def wsse_digest(nonce: str, created: str, secret: str) -> str:
    """Base64 of the 40-char lowercase HEX sha1 (not of the raw 20 bytes), as Emarsys checks it."""
    return base64.b64encode(hashlib.sha1((nonce + created + secret).encode()).hexdigest().encode()).decode()


class WsseAuth(AuthBase):
    """A fresh X-WSSE UsernameToken on every request (new nonce, Created within Emarsys' ±5 min)."""

    def __init__(self, username: str, secret: str, clock: Callable[[], float]) -> None:
        self.username = username
        self._secret = secret
        self.clock = clock

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        nonce = secrets.token_hex(16)
        created = datetime.fromtimestamp(self.clock(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        request.headers["X-WSSE"] = (
            f'UsernameToken Username="{self.username}", PasswordDigest="{wsse_digest(nonce, created, self._secret)}", '
            f'Nonce="{nonce}", Created="{created}"')
        return request

    def __repr__(self) -> str:
        return f"WsseAuth(username={self.username!r})"


class EmarsysConnector(Connector):
    name = "emarsys"
    label = "SAP Emarsys"
    max_batch = CONTACTS_MAX
    # Five upserts' worth a flush, so list adds (1,000 ids a call) fill across them.
    flush_batch = 5 * CONTACTS_MAX
    # A flush costs 1 upsert + 1 call per list touched against ~190 calls/min: pace partial batches.
    coalesce_seconds = 1.0
    flush_interval = 1.5
    fill_forced_flush = True
    secret_settings = ("secret", "client_secret")
    # WSSE credentials; OAuth-only setups (client_id + client_secret) are covered by `configured`.
    required_settings = ("username", "secret")
    default_base_url = "https://api.emarsys.net"

    def __init__(self, settings: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.oauth = self.oauth_configured(self.settings)
        # v3 keeps v2's resource paths: Emarsys states most endpoints and payloads are unchanged
        # between the two (dev.emarsys.com changelog, via api-evangelist/emarsys), and an
        # independent v3 client (hobbii/emarsys-sdk-php) calls contact/ and contactlist/ under /api/v3.
        self.api = "/api/v3" if self.oauth else "/api/v2"
        self.wsse = WsseAuth(self.settings.get("username") or "", self.settings.get("secret") or "",
                             lambda: self.clock())

    @staticmethod
    def oauth_configured(settings: dict[str, Any]) -> bool:
        return bool(settings.get("client_id") and settings.get("client_secret"))

    @staticmethod
    def wsse_configured(settings: dict[str, Any]) -> bool:
        return bool(settings.get("username") and settings.get("secret"))

    @classmethod
    def configured(cls, settings: dict[str, Any]) -> bool:
        """Enabled with OAuth (client_id + client_secret) or WSSE (username + secret)."""
        return cls.oauth_configured(settings) or cls.wsse_configured(settings)

    @classmethod
    def startup_warnings(cls, settings: dict[str, Any]) -> list[str]:
        """WSSE is being retired (date from a secondary source, not confirmed by Emarsys itself)."""
        if not cls.wsse_configured(settings):
            return []
        if cls.oauth_configured(settings):
            return [f"Emarsys WSSE credentials (HUB_EMARSYS_USERNAME/SECRET) are set but unused: the hub uses the "
                    f"OAuth2 credentials. Remove them; WSSE is reported to retire on {WSSE_RETIREMENT} "
                    "(a secondary source; Emarsys' own pages confirm no date)."]
        return [f"Emarsys is using WSSE, reported to retire on {WSSE_RETIREMENT} (a secondary source; Emarsys' "
                "own pages confirm no date). Create OpenID Connect API credentials in Emarsys (Management > "
                "Security Settings) and set HUB_EMARSYS_CLIENT_ID and HUB_EMARSYS_CLIENT_SECRET."]

    @property
    def token_url(self) -> str:
        if self.settings.get("token_url"):
            return str(self.settings["token_url"])
        # A base_url override (the sandbox) serves the token endpoint too.
        return AUTH_URL if self.base_url == self.default_base_url else f"{self.base_url}/oauth2/token"

    # -- auth ----------------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.oauth:
            headers["Authorization"] = f"Bearer {self.access_token()}"
        return headers

    def token_credentials(self) -> dict[str, Any]:
        return {"client_id": self.settings.get("client_id"), "client_secret": self.settings.get("client_secret"),
                "token_url": self.token_url}

    def access_token(self) -> str:
        """The cached token (this instance's, or the one other jobs share) until shortly before the
        `expires_in` its answer stated; else a new one from the token endpoint."""
        cached = self.token_cache.get()
        if cached is not None:
            return cached.value
        try:
            self.calls += 1
            response = self.session.post(self.token_url, data={"grant_type": "client_credentials"},
                                         auth=(self.settings["client_id"], self.settings["client_secret"]),
                                         headers={"Accept": "application/json"}, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetriableVendorError(f"{type(exc).__name__} fetching an Emarsys token", code="network")
        if not response.ok:
            raise self.token_error(response)
        body = response.json()
        # Emarsys states the lifetime (about an hour); 3600 s where an answer leaves it out.
        return self.token_cache.put(str(body["access_token"]), float(body.get("expires_in") or 3600)).value

    def token_error(self, response: requests.Response) -> VendorError:
        try:
            body = response.json()
            code, message = body.get("error"), body.get("error_description") or body.get("error")
        except ValueError:
            code, message = None, self.describe(response)
        if response.status_code >= 500 or response.status_code == 429:
            return self.classify(response, code, f"token endpoint: {message}")
        return AuthError(f"token endpoint: {message}", status=response.status_code, code=code)

    def request(self, method: str, path: str, *, ok: Sequence[int] = (), **kwargs: Any) -> requests.Response:
        if not self.oauth:
            return super().request(method, path, ok=ok, auth=self.wsse, **kwargs)
        try:
            return super().request(method, path, ok=ok, **kwargs)
        except AuthError as exc:
            if exc.status != 401:
                raise
            self.token_cache.drop()     # expired or revoked: fetch a new token and retry once
            return super().request(method, path, ok=ok, **kwargs)

    def send(self, method: str, path: str, body: dict[str, Any]) -> requests.Response:
        return self.request(method, path, data=json.dumps(body, separators=(",", ":"), default=encode),
                            headers={"Content-Type": "application/json"})

    # -- limits and errors ---------------------------------------------------------------------
    rate_limits = RATE_LIMITS

    def bucket_for(self, method: str, path: str) -> str:
        return "api"

    def error_from_response(self, response: requests.Response) -> VendorError:
        """Emarsys errors: {"replyCode": <int>, "replyText": "...", "data": ...}; a 429 carries
        X-RateLimit-Reset (a unix timestamp) and no Retry-After."""
        code, message = None, self.describe(response)
        try:
            body = response.json()
            code, message = str(body["replyCode"]), str(body.get("replyText") or message)
        except (ValueError, KeyError, TypeError):
            pass
        if response.status_code == 429:
            return RateLimited(message, status=429, code=code, retry_after=self.reset_wait(response))
        # A 401 under WSSE is most often clock skew: Created must be within 5 minutes of Emarsys time.
        return self.classify(response, code, message)

    def reset_wait(self, response: requests.Response) -> float | None:
        reset = response.headers.get("X-RateLimit-Reset")
        try:
            return max(0.0, float(reset) - self.clock()) if reset else self.retry_after(response)
        except ValueError:
            return None

    @staticmethod
    def data(response: requests.Response) -> dict[str, Any]:
        """The `data` of a 200 answer; a non-zero replyCode without per-record errors fails the call."""
        body = response.json()
        data = body.get("data") if isinstance(body, dict) else None
        data = data if isinstance(data, dict) else {}
        if str(body.get("replyCode", 0)) != "0" and not data.get("errors"):
            raise FatalVendorError(str(body.get("replyText")), status=response.status_code, code=str(body["replyCode"]))
        return data

    @staticmethod
    def record_errors(data: dict[str, Any], emails: dict[str, str], result: PushResult,
                      ignore: Collection[str] = ()) -> None:
        """data.errors = {"<key value>": {"<replyCode>": "<text>"}}: each key's contact failed alone."""
        for key, codes in (data.get("errors") or {}).items():
            code, text = next(iter(codes.items())) if isinstance(codes, dict) and codes else (None, str(codes))
            if code in ignore:
                continue
            error = FatalVendorError(f"{code}: {text}", status=200, code=code)
            if key == NO_KEY:
                result.fail_all(emails.values(), error)
            elif str(key).strip().lower() in emails:
                result.fail(emails[str(key).strip().lower()], error)

    # -- bodies --------------------------------------------------------------------------------
    @staticmethod
    def key_of(update: ContactUpdate) -> tuple[str, Any]:
        if update.identity:
            return next(iter(update.identity.items()))
        return EMAIL_FIELD, update.email

    @classmethod
    def contact(cls, update: ContactUpdate) -> dict[str, Any]:
        # https://dev.emarsys.com/docs/core-api-reference/f8ljhut3ac2i1-update-contacts
        key_id, key = cls.key_of(update)
        body = {**update.fields, key_id: key}
        # Opt-in is written only when the hub's consent changes (no -> yes, yes -> no), never from
        # a mapped field nor a list change, so an unsubscribe made inside Emarsys is never undone.
        body.pop(OPT_IN_FIELD, None)
        if update.consent_granted:
            body[OPT_IN_FIELD] = OPTED_IN
        elif update.consent_withdrawn:
            body[OPT_IN_FIELD] = OPTED_OUT
        return body

    # -- push ----------------------------------------------------------------------------------
    def push(self, updates: list[ContactUpdate]) -> PushResult:
        result = PushResult()
        groups: dict[str, list[ContactUpdate]] = {}
        for update in updates:
            groups.setdefault(self.key_of(update)[0], []).append(update)
        for key_id, group in groups.items():
            for batch in chunks(group, CONTACTS_MAX):
                self.upsert(key_id, batch, result)
        self.change_lists("add", [u for u in updates if u.email not in result.failed], ContactUpdate.joins, result)
        self.change_lists("delete", [u for u in updates if u.email not in result.failed],
                          lambda u: u.dropped_lists(), result)
        result.calls = self.calls
        return result

    def upsert(self, key_id: str, batch: Sequence[ContactUpdate], result: PushResult) -> None:
        body = {"key_id": key_id, "contacts": [self.contact(u) for u in batch]}
        response = self.send("PUT", f"{self.api}/contact/?create_if_not_exists=1", body)
        keys = {str(self.key_of(u)[1]).strip().lower(): u.email for u in batch}
        self.record_errors(self.data(response), keys, result)

    def change_lists(self, action: str, updates: list[ContactUpdate],
                     lists_of: Callable[[ContactUpdate], list[str]], result: PushResult) -> None:
        # https://dev.emarsys.com/docs/core-api-reference/ "Add contacts to a contact list" / "Remove"
        groups: dict[tuple[str, str], dict[str, str]] = {}
        for update in updates:
            key_id, key = self.key_of(update)
            for list_id in lists_of(update):
                groups.setdefault((list_id, key_id), {})[str(key)] = update.email
        for (list_id, key_id), members in groups.items():
            for batch in chunks(sorted(members), LIST_MAX):
                response = self.send("POST", f"{self.api}/contactlist/{list_id}/{action}",
                                     {"key_id": key_id, "external_ids": list(batch)})
                keys = {k.lower(): members[k] for k in batch}
                # Leaving a list the contact is not in (2008) is already the wanted state.
                self.record_errors(self.data(response), keys, result, ignore=(NOT_FOUND,) if action == "delete" else ())

    # -- erase, check, fields ------------------------------------------------------------------
    def erase(self, emails: list[str]) -> PushResult:
        """Irreversible delete by email (field 3); contacts Emarsys never had count as erased."""
        result = PushResult()
        for batch in chunks(list(emails), DELETE_MAX):
            try:
                response = self.send("POST", f"{self.api}/contact/delete",
                                     {"key_id": EMAIL_FIELD, EMAIL_FIELD: list(batch)})
            except FatalVendorError as exc:
                if exc.code == NOT_FOUND and not isinstance(exc, AuthError):
                    continue
                raise
            self.record_errors(self.data(response), {e.lower(): e for e in batch}, result, ignore=(NOT_FOUND,))
        result.calls = self.calls
        return result

    def check(self) -> dict[str, Any]:
        """The settings read proves the credentials; a harmless call to each other endpoint the hub
        uses shows whether the credential's permissions include it. Emarsys has no call that lists
        a credential's permissions, and which status it gives a missing one is not documented, so
        a 401 or 403 from any probe counts as missing."""
        data = self.data(self.request("GET", f"{self.api}/settings"))
        found = self.probe(self.probes(), refused=(401, 403))
        return permission_report(found, account=data.get("name"), environment=data.get("environment"),
                                 auth="oauth2" if self.oauth else "wsse")

    def probes(self) -> list[Probe]:
        """Reads, or writes of nothing: no key to create (create_if_not_exists unset) at an address
        that cannot exist, empty id lists, list 0 (no list has that id)."""
        def body(data: dict[str, Any]) -> dict[str, Any]:
            return {"data": json.dumps(data), "headers": {"Content-Type": "application/json"}}
        api = self.api
        return [Probe("GET field/translate", "GET", f"{api}/field/translate/en"),
                Probe("PUT contact", "PUT", f"{api}/contact/",
                      options=body({"key_id": EMAIL_FIELD, "contacts": [{EMAIL_FIELD: PROBE_EMAIL}]})),
                Probe("POST contactlist/add", "POST", f"{api}/contactlist/0/add",
                      options=body({"key_id": EMAIL_FIELD, "external_ids": []})),
                Probe("POST contactlist/delete", "POST", f"{api}/contactlist/0/delete",
                      options=body({"key_id": EMAIL_FIELD, "external_ids": []})),
                Probe("POST contact/delete", "POST", f"{api}/contact/delete",
                      options=body({"key_id": EMAIL_FIELD, EMAIL_FIELD: []}))]

    def fields(self) -> list[dict[str, Any]]:
        body = self.request("GET", f"{self.api}/field/translate/en").json()
        return [{"name": f["name"], "id": str(f["id"]), "type": f.get("application_type")}
                for f in body.get("data") or []]

    def lists(self) -> list[dict[str, Any]]:
        """GET {api}/contactlist: every contact list of the account, {"id", "name", ...} each."""
        body = self.request("GET", f"{self.api}/contactlist").json()
        return [{"id": str(item["id"]), "name": item.get("name") or ""} for item in body.get("data") or []]

    # -- read (the anti-entropy audit) ---------------------------------------------------------
    read_batch = CONTACTS_MAX        # getdata takes up to 1,000 keys

    def read(self, updates: list[ContactUpdate]) -> dict[str, ContactView | None]:
        """POST {api}/contact/getdata {"keyId", "keyValues", "fields"} (v3 under OAuth2, v2 under
        WSSE; Emarsys Suite API docs,
        "Querying Contact Data"): at most 1,000 keys a call, `data.result` one row per contact
        found (values as strings, keyed by field id), keys not found listed in `data.errors`
        with 2008. Field 31 is the opt-in (1 True, 2 False). List membership is not read back:
        Emarsys lists the members of a list (GET /api/v2/contactlist/{id}/), not the lists of a
        contact, so reading it for a sample means paging through whole lists."""
        views: dict[str, ContactView | None] = {u.email: None for u in updates}
        groups: dict[str, list[ContactUpdate]] = {}
        for update in updates:
            groups.setdefault(self.key_of(update)[0], []).append(update)
        for key_id, group in groups.items():
            for batch in chunks(group, CONTACTS_MAX):
                keys = {str(self.key_of(u)[1]).strip().lower(): u.email for u in batch}
                wanted = {key_id, OPT_IN_FIELD} | {f for u in batch for f in u.fields}
                body = {"keyId": key_id, "keyValues": [str(self.key_of(u)[1]) for u in batch],
                        "fields": sorted((int(f) if f.isdigit() else f for f in wanted), key=str)}
                data = self.data(self.send("POST", f"{self.api}/contact/getdata", body))
                rows = data.get("result")
                for row in rows if isinstance(rows, list) else []:
                    email = keys.get(str(row.get(key_id) or "").strip().lower())
                    if email is not None:
                        values = {str(k): v for k, v in row.items() if k not in ("id", "uid")}
                        views[email] = ContactView(fields=values, marketing_consent={"1": True, "2": False}.get(
                            str(values.get(OPT_IN_FIELD) or "")), consent_read=True)
        return views
