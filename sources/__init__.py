"""Webhook adapters, by source name: one module per referral platform behind `Adapter`."""
from __future__ import annotations

from .base import Adapter, Normalised, PayloadError, SettingsError, SignatureError
from .friendbuy import FriendbuyAdapter
from .growsurf import GrowSurfAdapter
from .mention_me import MentionMeAdapter
from .saasquatch import SaaSquatchAdapter
from .talon_one import TalonOneAdapter
from .voucherify import VoucherifyAdapter

SOURCES: dict[str, Adapter] = {adapter.name: adapter for adapter in (
    MentionMeAdapter(),
    VoucherifyAdapter(),
    TalonOneAdapter(),
    FriendbuyAdapter(),
    GrowSurfAdapter(),
    SaaSquatchAdapter(),
)}

__all__ = ["SOURCES", "Adapter", "Normalised", "PayloadError", "SettingsError", "SignatureError"]
