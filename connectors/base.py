"""The small base every connector builds on: session, auth, timeouts, throttling, error mapping.

A connector turns rendered contacts (`ContactUpdate`) into its vendor's real API calls. It knows
nothing of Flask, Redis keys or the hub: the hub hands it settings, an optional shared
`RateLimiter`, an optional shared `TokenStore` (connectors/tokens.py), and batches no larger than
`flush_batch` (`max_batch` unless the connector splits a flush's contacts into calls of
`max_batch` itself).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Sequence

import requests

from .errors import AuthError, FatalVendorError, RateLimited, RetriableVendorError, VendorError
from .ratelimit import Budget, Limit, RateLimiter
from .tokens import TokenCache, TokenStore

MARKETING = "marketing"
TRANSACTIONAL = "transactional"


@dataclass
class ContactUpdate:
    """One contact as the mapping rendered it, plus what the hub last pushed for it.

    fields: vendor field name -> value, already transformed by the mapping.
    lists: list id -> MARKETING or TRANSACTIONAL, the lists the contact belongs in now.
    marketing_consent: True / False when the hub knows it, None when it does not.
    previous_lists / previous_consent: what the last successful push sent (None: never pushed),
    so a connector adds only new memberships and withdraws consent only where it gave it.
    """

    email: str
    fields: dict[str, Any] = field(default_factory=dict)
    lists: dict[str, str] = field(default_factory=dict)
    marketing_consent: bool | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    previous_lists: dict[str, str] | None = None
    previous_consent: bool | None = None

    def lists_of(self, kind: str) -> list[str]:
        return sorted(i for i, k in self.lists.items() if k == kind)

    def new_lists(self, kind: str | None = None) -> list[str]:
        """Lists the contact must join that the last push did not already join."""
        before = self.previous_lists or {}
        return sorted(i for i, k in self.lists.items() if i not in before and (kind is None or k == kind))

    def dropped_lists(self, kind: str | None = None) -> list[str]:
        """Lists the last push joined that the contact no longer belongs in."""
        before = self.previous_lists or {}
        return sorted(i for i, k in before.items() if i not in self.lists and (kind is None or k == kind))

    def joins(self) -> list[str]:
        """Lists to join now: new transactional ones, and marketing ones only with consent (all
        of them again when consent was just given, since the vendor may have dropped them)."""
        lists = set(self.new_lists(TRANSACTIONAL))
        if self.marketing_consent is True:
            lists |= set(self.lists_of(MARKETING) if self.consent_granted else self.new_lists(MARKETING))
        return sorted(lists)

    @property
    def consent_granted(self) -> bool:
        """Consent is true now and was not already sent as true."""
        return self.marketing_consent is True and self.previous_consent is not True

    @property
    def consent_withdrawn(self) -> bool:
        """Consent is false now and the hub had sent it as true before."""
        return self.marketing_consent is False and self.previous_consent is True


@dataclass
class PushResult:
    """Per-contact outcome of a push or erase: every email not in `failed` or `pending` succeeded.

    pending: vendor job reference -> the emails (in the order sent) whose outcome waits on that
    asynchronous job; the hub checks it later (`Connector.check_job`) and then `finish`es them.
    """

    failed: dict[str, VendorError] = field(default_factory=dict)
    calls: int = 0
    pending: dict[str, list[str]] = field(default_factory=dict)

    def fail(self, email: str, error: VendorError) -> None:
        self.failed.setdefault(email, error)

    def fail_all(self, emails: Iterable[str], error: VendorError) -> None:
        for email in emails:
            self.fail(email, error)


@dataclass
class Probe:
    """A harmless call to one endpoint the hub needs: it reads, or writes nothing (an empty list,
    a contact that cannot exist), so `check` can learn whether the credentials may use it."""

    permission: str
    method: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)


def permission_report(found: dict[str, bool], **extra: Any) -> dict[str, Any]:
    """`check`'s answer: ok only when every permission the hub needs is granted."""
    missing = sorted(name for name, granted in found.items() if not granted)
    return {"ok": not missing, **extra, "permissions": {k: "granted" if v else "missing" for k, v in found.items()},
            "missing": missing}


@dataclass
class ContactView:
    """What a vendor holds for one contact, read back for the anti-entropy audit.

    fields: vendor field name -> value as the vendor returns it (the audit compares loosely:
    "2" equals 2, "59.90" equals 59.9, two spellings of one instant are equal).
    lists: the list ids the contact is in, or None where the vendor's read does not say.
    marketing_consent: True / False / None as the vendor holds it; meaningful only when
    `consent_read` (some reads do not return consent at all).
    """

    fields: dict[str, Any] = field(default_factory=dict)
    lists: set[str] | None = None
    marketing_consent: bool | None = None
    consent_read: bool = False


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class JobCheck:
    """Where a vendor's asynchronous job stands: still running, or done with per-contact failures."""

    done: bool
    failed: dict[str, VendorError] = field(default_factory=dict)


class Connector:
    """Base class: subclasses set `name`, `settings_fields`, `secret_settings` and implement
    `auth_headers`, `push`, `erase`, `check`, `fields`; they override `error_from_response` for
    the vendor's error shape, and declare `rate_limits` (bucket -> Budget) with `limits_for`
    naming the bucket of each call."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    max_batch: ClassVar[int] = 100
    # Contacts one flush hands to `push` (0: max_batch). Larger where `push` splits them into
    # calls of max_batch records itself and the list or membership calls that follow then fill
    # across those calls (fewer, fuller calls for a burst).
    flush_batch: ClassVar[int] = 0
    # True where the vendor updates one contact a call (no bulk update): the hub then holds each
    # contact to its freshness deadline rather than sending it with the first full batch.
    updates_one_by_one: ClassVar[bool] = False
    # True where each flush costs calls whatever it carries (Klaviyo's import job and status read,
    # a list call per list): a flush the freshness deadline forces then also takes the contacts
    # still inside their coalescing window, so the next one comes a whole deadline later.
    fill_forced_flush: ClassVar[bool] = False
    secret_settings: ClassVar[tuple[str, ...]] = ()
    required_settings: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str] = ""
    timeout: ClassVar[tuple[float, float]] = (3.05, 20.0)
    # Waits up to this long in-process for a rate-limit slot or a short Retry-After;
    # anything longer goes back to the queue as RateLimited.
    max_inline_wait: ClassVar[float] = 5.0
    # Attempts for one call on 5xx / connection errors before giving up to the queue.
    attempts: ClassVar[int] = 3
    backoff: ClassVar[float] = 0.5
    # Every rate limit the connector obeys, declared once: the limiter, the docs and the
    # benchmark's floor read it (bucket -> published figures, and any margin kept below them).
    rate_limits: ClassVar[dict[str, Budget]] = {}

    def __init__(self, settings: dict[str, Any], *, session: requests.Session | None = None,
                 limiter: RateLimiter | None = None, sleep: Callable[[float], None] = time.sleep,
                 tokens: TokenStore | None = None) -> None:
        self.settings = dict(settings)
        self.base_url = (self.settings.get("base_url") or self.default_base_url).rstrip("/")
        self.session = session or requests.Session()
        self.limiter = limiter
        self.sleep = sleep
        self.calls = 0
        self.clock: Callable[[], float] = time.time
        # Connectors that log in for an access token keep it here; with a store, the token is
        # shared by every connector built with the same credentials (later jobs, other hosts).
        credentials = self.token_credentials()
        secret = any(credentials.get(name) for name in self.secret_settings)
        self.token_cache = TokenCache(self.name, credentials, tokens if secret else None, lambda: self.clock())

    @classmethod
    def configured(cls, settings: dict[str, Any]) -> bool:
        """Enabled when every required setting (the credentials) is present."""
        return bool(cls.required_settings) and all(settings.get(k) for k in cls.required_settings)

    @classmethod
    def startup_warnings(cls, settings: dict[str, Any]) -> list[str]:
        """What ops must hear when the hub starts: e.g. credentials the vendor is retiring."""
        return []

    # -- what subclasses provide -------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {}

    def token_credentials(self) -> dict[str, Any]:
        """Everything an access token depends on (the secrets and where they are sent): the shared
        token's cipher is derived from it, so any change misses the cache."""
        names = (*self.secret_settings, *self.required_settings, "base_url")
        return {name: self.settings.get(name) for name in names}

    def bucket_for(self, method: str, path: str) -> str:
        """The rate-limit bucket (a key of `rate_limits`) one call counts against."""
        return "default"

    def limits_for(self, method: str, path: str) -> tuple[str, Sequence[Limit]]:
        """The rate-limit bucket and the (count, seconds) limits obeyed in it for one call."""
        bucket = self.bucket_for(method, path)
        budget = self.rate_limits.get(bucket)
        return bucket, budget.obeyed if budget is not None else ()

    def push(self, updates: list[ContactUpdate]) -> PushResult:
        raise NotImplementedError

    def erase(self, emails: list[str]) -> PushResult:
        raise NotImplementedError

    def check(self) -> dict[str, Any]:
        """Prove the credentials work; raise AuthError if they do not."""
        raise NotImplementedError

    def fields(self) -> list[dict[str, Any]]:
        """The custom fields the account has: [{"name", "id", "type"}]."""
        raise NotImplementedError

    def lists(self) -> list[dict[str, Any]]:
        """The lists (Salesforce: campaigns) the account has: [{"id", "name"}], ids as strings.
        NotImplementedError where the vendor has no call that lists them."""
        raise NotImplementedError

    def check_job(self, ref: str, emails: list[str]) -> JobCheck:
        """Where a job `push` left pending stands (only connectors with asynchronous jobs)."""
        raise NotImplementedError

    def finish(self, updates: list[ContactUpdate]) -> PushResult:
        """The rest of a push for contacts whose pending job has completed (consent, lists)."""
        raise NotImplementedError

    def error_from_response(self, response: requests.Response) -> VendorError:
        """Translate a failed response into the error tree (vendors override for their shape)."""
        return self.classify(response, str(response.status_code), self.describe(response))

    def probe(self, probes: Iterable[Probe], refused: Sequence[int] = (403,)) -> dict[str, bool]:
        """Try each probe: an answer in `refused` means the permission is missing; any other
        answer (200, or a 400/404 about the empty body) means the endpoint let us in."""
        found: dict[str, bool] = {}
        for probe in probes:
            try:
                self.request(probe.method, probe.path, ok=(400, 404, 409, 422), **probe.options)
            except AuthError as exc:
                if exc.status not in refused:
                    raise
                found[probe.permission] = False
            else:
                found[probe.permission] = True
        return found

    # -- shared machinery --------------------------------------------------------------------
    @staticmethod
    def describe(response: requests.Response) -> str:
        text = response.text or ""
        return text[:300] if text else response.reason or f"HTTP {response.status_code}"

    @staticmethod
    def retry_after(response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None

    def classify(self, response: requests.Response, code: str | None, message: str) -> VendorError:
        """Status-to-error translation shared by every vendor."""
        status = response.status_code
        if status == 429:
            return RateLimited(message, status=status, code=code, retry_after=self.retry_after(response))
        if status >= 500 or status == 408:
            return RetriableVendorError(message, status=status, code=code, retry_after=self.retry_after(response))
        if status in (401, 403):
            return AuthError(message, status=status, code=code)
        return FatalVendorError(message, status=status, code=code)

    def throttle(self, method: str, path: str) -> None:
        if self.limiter is None:
            return
        bucket, limits = self.limits_for(method, path)
        while True:
            wait = self.limiter.acquire(f"{self.name}:{bucket}", limits)
            if wait <= 0:
                return
            if wait > self.max_inline_wait:
                raise RateLimited(f"{self.name} rate limit budget exhausted for {bucket}",
                                  status=None, code="local_rate_limit", retry_after=wait)
            self.sleep(wait)

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def request(self, method: str, path: str, *, ok: Sequence[int] = (), **kwargs: Any) -> requests.Response:
        """One vendor call: throttle, authenticate, send, and translate failures.

        5xx and connection errors are retried `attempts` times with a short back-off; a 429 whose
        Retry-After fits in `max_inline_wait` is waited out here; anything else is raised.
        `ok` lists extra statuses the caller handles itself (e.g. Splio's 207).
        """
        last: VendorError | None = None
        extra_headers = kwargs.pop("headers", {})
        for attempt in range(self.attempts):
            self.throttle(method, path)
            headers = {**self.auth_headers(), **extra_headers}
            try:
                self.calls += 1
                response = self.session.request(method, self.url(path), headers=headers,
                                                timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = RetriableVendorError(f"{type(exc).__name__} talking to {self.name}", code="network")
            else:
                if response.ok or response.status_code in ok:
                    return response
                last = self.error_from_response(response)
                if not last.retriable:
                    raise last
                if isinstance(last, RateLimited):
                    wait = last.retry_after if last.retry_after is not None else self.max_inline_wait + 1
                    if wait > self.max_inline_wait:
                        raise last
                    self.sleep(wait)
                    continue
            if attempt + 1 < self.attempts:
                self.sleep(self.backoff * (2 ** attempt))
        assert last is not None
        raise last

    # -- read-back for the anti-entropy audit (hub.core.audit) ------------------------------------
    # Contacts the audit hands `read` at once: vendors that read in bulk take more per call.
    read_batch: ClassVar[int] = 10

    @classmethod
    def readable(cls) -> bool:
        """True when the vendor has a read API this connector implements (`read`)."""
        return cls.read is not Connector.read

    def read(self, updates: list[ContactUpdate]) -> dict[str, ContactView | None]:
        """The vendor's current copy of each contact (None: the vendor does not hold it).

        `updates` are the contacts as the hub would push them now: their identity says how to
        look each one up and their fields which fields to read."""
        raise NotImplementedError
