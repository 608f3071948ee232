"""Prompts as the router accepts them, and the digest a log identifies them by."""

from __future__ import annotations

import hashlib


def prompt_sha256(prompt: str) -> str:
    """How logs identify a prompt without keeping its text (the audit log's `prompt_sha256`)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()
