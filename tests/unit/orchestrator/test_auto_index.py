"""The auto-indexer's bookkeeping, and the engine's view of the runner's repository, with
in-memory stand-ins for the ports (runner, store) and for the engine the indexer drives."""

from __future__ import annotations

import pytest

from probelog.common.errors import FailedPrecondition, Unavailable
from probelog.orchestrator.auto_index import AutoIndexer
from probelog.orchestrator.search import IndexRequest, IndexResult, SearchEngine
from probelog.v1 import probe_runner_pb2, types_pb2

PS = types_pb2.ProbeSetInfo(probe_set_id="ps-0123456789abcdef", n_probes=10)


class FakeRunner:
    """A ProbeRunnerPort that serves models by name (and probes nothing)."""

    def __init__(self, served: list[str]) -> None:
        self.served = served
        self.down = False

    async def list_models(self, *, ready_only: bool = False, timeout: float | None = None):
        assert not ready_only  # models that are in the repository but not loaded count too
        if self.down:
            raise Unavailable("127.0.0.1:50052 is unavailable")
        return [probe_runner_pb2.ServedModel(name=n) for n in self.served]


class FakeStore:
    """The listing part of a DescriptorStore, in pages of two (callers must follow the cursor)."""

    def __init__(self) -> None:
        self.indexed: list[str] = []

    async def probe_set_info(self, probe_set_id: str, *, timeout: float | None = None):
        return PS

    async def list_probe_sets(self, *, timeout: float | None = None):
        return [PS]

    async def list_models(self, probe_set_id: str, *, page_size: int = 100, page_token: str = "", partitions=(), timeout=None):
        ids = sorted(self.indexed)
        start = ids.index(page_token) + 1 if page_token else 0
        page = ids[start : start + 2]
        more = start + 2 < len(ids)
        return [types_pb2.ModelInfo(model_id=i) for i in page], (page[-1] if more else "")


class FakeEngine(SearchEngine):
    """The real engine over the fake ports; indexing only records the call."""

    def __init__(self, served: list[str], failing: dict[str, Exception]) -> None:
        self.fake_runner, self.fake_store = FakeRunner(served), FakeStore()
        super().__init__(
            runner=self.fake_runner, encoder=None, store=self.fake_store, ranker=None,  # type: ignore[arg-type]
            background=["a concept"],
        )
        self.failing = failing
        self.calls: list[str] = []

    @property
    def served(self) -> list[str]:
        return self.fake_runner.served

    @property
    def indexed(self) -> list[str]:
        return self.fake_store.indexed

    @indexed.setter
    def indexed(self, names: list[str]) -> None:
        self.fake_store.indexed = names

    async def index_model(self, request: IndexRequest, *, timeout: float | None = None) -> IndexResult:
        self.calls.append(request.model_name)
        if request.model_name in self.failing:
            raise self.failing[request.model_name]
        self.indexed.append(request.model_id)
        return IndexResult(types_pb2.ModelInfo(model_id=request.model_id, n_logits=3), 0.0, True, 0, 0, 0, 0, 0)


async def test_source_models_are_marked_indexed_across_store_pages():
    engine = FakeEngine(["a", "b", "c", "d", "e"], {})
    engine.indexed = ["a", "c", "d", "e"]
    listed = await engine.list_source_models()
    assert [(m.name, indexed) for m, indexed in listed] == [
        ("a", True), ("b", False), ("c", True), ("d", True), ("e", True)
    ]


async def test_indexes_new_models_and_does_not_retry_unindexable_ones():
    engine = FakeEngine(["a", "b", "bad", "c", "d"], {"bad": FailedPrecondition("outputs do not fit")})
    engine.indexed = ["a", "b", "c"]
    indexer = AutoIndexer(engine, interval_s=1)
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
    indexer = AutoIndexer(engine, interval_s=1)
    assert await indexer.run_once() == []
    assert engine.calls == ["x"] and not indexer.failed
    engine.failing.clear()
    assert await indexer.run_once() == ["x", "y"]


async def test_listing_failures_are_logged_not_raised(caplog):
    engine = FakeEngine([], {})
    engine.fake_runner.down = True
    assert await AutoIndexer(engine, interval_s=1).run_once() == []
    assert "cannot list models" in caplog.text
    with pytest.raises(ValueError):
        AutoIndexer(engine, interval_s=0)
