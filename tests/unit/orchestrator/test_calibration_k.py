"""The calibration k the search engine uses: the default, clamped to a small background, or given."""

from __future__ import annotations

import pytest

from probelog.common.errors import InvalidArgument
from probelog.core.distance import DEFAULT_CALIBRATION_K
from probelog.orchestrator.search import SearchEngine


def engine(background: list[str], k: int | None = None) -> SearchEngine:
    # The ports are not touched when the engine is built.
    return SearchEngine(runner=None, encoder=None, store=None, ranker=None, background=background, k=k)  # type: ignore[arg-type]


def test_default_k_for_a_large_background():
    names = [f"concept {i}" for i in range(DEFAULT_CALIBRATION_K + 50)]
    assert engine(names).k == DEFAULT_CALIBRATION_K


def test_default_k_is_the_background_size_when_that_is_smaller():
    names = [f"concept {i}" for i in range(7)]
    assert engine(names).k == 7


def test_explicit_k_is_kept_and_checked():
    names = [f"concept {i}" for i in range(30)]
    assert engine(names, k=3).k == 3
    with pytest.raises(InvalidArgument, match="must be in"):
        engine(names, k=31)
    with pytest.raises(InvalidArgument, match="empty"):
        engine([], k=None)
