"""Salesforce core REST: Contact upsert by an external-id field, CampaignMember for lists, erasure.

OAuth2 (refresh token, JWT bearer or client credentials) against the login URL; the data calls go
to the `instance_url` the token answer names, on a pinned API version
(https://developer.salesforce.com/docs/platform/api-rest/guide/intro_oauth_and_connected_apps.html).
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, Sequence, TypeVar
from urllib.parse import urlencode

import jwt
import requests

from .base import MARKETING, Connector, ContactUpdate, ContactView, PushResult, chunks, permission_report
from .errors import AuthError, FatalVendorError, RateLimited, RetriableVendorError, VendorError
from .ratelimit import Budget
from .tokens import Token

T = TypeVar("T")

LOGIN_URL = "https://login.salesforce.com"
API_VERSION = "62.0"                 # sObject Collections upsert needs v46+
# The token answer states no lifetime: the session ends after the org's session timeout, two hours
# by default (https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_error_handling_session_exp.htm).
# An org set shorter names its timeout in HUB_SALESFORCE_SESSION_TIMEOUT; one that ends a session
# early anyway costs one INVALID_SESSION_ID, which drops the token and logs in again.
SESSION_TIMEOUT = 2 * 3600
EXTERNAL_ID = "Referral_Hub_Email__c"
COLLECTION_MAX = 200                 # records (or ids) per sObject Collections call
# The longest encoded query string of a SOQL GET: servers commonly refuse a request line over
# 4 KB whole (414; gunicorn's cap is 4,094 bytes), and 200 ids or emails in an IN list pass it.
QUERY_MAX = 3_800
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Contact.LastName is required on create. When the hub knows no last name it sends this, but only
# where the Contact is being created: never over a name someone typed into Salesforce.
PLACEHOLDER_LAST_NAME = "[not provided]"
OPT_OUT_FIELD = "HasOptedOutOfEmail"
# Sforce-Limit-Info reports the rolling 24 h allocation; we stop short of it so the org's other
# integrations keep some headroom, and wait as for REQUEST_LIMIT_EXCEEDED.
USAGE_CEILING = 0.95
ALLOCATION_WAIT = 3600.0             # 24 h allocation spent: come back much later
CONCURRENCY_WAIT = 60.0              # too many concurrent long calls: a short while
ALREADY_GONE = ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY")
USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
# describe's object-level flags (DescribeSObjectResult) and what each lets the hub do.
OBJECT_FLAGS = {"queryable": "read", "createable": "create", "updateable": "edit", "deletable": "delete"}
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def quote(values: Sequence[str]) -> str:
    """SOQL string literals, comma-separated: backslashes and quotes escaped."""
    return ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


def soql_batches(items: Sequence[T], soql: Callable[[Sequence[T]], str], most: int = COLLECTION_MAX) -> list[list[T]]:
    """`items` in batches of at most `most` whose query, `soql(batch)`, keeps its encoded query
    string under QUERY_MAX (a lone item that does not fit still goes alone)."""
    batches: list[list[T]] = [[]]
    for item in items:
        if batches[-1] and (len(batches[-1]) >= most or
                            len(urlencode({"q": soql([*batches[-1], item])})) > QUERY_MAX):
            batches.append([])
        batches[-1].append(item)
    return [b for b in batches if b]


def encode(value: Any) -> Any:
    """JSON numbers for Decimal (currency, double fields), ISO 8601 for dates."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


class SalesforceConnector(Connector):
    name = "salesforce"
    label = "Salesforce"
    max_batch = COLLECTION_MAX
    # Five collections' worth a flush, so CampaignMember inserts (200 a call) fill across them.
    flush_batch = 5 * COLLECTION_MAX
    # No per-second limit, but every call counts against the 24 h allocation: fill collections.
    coalesce_seconds = 1.0
    flush_interval = 1.0
    secret_settings = ("client_secret", "refresh_token", "private_key")
    required_settings = ("client_id",)
    default_base_url = LOGIN_URL

    def __init__(self, settings: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.login_url = (self.settings.get("login_url") or self.base_url).rstrip("/")
        version = str(self.settings.get("api_version") or API_VERSION).lstrip("vV")
        self.api = f"/services/data/v{version}"
        self.external_id = str(self.settings.get("external_id_field") or EXTERNAL_ID)
        self.scopes: set[str] | None = None
        self.instance_url = ""
        self.usage: tuple[int, int] | None = None

    # -- auth ----------------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}", "Accept": "application/json"}

    def token_credentials(self) -> dict[str, Any]:
        names = ("grant", "client_id", "client_secret", "refresh_token", "username", "private_key")
        return {**{name: self.settings.get(name) for name in names},
                "login_url": self.settings.get("login_url") or self.base_url}

    def access_token(self) -> str:
        """The cached session (this instance's, or the one other jobs share), else a new login."""
        cached = self.token_cache.get()
        if cached is None:
            cached = self.login()
        self.instance_url = str(cached.extra["instance_url"])
        scopes = cached.extra.get("scope")
        self.scopes = set(scopes.split()) if isinstance(scopes, str) else None
        return cached.value

    def session_timeout(self) -> float:
        value = self.settings.get("session_timeout")
        if not value:
            return SESSION_TIMEOUT
        try:
            seconds = float(value)
        except ValueError:
            seconds = 0.0
        if seconds <= 0:
            raise FatalVendorError(f"session_timeout: {value!r} is not a number of seconds above 0", code="bad_setting")
        return seconds

    def token_request(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        """The form body (and Basic auth) of the configured grant."""
        grant = self.settings.get("grant") or "refresh_token"
        client_id = self.settings.get("client_id") or ""
        if grant == "refresh_token":
            return {"grant_type": "refresh_token", "refresh_token": self.settings.get("refresh_token") or "",
                    "client_id": client_id, "client_secret": self.settings.get("client_secret") or ""}, None
        if grant == "jwt":
            return {"grant_type": JWT_GRANT, "assertion": self.assertion()}, None
        if grant == "client_credentials":
            # Must go to the org's My Domain URL, not login/test; the connected app needs a run-as
            # user (that requirement is UNVERIFIED; Salesforce answers invalid_grant without one).
            return {"grant_type": "client_credentials"}, (client_id, self.settings.get("client_secret") or "")
        raise FatalVendorError(f"unknown Salesforce grant {grant!r}", code="bad_setting")

    def assertion(self) -> str:
        """RS256 JWT: iss = consumer key, sub = username, aud = the login host, exp ~3 minutes out."""
        audience = "https://test.salesforce.com" if ("test.salesforce.com" in self.login_url
                                                     or ".sandbox.my.salesforce.com" in self.login_url) \
            else "https://login.salesforce.com"
        key = str(self.settings.get("private_key") or "").replace("\\n", "\n")  # env vars flatten newlines
        claims = {"iss": self.settings.get("client_id"), "sub": self.settings.get("username"),
                  "aud": audience, "exp": int(self.clock()) + 180}
        try:
            return jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            raise AuthError("the Salesforce private_key is not a usable RSA PEM key", code="bad_private_key") from None

    def login(self) -> Token:
        timeout = self.session_timeout()
        data, basic = self.token_request()
        try:
            self.calls += 1
            response = self.session.post(f"{self.login_url}/services/oauth2/token", data=data, auth=basic,
                                         headers={"Accept": "application/json"}, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetriableVendorError(f"{type(exc).__name__} logging in to Salesforce", code="network")
        if not response.ok:
            raise self.token_error(response)
        body = response.json()
        scope = body.get("scope") if isinstance(body.get("scope"), str) else None
        return self.token_cache.put(str(body["access_token"]), timeout,
                                    instance_url=str(body["instance_url"]).rstrip("/"), scope=scope)

    def token_error(self, response: requests.Response) -> VendorError:
        """Token errors are OAuth-shaped: {"error": "invalid_grant", "error_description": "..."}."""
        try:
            body = response.json()
            code, message = body.get("error"), f"{body.get('error')}: {body.get('error_description')}"
        except (ValueError, AttributeError):
            code, message = None, self.describe(response)
        if response.status_code >= 500 or "already being processed" in message:
            # Concurrent refreshes of one token can collide; the next attempt succeeds.
            return RetriableVendorError(f"token endpoint: {message}", status=response.status_code, code=code)
        return AuthError(f"token endpoint: {message}", status=response.status_code, code=code)

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.instance_url}{path}"

    def request(self, method: str, path: str, *, ok: Sequence[int] = (), **kwargs: Any) -> requests.Response:
        self.guard_allocation()
        try:
            response = super().request(method, path, ok=ok, **kwargs)
        except AuthError as exc:
            if exc.code != "INVALID_SESSION_ID":
                raise
            self.token_cache.drop()     # the session expired: log in again and retry once
            response = super().request(method, path, ok=ok, **kwargs)
        self.track(response)
        return response

    def send(self, method: str, path: str, body: dict[str, Any]) -> requests.Response:
        return self.request(method, path, data=json.dumps(body, separators=(",", ":"), default=encode),
                            headers={"Content-Type": "application/json"})

    # -- limits and errors ---------------------------------------------------------------------
    # No per-second limit on the core REST API: the 24 h allocation (per org, by edition and
    # licences) is watched through Sforce-Limit-Info (`guard_allocation`) and REQUEST_LIMIT_EXCEEDED.
    rate_limits = {"api": Budget((), "Salesforce API request limits and allocations: no per-second limit; "
                                     "a 24 h allocation per org, read from Sforce-Limit-Info")}

    def bucket_for(self, method: str, path: str) -> str:
        return "api"

    def track(self, response: requests.Response) -> None:
        """Remember `Sforce-Limit-Info: api-usage=18/5000` (sent on every answer)."""
        match = USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.usage = (int(match.group(1)), int(match.group(2)))

    def guard_allocation(self) -> None:
        if self.usage and self.usage[1] and self.usage[0] >= USAGE_CEILING * self.usage[1]:
            raise RateLimited(f"Salesforce API usage {self.usage[0]}/{self.usage[1]} is at the hub's ceiling",
                              code="api_usage", retry_after=ALLOCATION_WAIT)

    def error_from_response(self, response: requests.Response) -> VendorError:
        """Errors are a JSON array: [{"message": "...", "errorCode": "MALFORMED_ID", "fields": [...]}]."""
        self.track(response)
        code, message = None, self.describe(response)
        try:
            first = response.json()[0]
            code, message = first.get("errorCode"), f"{first.get('errorCode')}: {first.get('message')}"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            pass
        if code == "REQUEST_LIMIT_EXCEEDED":
            # 403, not 429: the 24 h allocation or the concurrent long-call limit is spent.
            wait = CONCURRENCY_WAIT if "Concurrent" in message else ALLOCATION_WAIT
            return RateLimited(message, status=response.status_code, code=code, retry_after=wait)
        if "UNABLE_TO_LOCK_ROW" in message:
            return RetriableVendorError(message, status=response.status_code, code=code)
        return self.classify(response, code, message)

    @staticmethod
    def record_error(item: dict[str, Any]) -> VendorError:
        """A collection item with success false: errors = [{"statusCode", "message", "fields"}]."""
        first = (item.get("errors") or [{}])[0]
        code, message = first.get("statusCode"), f"{first.get('statusCode')}: {first.get('message')}"
        if code == "UNABLE_TO_LOCK_ROW":
            return RetriableVendorError(message, status=200, code=code)
        return FatalVendorError(message, status=200, code=code)

    # -- bodies --------------------------------------------------------------------------------
    def key_of(self, update: ContactUpdate) -> tuple[str, Any]:
        if update.identity:
            return next(iter(update.identity.items()))
        return self.external_id, update.email

    def record(self, update: ContactUpdate, placeholder: bool | None = None) -> dict[str, Any]:
        # https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html
        field, key = self.key_of(update)
        record: dict[str, Any] = {"attributes": {"type": "Contact"}, **update.fields, field: key}
        if placeholder is None:
            placeholder = update.previous_lists is None      # never pushed: the upsert will create it
        if not record.get("LastName"):
            record.pop("LastName", None)
            if placeholder:
                record["LastName"] = PLACEHOLDER_LAST_NAME
        # Consent is written only when the hub's consent changes (no -> yes, yes -> no), never from
        # a mapped field nor a campaign change, so an opt-out recorded in Salesforce is never undone.
        record.pop(OPT_OUT_FIELD, None)
        if update.consent_granted:
            record[OPT_OUT_FIELD] = False
        elif update.consent_withdrawn:
            record[OPT_OUT_FIELD] = True
        return record

    @staticmethod
    def campaign_member(campaign_id: str, contact_id: str) -> dict[str, Any]:
        # https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-create.html
        # Status is left to the campaign's default member status.
        return {"attributes": {"type": "CampaignMember"}, "CampaignId": campaign_id, "ContactId": contact_id}

    # -- push ----------------------------------------------------------------------------------
    def push(self, updates: list[ContactUpdate]) -> PushResult:
        result = PushResult()
        groups: dict[str, list[ContactUpdate]] = {}
        for update in updates:
            groups.setdefault(self.key_of(update)[0], []).append(update)
        ids: dict[str, str] = {}
        created: set[str] = set()
        for field, group in groups.items():
            for batch in chunks(group, COLLECTION_MAX):
                ids.update(self.upsert(field, batch, result, created))
        self.sync_campaigns([u for u in updates if u.email in ids and u.email not in result.failed], ids, created,
                            result)
        result.calls = self.calls
        return result

    def upsert(self, field: str, batch: Sequence[ContactUpdate], result: PushResult,
               created: set[str] | None = None) -> dict[str, str]:
        """Upsert by the external id (allOrNone false); returns email -> Contact id for those that landed."""
        if not IDENTIFIER.match(field):
            raise FatalVendorError(f"bad external id field name {field!r}", code="bad_mapping")
        ids: dict[str, str] = {}
        created = created if created is not None else set()
        missing = self.upsert_records(field, [(u, self.record(u)) for u in batch], ids, result, created)
        # A Contact the hub had pushed but that is gone from Salesforce is being created again and
        # needs a LastName: those, and only those, are sent once more with the placeholder.
        if missing:
            self.upsert_records(field, [(u, self.record(u, placeholder=True)) for u in missing], ids, result, created)
        return ids

    def upsert_records(self, field: str, pairs: list[tuple[ContactUpdate, dict[str, Any]]], ids: dict[str, str],
                       result: PushResult, created: set[str]) -> list[ContactUpdate]:
        """One collection upsert; returns the updates refused only for a missing LastName."""
        body = {"allOrNone": False, "records": [record for _, record in pairs]}
        items = self.send("PATCH", f"{self.api}/composite/sobjects/Contact/{field}", body).json()
        missing: list[ContactUpdate] = []
        for (update, record), item in zip(pairs, items):
            if item.get("success"):
                ids[update.email] = item["id"]
                if item.get("created"):
                    created.add(update.email)
                continue
            error = self.record_error(item)
            if error.code == "REQUIRED_FIELD_MISSING" and "LastName" in error.message and "LastName" not in record:
                missing.append(update)
            else:
                result.fail(update.email, error)
        return missing

    @staticmethod
    def leaves(update: ContactUpdate) -> list[str]:
        """Campaigns to leave: lists the contact left, and every marketing one when consent is withdrawn."""
        lists = set(update.dropped_lists())
        if update.consent_withdrawn:
            lists |= {i for i, kind in (update.previous_lists or {}).items() if kind == MARKETING}
        return sorted(lists - set(update.joins()))

    def sync_campaigns(self, updates: list[ContactUpdate], ids: dict[str, str], created: set[str],
                       result: PushResult) -> None:
        """Join and leave campaigns. Salesforce's documentation does not say what a second insert of
        the same (CampaignId, ContactId) answers, so the members are looked up first (SOQL) and only
        the missing ones inserted; a Contact this push created has no members, so it is not looked up."""
        joins = [(u.email, ids[u.email], c) for u in updates for c in u.joins()]
        leaves = [(u.email, ids[u.email], c) for u in updates for c in self.leaves(u)]
        if not joins and not leaves:
            return
        bad = {c for _, _, c in joins + leaves if not SALESFORCE_ID.match(c)}
        for email, _, campaign in joins + leaves:
            if campaign in bad:
                result.fail(email, FatalVendorError(f"bad campaign id {campaign!r} in the mapping", code="bad_mapping"))
        joins = [j for j in joins if j[0] not in result.failed]
        leaves = [j for j in leaves if j[0] not in result.failed]
        known = {email for email, _, _ in joins + leaves if email not in created}
        members = self.members([(c, k) for e, c, k in joins + leaves if e in known])
        self.insert_members([j for j in joins if (j[1], j[2]) not in members], result)
        self.delete_members([(e, members[(c, k)]) for e, c, k in leaves if (c, k) in members], result)

    def members(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(ContactId, CampaignId) -> CampaignMember Id, for the pairs Salesforce holds."""
        found: dict[tuple[str, str], str] = {}
        contacts = sorted({c for c, _ in pairs})
        campaigns = sorted({k for _, k in pairs})
        def soql(batch: Sequence[str]) -> str:
            return (f"SELECT Id, ContactId, CampaignId FROM CampaignMember WHERE ContactId IN ({quote(batch)}) "
                    f"AND CampaignId IN ({quote(campaigns)})")

        for batch in soql_batches(contacts, soql):
            for record in self.query(soql(batch)):
                found[(str(record["ContactId"]), str(record["CampaignId"]))] = str(record["Id"])
        return found

    def insert_members(self, joins: list[tuple[str, str, str]], result: PushResult) -> None:
        # https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-create.html
        for batch in chunks(joins, COLLECTION_MAX):
            body = {"allOrNone": False, "records": [self.campaign_member(campaign, contact)
                                                    for _, contact, campaign in batch]}
            items = self.send("POST", f"{self.api}/composite/sobjects", body).json()
            for (email, _, _), item in zip(batch, items):
                if not item.get("success"):
                    result.fail(email, self.record_error(item))

    def delete_members(self, leaves: list[tuple[str, str]], result: PushResult) -> None:
        # https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-delete.html
        def ids(batch: Sequence[tuple[str, str]]) -> str:
            return ",".join(m for _, m in batch)

        for batch in soql_batches(leaves, ids):      # the ids go in the query string too
            items = self.request("DELETE", f"{self.api}/composite/sobjects",
                                 params={"ids": ids(batch), "allOrNone": "false"}).json()
            for (email, _), item in zip(batch, items):
                if not item.get("success"):
                    error = self.record_error(item)
                    if error.code not in ALREADY_GONE:
                        result.fail(email, error)

    # -- erase, check, fields ------------------------------------------------------------------
    def erase(self, emails: list[str]) -> PushResult:
        """Find the Contacts by the external id, then delete them (to the Recycle Bin) 200 at a time."""
        result = PushResult()
        for batch in soql_batches(list(emails), self.lookup_soql):
            found = self.lookup(batch)
            if not found:
                continue
            # https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-delete.html
            items = self.request("DELETE", f"{self.api}/composite/sobjects",
                                 params={"ids": ",".join(found), "allOrNone": "false"}).json()
            for contact_id, item in zip(found, items):
                if not item.get("success"):
                    error = self.record_error(item)
                    if error.code not in ALREADY_GONE:
                        result.fail(found[contact_id], error)
        result.calls = self.calls
        return result

    def lookup(self, emails: Sequence[str]) -> dict[str, str]:
        """Contact id -> email for the emails Salesforce holds under the external id field."""
        if not IDENTIFIER.match(self.external_id):
            raise FatalVendorError(f"bad external id field name {self.external_id!r}", code="bad_setting")
        return {record["Id"]: str(record[self.external_id]).lower() for record in self.query(self.lookup_soql(emails))}

    def lookup_soql(self, emails: Sequence[str]) -> str:
        return f"SELECT Id, {self.external_id} FROM Contact WHERE {self.external_id} IN ({quote(emails)})"

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Every record a SOQL query answers, following nextRecordsUrl."""
        body = self.request("GET", f"{self.api}/query", params={"q": soql}).json()
        records: list[dict[str, Any]] = []
        while True:
            records += body.get("records") or []
            if body.get("done", True) or not body.get("nextRecordsUrl"):
                return records
            body = self.request("GET", body["nextRecordsUrl"]).json()

    def check(self) -> dict[str, Any]:
        """Salesforce says what the integration user may do: the token's scopes, and describe's
        object flags (queryable, createable, updateable, deletable) and field flags for the
        Contact and CampaignMember objects the hub writes."""
        limits = self.request("GET", f"{self.api}/limits").json()
        daily = limits.get("DailyApiRequests") or {}
        found: dict[str, bool] = {}
        if self.scopes is not None:
            # The REST API needs "api"; "full" encompasses every other scope
            # (https://developer.salesforce.com/docs/platform/mobile-sdk/guide/oauth-scope-parameter-values.html).
            found["OAuth scope api"] = bool({"api", "full"} & self.scopes)
        contact = self.describe_object("Contact")
        for flag, verb in OBJECT_FLAGS.items():
            found[f"Contact: {verb}"] = bool(contact.get(flag))
        fields = {f.get("name"): f for f in contact.get("fields") or []}
        external = fields.get(self.external_id) or {}
        found[f"Contact.{self.external_id}: external id"] = bool(external.get("externalId"))
        found["Contact.HasOptedOutOfEmail: edit"] = bool((fields.get("HasOptedOutOfEmail") or {}).get("updateable"))
        member = self.describe_object("CampaignMember")
        for flag in ("queryable", "createable", "deletable"):
            found[f"CampaignMember: {OBJECT_FLAGS[flag]}"] = bool(member.get(flag))
        return permission_report(found, instance_url=self.instance_url, api_version=self.api.rsplit("/v", 1)[1],
                                 daily_api_requests={"max": daily.get("Max"), "remaining": daily.get("Remaining")})

    def describe_object(self, sobject: str) -> dict[str, Any]:
        """An object's describe; {} when the user cannot see the object at all (404 NOT_FOUND)."""
        try:
            return dict(self.request("GET", f"{self.api}/sobjects/{sobject}/describe").json())
        except FatalVendorError as exc:
            if exc.status == 404 and not isinstance(exc, AuthError):
                return {}
            raise

    def fields(self) -> list[dict[str, Any]]:
        describe = self.describe_object("Contact")
        return [{"name": f["name"], "id": f["name"], "type": f["type"]}
                for f in describe.get("fields") or [] if f["name"].endswith("__c")]

    # -- read (the anti-entropy audit) ---------------------------------------------------------
    read_batch = COLLECTION_MAX      # two SOQL queries per 200 contacts

    def read(self, updates: list[ContactUpdate]) -> dict[str, ContactView | None]:
        """Two SOQL queries through GET {api}/query
        (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm):
        the mapped Contact fields and HasOptedOutOfEmail by the external id, then the
        CampaignMember rows (CampaignId, ContactId) of the Contacts found: the campaigns are the
        hub's lists. Both page through nextRecordsUrl."""
        views: dict[str, ContactView | None] = {u.email: None for u in updates}
        ids: dict[str, str] = {}
        groups: dict[str, list[ContactUpdate]] = {}
        for update in updates:
            groups.setdefault(self.key_of(update)[0], []).append(update)
        for key_field, group in groups.items():
            if not IDENTIFIER.match(key_field):
                raise FatalVendorError(f"bad external id field name {key_field!r}", code="bad_mapping")
            def contacts_of(batch: Sequence[ContactUpdate], field: str = key_field) -> str:
                return self.contacts_soql(field, batch)

            for chunk in soql_batches(group, contacts_of):
                ids.update(self.read_contacts(key_field, chunk, views))
        def members_of(batch: Sequence[str]) -> str:
            return f"SELECT ContactId, CampaignId FROM CampaignMember WHERE ContactId IN ({quote(batch)})"

        for found in soql_batches([i for i in sorted(ids) if SALESFORCE_ID.match(i)], members_of):
            for record in self.query(members_of(found)):
                view = views.get(ids.get(str(record.get("ContactId")), ""))
                if view is not None and view.lists is not None:
                    view.lists.add(str(record["CampaignId"]))
        return views

    def contacts_soql(self, key_field: str, batch: Sequence[ContactUpdate]) -> str:
        """The audit's Contact query for one batch: the mapped fields and the opt-out, by key."""
        keys = list(dict.fromkeys(str(self.key_of(u)[1]).strip().lower() for u in batch))
        names = sorted({n for u in batch for n in u.fields if IDENTIFIER.match(n)} - {key_field, "Id"})
        columns = ", ".join(["Id", key_field, "HasOptedOutOfEmail", *[n for n in names if n != "HasOptedOutOfEmail"]])
        return f"SELECT {columns} FROM Contact WHERE {key_field} IN ({quote(keys)})"

    def read_contacts(self, key_field: str, batch: Sequence[ContactUpdate],
                      views: dict[str, ContactView | None]) -> dict[str, str]:
        """Fill `views` for one batch; returns Contact id -> email for those found."""
        keys = {str(self.key_of(u)[1]).strip().lower(): u.email for u in batch}
        names = sorted({n for u in batch for n in u.fields if IDENTIFIER.match(n)} - {key_field, "Id"})
        found: dict[str, str] = {}
        for record in self.query(self.contacts_soql(key_field, batch)):
            email = keys.get(str(record.get(key_field) or "").strip().lower())
            if email is None:
                continue
            # HasOptedOutOfEmail false is every Contact's default: it says no opt-out, not an
            # opt-in. Only a true is a consent fact (withdrawn).
            views[email] = ContactView(fields={n: record.get(n) for n in names}, lists=set(),
                                       marketing_consent=False if record.get("HasOptedOutOfEmail") is True else None,
                                       consent_read=True)
            found[str(record["Id"])] = email
        return found
