"""The error every part of the SFTP feeds' configuration raises (the document, its mappings)."""
from __future__ import annotations


class FeedConfigError(ValueError):
    """The feeds document is missing, unreadable or invalid; the message says where."""
