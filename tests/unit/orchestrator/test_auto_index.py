"""The auto-indexer's bookkeeping, with in-memory stand-ins for the runner, store and engine."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from probelog.common.errors import FailedPrecondition, Unavailable
from probelog.orchestrator.auto_index import AutoIndexer
from probelog.v1 import probe_runner_pb2, search_pb2, types_pb2

PS = types_pb2.ProbeSetInfo(probe_set_id="ps-0123456789abcdef", n_probes=10)


class FakeEngine:
    def __init__(self, served: list[str], failing: dict[str, Exception]) -> None:
        self.served = served
        self.failing = failing
        self.indexed: list[str] = []
        self.calls: list[str] = []
        self.runner = SimpleNamespace(list_models=self._list_served)
        self.store = SimpleNamespace(list_models=self._list_indexed)

    async def _list_served(self, *, ready_only: bool = False, timeout: float | None = None):
        assert not ready_only  # models that are in the repository but not loaded count too
        return [probe_runner_pb2.ServedModel(name=n) for n in self.served]

    async def _list_indexed(self, probe_set_id: str, *, page_size: int = 100, page_token: str = "", timeout=None):
        ids = sorted(self.indexed)
        start = ids.index(page_token) + 1 if page_token else 0
        page = ids[start : start + 2]  # small pages: the indexer must follow the cursor
        more = start + 2 < len(ids)
        return [types_pb2.ModelInfo(model_id=i) for i in page], (page[-1] if more else "")

    async def resolve_probe_set(self, requested: str):
        return PS

    async def index_model(self, name: str, *, probe_set_id: str = "", timeout: float | None = None):
        self.calls.append(name)
        if name in self.failing:
            raise self.failing[name]
        self.indexed.append(name)
        return search_pb2.IndexModelResponse(model=types_pb2.ModelInfo(model_id=name, n_logits=3), searchable=True)


async def test_indexes_new_models_and_does_not_retry_unindexable_ones():
    engine = FakeEngine(["a", "b", "bad", "c", "d"], {"bad": FailedPrecondition("outputs do not fit")})
    engine.indexed = ["a", "b", "c"]
    indexer = AutoIndexer(engine, interval_s=1)  # type: ignore[arg-type]
    assert await indexer.run_once() == ["d"]
    assert engine.calls == ["bad", "d"]
    assert await indexer.run_once() == []
    assert engine.calls == ["bad", "d"]  # "bad" is not tried at every tick
    engine.served.append("e")
    assert await indexer.run_once() == ["e"]
    # A model that left the repository and came back gets a new try.
    engine.served.remove("bad")
    await indexer.run_once()
    engine.served.append("bad")
    engine.failing.clear()
    assert await indexer.run_once() == ["bad"]


async def test_an_unavailable_backend_ends_the_round_and_is_retried():
    engine = FakeEngine(["x", "y"], {"x": Unavailable("triton at 127.0.0.1:1 is unavailable")})
    indexer = AutoIndexer(engine, interval_s=1)  # type: ignore[arg-type]
    assert await indexer.run_once() == []
    assert engine.calls == ["x"] and not indexer.failed
    engine.failing.clear()
    assert await indexer.run_once() == ["x", "y"]


async def test_listing_failures_are_logged_not_raised(caplog):
    engine = FakeEngine([], {})

    async def down(**_):
        raise Unavailable("127.0.0.1:50052 is unavailable")

    engine.runner.list_models = down
    assert await AutoIndexer(engine, interval_s=1).run_once() == []  # type: ignore[arg-type]
    assert "cannot list models" in caplog.text
    with pytest.raises(ValueError):
        AutoIndexer(engine, interval_s=0)  # type: ignore[arg-type]
