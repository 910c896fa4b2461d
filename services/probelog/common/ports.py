"""The roles the services play for each other, as Protocols.

Each role has an in-process implementation (the service's own class) and a gRPC client that
implements the same Protocol, so the orchestrator composes either: embedded mode passes the
objects, service mode passes the clients. Metadata travels as the probelog.v1 messages
(``ModelInfo``, ``ProbeSetInfo``, ``ServedModel``, ``Hit``); arrays as numpy.

Every method that may wait on another process takes ``timeout`` (seconds, None for no limit),
derived from the caller's deadline.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from probelog.core.distance import LogitEntries
from probelog.v1 import probe_runner_pb2, types_pb2


@dataclass(frozen=True)
class ImageQuery:
    """A concept given as a few example images (encoded PNG/JPEG bytes)."""

    images: tuple[bytes, ...]


#: A concept: its text, or example images.
Concept = str | ImageQuery


@dataclass(frozen=True)
class ProbeResult:
    """A model's raw responses to a probe set."""

    model: probe_runner_pb2.ServedModel
    logits: npt.NDArray[np.float32]  # (n_probes, n_logits)
    images_per_second: float


@dataclass(frozen=True)
class StoredModel:
    """A model as the store holds it; ``entries``/``offsets`` are None unless requested."""

    info: types_pb2.ModelInfo
    entries: LogitEntries | None = None
    offsets: npt.NDArray[np.float32] | None = None


class ChangeKind(Enum):
    PUT = 1
    DELETE = 2
    RESET = 3  # the store cannot replay from the requested point: reload everything


@dataclass(frozen=True)
class Change:
    """One entry of the change feed. The feed is split into partitions (a model's partition is
    ``hash_range_of(model_id, n_partitions)``); ``sequence`` counts within ``partition``."""

    sequence: int
    kind: ChangeKind
    probe_set_id: str = ""
    model_id: str = ""
    partition: int = 0


@dataclass(frozen=True)
class RankResult:
    """Hits per query, and how much of the index answered."""

    hits: list[list[types_pb2.Hit]]
    n_logits_searched: int
    n_models_searched: int
    partial: bool = False
    shards_answered: int = 1
    shards_total: int = 1
    missing_shards: list[str] = field(default_factory=list)


class DescriptorStore(Protocol):
    """Probe sets, model metadata and logit descriptors. Writes of a model are atomic."""

    async def put_probe_set(
        self, name: str, images: npt.NDArray[np.uint8], *, timeout: float | None = None
    ) -> tuple[types_pb2.ProbeSetInfo, bool]:
        """Register a probe set; returns its info and whether it was new."""
        ...

    async def probe_set_info(
        self, probe_set_id: str, *, timeout: float | None = None
    ) -> types_pb2.ProbeSetInfo:
        """A registered probe set's header; NotFound otherwise."""
        ...

    async def get_probe_set(
        self, probe_set_id: str, *, timeout: float | None = None
    ) -> tuple[types_pb2.ProbeSetInfo, npt.NDArray[np.uint8]]: ...

    async def list_probe_sets(
        self, *, timeout: float | None = None
    ) -> list[types_pb2.ProbeSetInfo]: ...

    async def put_model(
        self,
        info: types_pb2.ModelInfo,
        entries: LogitEntries,
        offsets: npt.NDArray[np.float32],
        *,
        timeout: float | None = None,
    ) -> int:
        """Write a model atomically, replacing an earlier version; returns the change's sequence
        in the model's partition of the feed."""
        ...

    async def get_model(
        self,
        probe_set_id: str,
        model_id: str,
        *,
        include_descriptors: bool = False,
        timeout: float | None = None,
    ) -> StoredModel: ...

    async def list_models(
        self,
        probe_set_id: str,
        *,
        page_size: int = 100,
        page_token: str = "",
        partitions: Sequence[int] = (),
        timeout: float | None = None,
    ) -> tuple[list[types_pb2.ModelInfo], str]:
        """A page of a probe set's models in id order; with ``partitions``, only those
        partitions' models (InvalidArgument for a partition the store does not have)."""
        ...

    async def delete_model(
        self, probe_set_id: str, model_id: str, *, timeout: float | None = None
    ) -> int: ...

    async def current_sequences(self, *, timeout: float | None = None) -> list[int]:
        """Sequence number of the latest change of each partition of the feed (0 before the
        first); one entry per partition, so its length is the store's partition count."""
        ...

    def watch(self, after: Sequence[int] = (), partitions: Sequence[int] = ()) -> AsyncGenerator[Change, None]:
        """Changes after ``after[p]`` in each partition ``p`` (all of them when empty), then new
        ones as they happen; in order within a partition. With ``partitions``, only the changes
        of those partitions (``after`` still has one position per partition of the store)."""
        ...

    async def close(self) -> None: ...


async def iter_models(
    store: DescriptorStore,
    probe_set_id: str,
    *,
    page_size: int = 500,
    partitions: Sequence[int] = (),
    timeout: float | None = None,
) -> AsyncIterator[list[types_pb2.ModelInfo]]:
    """Every model of a probe set (of ``partitions`` only, when given), a page at a time (one
    ``list_models`` call a page)."""
    token = ""
    while True:
        infos, token = await store.list_models(
            probe_set_id, page_size=page_size, page_token=token, partitions=partitions, timeout=timeout
        )
        yield infos
        if not token:
            return


class ProbeRunnerPort(Protocol):
    async def list_models(
        self, *, ready_only: bool = False, timeout: float | None = None
    ) -> list[probe_runner_pb2.ServedModel]: ...

    async def probe(
        self,
        model_name: str,
        model_version: str,
        probe_set_id: str,
        *,
        batch_size: int = 0,
        timeout: float | None = None,
        preprocessing_request: types_pb2.Preprocessing | None = None,
        output_name: str = "",
        output_kind_request: str = "",
    ) -> ProbeResult:
        """Logits of every probe, after the model's preprocessing (``preprocessing_request``
        overrides its config's) from the chosen output (probabilities as log-probabilities);
        ``ProbeResult.model`` says what was resolved."""
        ...


class EncoderPort(Protocol):
    async def encoder_id(self, *, timeout: float | None = None) -> str:
        """Changes whenever embeddings would change (model, weights, default templates)."""
        ...

    async def compute_descriptors(
        self,
        probe_set_id: str,
        concepts: Sequence[Concept],
        prompt_templates: Sequence[str] = (),
        *,
        timeout: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """Raw concept descriptors, shape (n_concepts, n_probes) (paper Eq. 3, 8)."""
        ...


class RankerPort(Protocol):
    async def rank(
        self,
        probe_set_id: str,
        queries: npt.NDArray[np.float32],
        top_k: int,
        *,
        one_hit_per_model: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        normalized: bool = False,
        timeout: float | None = None,
    ) -> RankResult:
        """Hits per query. ``queries``: raw descriptors, z-scored by the ranker, or z-scored ones
        used as they are with ``normalized``."""
        ...

    async def applied_sequences(self, *, timeout: float | None = None) -> list[int]:
        """Per partition of the store's feed, the sequence applied by the part of the ranker that
        owns the partition (empty before the first load)."""
        ...
