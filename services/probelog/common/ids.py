"""The request fields several services share, checked at their servicer edges: the identifiers
clients choose, top_k, queries per Rank call and page sizes (one default and one limit each)."""

from __future__ import annotations

import hashlib
import re

from probelog.common.errors import InvalidArgument

MAX_ID_LENGTH = 256
#: Hits returned when a request sets no top_k, and the most it may ask for.
DEFAULT_TOP_K = 10
MAX_TOP_K = 1000
#: Most query descriptors in one Rank call (a task's concepts fit in one).
MAX_RANK_QUERIES = 1024
#: Models per listing page when a request sets none, and the most it may ask for.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: A listing page also ends once its models take this many bytes, so no response can reach the
#: message limit (64 MiB) whatever the models carry; a page always holds at least one model.
MAX_PAGE_BYTES = 4 * 1024 * 1024
_HASH_SPACE = 1 << 32
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")
_PROBE_SET_ID = re.compile(r"^ps-[0-9a-f]{16}$")


def check_model_id(model_id: str, *, field: str = "model_id") -> str:
    """Return ``model_id`` if it is 1-256 printable characters, else raise InvalidArgument."""
    if not model_id:
        raise InvalidArgument(f"{field} is required", field=field)
    if len(model_id) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{field} is longer than {MAX_ID_LENGTH} characters", field=field)
    if not _PRINTABLE.match(model_id) or model_id != model_id.strip():
        raise InvalidArgument(
            f"{field} {model_id!r} has control characters or leading/trailing spaces", field=field
        )
    return model_id


def check_probe_set_id(probe_set_id: str, *, field: str = "probe_set_id") -> str:
    """Return ``probe_set_id`` if it has the form ps-<16 hex digits>, else raise InvalidArgument."""
    if not _PROBE_SET_ID.match(probe_set_id):
        raise InvalidArgument(
            f"{field} {probe_set_id!r} is not of the form ps-<16 hex digits>", field=field
        )
    return probe_set_id


def check_top_k(top_k: int, *, field: str = "top_k") -> int:
    """``top_k``, or :data:`DEFAULT_TOP_K` when it is 0; InvalidArgument beyond :data:`MAX_TOP_K`."""
    top_k = top_k or DEFAULT_TOP_K
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidArgument(f"{field} must be between 1 and {MAX_TOP_K}, got {top_k}", field=field)
    return int(top_k)


def check_page_size(page_size: int, *, field: str = "page_size") -> int:
    """``page_size``, or :data:`DEFAULT_PAGE_SIZE` when it is 0; InvalidArgument beyond
    :data:`MAX_PAGE_SIZE`."""
    if page_size > MAX_PAGE_SIZE:
        raise InvalidArgument(f"{field} must be at most {MAX_PAGE_SIZE}, got {page_size}", field=field)
    return int(page_size or DEFAULT_PAGE_SIZE)


def hash_range_of(model_id: str, n_ranges: int) -> int:
    """Which of ``n_ranges`` equal ranges of a 32-bit hash space ``model_id`` falls in (the first
    four bytes of its SHA-1): the store's change-feed partition and the ranker's shard."""
    h = int.from_bytes(hashlib.sha1(model_id.encode()).digest()[:4], "big")
    return h * n_ranges // _HASH_SPACE
