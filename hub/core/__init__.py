"""The hub's domain: services built once (bootstrap), the ledger, sync, failures, feeds. No Flask, no click."""
