"""Validation of the identifiers clients choose."""

from __future__ import annotations

import re

from probelog.common.errors import InvalidArgument

MAX_ID_LENGTH = 256
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")
_PROBE_SET_ID = re.compile(r"^ps-[0-9a-f]{16}$")


def check_model_id(model_id: str) -> str:
    """Return ``model_id`` if it is 1-256 printable characters, else raise InvalidArgument."""
    if not model_id:
        raise InvalidArgument("model_id is required")
    if len(model_id) > MAX_ID_LENGTH:
        raise InvalidArgument(f"model_id is longer than {MAX_ID_LENGTH} characters")
    if not _PRINTABLE.match(model_id) or model_id != model_id.strip():
        raise InvalidArgument(
            f"model_id {model_id!r} has control characters or leading/trailing spaces"
        )
    return model_id


def check_probe_set_id(probe_set_id: str) -> str:
    """Return ``probe_set_id`` if it has the form ps-<16 hex digits>, else raise InvalidArgument."""
    if not _PROBE_SET_ID.match(probe_set_id):
        raise InvalidArgument(
            f"probe_set_id {probe_set_id!r} is not of the form ps-<16 hex digits>"
        )
    return probe_set_id
