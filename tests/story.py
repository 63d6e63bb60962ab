"""The demo's referral story, and the state it must produce, worked out by hand from the events."""
from __future__ import annotations

from hub.cli.demo import as_delivered as messy
from hub.cli.demo import event, story

__all__ = ["event", "messy", "story", "KLAVIYO"]

KLAVIYO = {
    "anna@example.com": {"fields": {"first_name": "Anna", "referral_referrer_id": "ref-anna",
                                    "referral_share_url": "https://shop.example/r/anna",
                                    "referral_friends_invited": 2, "referral_friends_signed_up": 2,
                                    "referral_friends_converted": 1, "referral_turnover": 59.9,
                                    "referral_turnover_currency": "GBP", "referral_rewards_earned": 1},
                         "lists": [], "marketing_consent": None},
    "ben@example.com": {"fields": {"first_name": "Ben", "referral_referrer_id": "ref-ben",
                                   "referral_share_url": "https://shop.example/r/ben",
                                   "referral_friends_invited": 1, "referral_friends_signed_up": 1,
                                   "referral_friends_converted": 1, "referral_turnover": 120.0,
                                   "referral_turnover_currency": "EUR"},
                        "lists": [], "marketing_consent": None},
    "cleo@example.com": {"fields": {"first_name": "Cleo", "referral_referred_by": "anna@example.com",
                                    "referral_promo_code": "ANNA-20", "referral_registered_at": "2026-11-21T10:00:06Z",
                                    "referral_converted_at": "2026-11-21T10:00:08Z"},
                         "lists": ["RfMkt1", "RfTxn1"], "marketing_consent": True},
    "dan@example.com": {"fields": {"first_name": "Dan", "referral_referred_by": "anna@example.com",
                                   "referral_promo_code": "ANNA-21", "referral_registered_at": "2026-11-21T10:00:07Z"},
                        "lists": [], "marketing_consent": None},
    "eve@example.com": {"fields": {"first_name": "Eve", "referral_referred_by": "ben@example.com",
                                   "referral_promo_code": "BEN-10", "referral_registered_at": "2026-11-21T10:00:09Z",
                                   "referral_converted_at": "2026-11-21T10:00:10Z"},
                        "lists": ["RfMkt1", "RfTxn1"], "marketing_consent": True},
}
