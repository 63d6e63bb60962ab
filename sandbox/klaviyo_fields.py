"""The request bodies Klaviyo accepts, written down as facts: every object is closed.

Derived by hand from Klaviyo's OpenAPI spec, revision 2026-07-15 (`klaviyo/openapi`
`openapi/stable.json`, schemas named beside each table). The spec marks no object
`additionalProperties: false`, but the live API refuses any name it does not list, with 400
`'x' is not a valid field for the resource 'profile'.` (seen in verbb/formie#1986 and
klaviyo/klaviyo-api-node#67), so the sandbox refuses them too. A type check follows the spec's
`type`; the wording of a type error is the sandbox's own (Klaviyo's is not confirmed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Scalar kinds: a trailing "?" means the spec marks the field nullable.
STRING, STRING_OR_NULL = "string", "string?"


@dataclass(frozen=True)
class Obj:
    """A closed JSON object: `resource` names it in Klaviyo's error detail."""

    resource: str
    fields: dict[str, Any]
    required: tuple[str, ...] = ()
    nullable: bool = False


@dataclass(frozen=True)
class Arr:
    """A JSON array of `item`."""

    item: Any


@dataclass(frozen=True)
class Enum:
    values: tuple[str, ...]


@dataclass(frozen=True)
class Free:
    """An object Klaviyo takes with any keys (custom `properties`), or a part the hub never sends."""

    nullable: bool = True
    kinds: tuple[str, ...] = field(default=("object",))


def resource(type_: str, attributes: Obj, *, with_id: bool = True, extra: dict[str, Any] | None = None,
             required: tuple[str, ...] = ("type", "attributes")) -> Obj:
    """A JSON:API resource object: `type`, an optional nullable `id`, its `attributes`."""
    fields: dict[str, Any] = {"type": Enum((type_,)), "attributes": attributes, **(extra or {})}
    if with_id:
        fields["id"] = STRING_OR_NULL
    return Obj(type_, fields, required)


def relationship_to(type_: str, many: bool) -> Obj:
    """`{"data": {"type", "id"}}` or `{"data": [...]}`, the shape every relationship takes."""
    ref = Obj(type_, {"type": Enum((type_,)), "id": STRING}, ("type", "id"))
    return Obj("relationship", {"data": Arr(ref) if many else ref})


# ProfileLocation
LOCATION = Obj("location", {
    **{name: STRING_OR_NULL for name in ("address1", "address2", "city", "country", "region", "zip",
                                          "timezone", "ip")},
    "latitude": "string|number?", "longitude": "string|number?"}, nullable=True)

# ProfileUpsertQueryResourceObject.attributes: the standard profile attributes. Anything else
# belongs in `properties` (custom properties, free-form).
PROFILE_ATTRIBUTES = Obj("profile", {
    **{name: STRING_OR_NULL for name in ("email", "phone_number", "external_id", "_kx", "first_name",
                                          "last_name", "organization", "locale", "title", "image")},
    "location": LOCATION, "properties": Free()})

# ProfileMeta (patch_properties / patch_identifiers)
PROFILE_META = Obj("meta", {
    "patch_properties": Obj("patch_properties", {"append": Free(), "unappend": Free(),
                                                 "unset": Free(kinds=("string", "array"))}),
    "patch_identifiers": Obj("patch_identifiers", {"append": Free(False), "unappend": Free(False)})})

PROFILE_UPSERT = resource("profile", PROFILE_ATTRIBUTES, extra={"meta": PROFILE_META})

# SubscriptionParameters / EmailSubscriptionParameters / SubscriptionChannels. The hub sends the
# email channel only; sms, whatsapp and push are taken as they come.
SUBSCRIBE_EMAIL = Obj("email", {
    "marketing": Obj("marketing", {"consent": Enum(("SUBSCRIBED",)), "consented_at": "date-time?"},
                     ("consent",), nullable=True),
    "open_tracking": Obj("open_tracking", {"consent": Enum(("SUBSCRIBED",))}, ("consent",), nullable=True)},
    nullable=True)
SUBSCRIBE_CHANNELS = Obj("subscriptions", {"email": SUBSCRIBE_EMAIL, "sms": Free(), "whatsapp": Free(),
                                           "push": Free()})
UNSUBSCRIBE_EMAIL = Obj("email", {
    "marketing": Obj("marketing", {"consent": Enum(("UNSUBSCRIBED",))}, ("consent",), nullable=True),
    "open_tracking": Obj("open_tracking", {"consent": Enum(("UNSUBSCRIBED",))}, ("consent",), nullable=True)},
    nullable=True)
UNSUBSCRIBE_CHANNELS = Obj("subscriptions", {"email": UNSUBSCRIBE_EMAIL, "sms": Free(), "whatsapp": Free(),
                                             "push": Free()})

# ProfileSubscriptionCreateQueryResourceObject: no standard attributes, no custom properties.
SUBSCRIBE_PROFILE = resource("profile", Obj("profile", {
    "email": STRING_OR_NULL, "phone_number": STRING_OR_NULL, "subscriptions": SUBSCRIBE_CHANNELS,
    "age_gated_date_of_birth": "date?"}, ("subscriptions",)))
# ProfileSubscriptionDeleteQueryResourceObject (it has no `id`)
UNSUBSCRIBE_PROFILE = resource("profile", Obj("profile", {
    "email": STRING_OR_NULL, "phone_number": STRING_OR_NULL, "subscriptions": UNSUBSCRIBE_CHANNELS},
    ("subscriptions",)), with_id=False)


def profiles_of(item: Obj) -> Obj:
    return Obj("profiles", {"data": Arr(item)}, ("data",))


# The request body of each endpoint the hub calls: (method, path pattern) -> schema.
BODIES: dict[tuple[str, str], Obj] = {
    # ProfileUpsertQuery
    ("POST", "profile-import"): Obj("body", {"data": PROFILE_UPSERT}, ("data",)),
    # ProfileImportJobCreateQuery
    ("POST", "bulk-import"): Obj("body", {"data": resource(
        "profile-bulk-import-job", Obj("profile-bulk-import-job", {"profiles": profiles_of(PROFILE_UPSERT)},
                                       ("profiles",)),
        with_id=False, extra={"relationships": Obj("relationships", {"lists": relationship_to("list", True)})})},
        ("data",)),
    # SubscriptionCreateJobCreateQuery
    ("POST", "subscribe"): Obj("body", {"data": resource(
        "profile-subscription-bulk-create-job", Obj("profile-subscription-bulk-create-job", {
            "custom_source": STRING_OR_NULL, "profiles": profiles_of(SUBSCRIBE_PROFILE),
            "historical_import": "boolean?"}, ("profiles",)),
        with_id=False, extra={"relationships": Obj("relationships", {"list": relationship_to("list", False)})})},
        ("data",)),
    # SubscriptionDeleteJobCreateQuery
    ("POST", "unsubscribe"): Obj("body", {"data": resource(
        "profile-subscription-bulk-delete-job", Obj("profile-subscription-bulk-delete-job", {
            "profiles": profiles_of(UNSUBSCRIBE_PROFILE)}, ("profiles",)),
        with_id=False, extra={"relationships": Obj("relationships", {"list": relationship_to("list", False)})})},
        ("data",)),
    # ListMembersAddQuery / ListMembersDeleteQuery
    ("POST", "list-members"): Obj("body", {"data": relationship_to("profile", True).fields["data"]}, ("data",)),
    ("DELETE", "list-members"): Obj("body", {"data": relationship_to("profile", True).fields["data"]}, ("data",)),
    # DataPrivacyCreateDeletionJobQuery
    ("POST", "deletion"): Obj("body", {"data": resource(
        "data-privacy-deletion-job", Obj("data-privacy-deletion-job", {"profile": Obj("profile", {
            "data": resource("profile", Obj("profile", {"email": STRING_OR_NULL, "phone_number": STRING_OR_NULL}))},
            ("data",))}, ("profile",)), with_id=False)}, ("data",)),
}

KINDS: dict[str, type | tuple[type, ...]] = {"string": str, "number": (int, float), "boolean": bool, "object": dict, "array": list}


class Refusal(Exception):
    """The first thing Klaviyo would refuse in a body: its detail and JSON pointer."""

    def __init__(self, detail: str, pointer: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer or "/"


def type_ok(value: Any, spec: str) -> bool:
    kinds = spec.rstrip("?")
    if value is None:
        return spec.endswith("?")
    for kind in kinds.split("|"):
        if kind in ("date", "date-time"):
            kind = "string"
        expected = KINDS[kind]
        if isinstance(value, expected) and not (kind == "number" and isinstance(value, bool)):
            return True
    return False


def check(value: Any, spec: Any, pointer: str = "", name: str = "") -> None:
    """Raise Refusal at the first part of `value` the schema `spec` does not allow."""
    if isinstance(spec, Obj):
        if value is None and spec.nullable:
            return
        if not isinstance(value, dict):
            raise Refusal(f"'{name or spec.resource}' must be an object.", pointer)
        for key, item in value.items():
            if key not in spec.fields:
                raise Refusal(f"'{key}' is not a valid field for the resource '{spec.resource}'.", f"{pointer}/{key}")
            check(item, spec.fields[key], f"{pointer}/{key}", key)
        for key in spec.required:
            if key not in value:
                raise Refusal(f"'{key}' is a required field for the resource '{spec.resource}'.", f"{pointer}/{key}")
    elif isinstance(spec, Arr):
        if not isinstance(value, list):
            raise Refusal(f"'{name}' must be an array.", pointer)
        for index, item in enumerate(value):
            check(item, spec.item, f"{pointer}/{index}", name)
    elif isinstance(spec, Enum):
        if value not in spec.values:
            raise Refusal(f"'{value}' is not a valid choice for '{name}'; expected one of {list(spec.values)}.", pointer)
    elif isinstance(spec, Free):
        if not ((value is None and spec.nullable) or any(isinstance(value, KINDS[k]) for k in spec.kinds)):
            raise Refusal(f"'{name}' must be of type {' or '.join(spec.kinds)}.", pointer)
    elif not type_ok(value, spec):
        raise Refusal(f"'{name}' must be of type {spec.rstrip('?').replace('|', ' or ')}"
                      f"{'' if spec.endswith('?') else ' and not null'}.", pointer)
