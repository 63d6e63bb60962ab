"""The functions RQ runs for the hub, by the dotted path RQ stores in each job.

They live in hub/jobs/entry.py, the RQ adapter; the core enqueues (and recognises) jobs by these
names only, so it never imports hub.jobs. RQ keeps the name in every queued, scheduled and failed
job, so renaming an entry point needs a data layout step (hub/core/migrate.py) for the stored ones.
"""
from __future__ import annotations

ENTRY = "hub.jobs.entry"

FLUSH = f"{ENTRY}.flush"                          # push a connector's dirty contacts (hub.core.sync.flush)
SYNC_CONTACTS = f"{ENTRY}.sync_contacts"          # a failed sync, retried by ops
ERASE_CONTACTS = f"{ENTRY}.erase_contacts"        # a failed erasure, retried by ops
SWEEP = f"{ENTRY}.sweep"                          # periodic: queue flushes for overdue connectors
VENDOR_JOBS_SWEEP = f"{ENTRY}.sweep_vendor_jobs"  # periodic: checks for vendor bulk jobs whose check is due
VENDOR_JOB_CHECK = f"{ENTRY}.check_vendor_job"    # read one vendor bulk job once
AUDIT = f"{ENTRY}.audit"                          # periodic: one connector's anti-entropy audit
FEEDS_POLL = f"{ENTRY}.poll_feeds"                # periodic: import the SFTP feeds' new files
FEEDS_EXPORTS_DUE = f"{ENTRY}.exports_due"        # periodic: queue the SFTP exports whose slot has come
FEED_EXPORT = f"{ENTRY}.export_feed"              # write one SFTP export
API_JOB = f"{ENTRY}.run_task"                     # a /v1/jobs task (resync, failed retry, replay)

ALL = (FLUSH, SYNC_CONTACTS, ERASE_CONTACTS, SWEEP, VENDOR_JOBS_SWEEP, VENDOR_JOB_CHECK, AUDIT, FEEDS_POLL,
       FEEDS_EXPORTS_DUE, FEED_EXPORT, API_JOB)
