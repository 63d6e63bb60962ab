"""Feeds: CSV files in over SFTP as events through the ledger, and scheduled CSV exports out.

  config.py    feeds and exports as data (HUB_FEEDS_FILE), secrets from the environment or files
  sftp.py      the SFTP client: a pinned host key, password or key authentication
  mapping.py   feed mappings (CSV columns -> canonical event), presets, versions in Redis
  poller.py    the poll job: claim each new file once, stream, validate, apply, report, move
  exports.py   the export job: rows from the ledger's state, streamed, uploaded atomically
  jobs.py      what the scheduler and the `hub feeds` commands call
"""
