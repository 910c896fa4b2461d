"""A small Python client for the public SearchService.

    async with ProbeLogClient("localhost:50051", token=os.environ["PROBELOG_TOKEN"]) as client:
        await client.index("hub-0003")
        response = await client.search("red striped circle", top_k=5)
        for hit in response.hits:
            print(hit.rank, hit.model_id, hit.logit_index, hit.score)
        task = await client.task(["cat", "dog", "fox"], top_k=3)   # one model for a whole task
        similar = await client.similar("hub-0003", logit_index=2)    # logits like this one

Errors arrive as the domain exceptions of :mod:`probelog.common.errors` (NotFound,
InvalidArgument, Unavailable, ...), each with the server's message. Calls that find the server
UNAVAILABLE are retried by gRPC (up to 4 attempts, within the call's deadline). Metadata for some
calls only (another API key, a request id) goes in a ``with client.call_metadata(...)`` block.
:class:`SyncProbeLogClient` offers the same methods to code without an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from probelog.common.auth import CALL_METADATA
from probelog.common.client import remote_errors
from probelog.common.ids import DEFAULT_TOP_K
from probelog.common.server import TlsFiles, create_channel
from probelog.v1 import clip_encoder_pb2, search_pb2, types_pb2
from probelog.v1 import search_pb2_grpc as pb_grpc


class ProbeLogClient:
    """Async client of SearchService.

    Parameters
    ----------
    address : str
        host:port of the orchestrator (or an embedded server).
    tls : TlsFiles, optional
        CA file to verify a TLS server (and a client certificate to present, for mTLS).
    token : str
        API key, sent with every call as ``authorization: Bearer <token>``.
    timeout_s : float
        Default deadline of each call; indexing gets ``index_timeout_s``.
    """

    def __init__(
        self,
        address: str,
        *,
        tls: TlsFiles | None = None,
        timeout_s: float = 30.0,
        index_timeout_s: float = 900.0,
        token: str = "",
    ) -> None:
        self.address = address
        self._channel = create_channel(address, tls, token=token, per_call=True, retry=True)
        self._stub = pb_grpc.SearchServiceStub(self._channel)
        self.timeout_s = timeout_s
        self.index_timeout_s = index_timeout_s

    async def __aenter__(self) -> ProbeLogClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    @staticmethod
    @contextlib.contextmanager
    def call_metadata(*pairs: tuple[str, str]) -> Iterator[None]:
        """Add ``pairs`` to the metadata of the calls made inside the block (in this task or
        thread), e.g. ``("authorization", "Bearer <another key>")``, which replaces the client's
        own key, or ``("x-request-id", "...")``, which the server logs with the call."""
        token = CALL_METADATA.set(CALL_METADATA.get() + tuple(pairs))
        try:
            yield
        finally:
            CALL_METADATA.reset(token)

    async def search(
        self,
        text: str | None = None,
        *,
        images: Sequence[bytes | str | Path] = (),
        top_k: int = DEFAULT_TOP_K,
        one_hit_per_model: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        probe_set_id: str = "",
        prompt_templates: Sequence[str] = (),
        evidence_probes: int = 0,
    ) -> search_pb2.SearchResponse:
        """Search by concept text, or by example images (bytes or file paths); with
        ``evidence_probes`` each hit carries the probes where its logit and the query agree most."""
        request = search_pb2.SearchRequest(
            evidence_probes=evidence_probes,
            top_k=top_k,
            one_hit_per_model=one_hit_per_model,
            include_model_ids=list(include),
            exclude_model_ids=list(exclude),
            probe_set_id=probe_set_id,
            prompt_templates=list(prompt_templates),
        )
        if text is not None:
            request.text = text
        else:
            data = [i if isinstance(i, bytes) else Path(i).read_bytes() for i in images]
            request.images.CopyFrom(clip_encoder_pb2.ImageSet(images=data))
        with remote_errors(self.address):
            return await self._stub.Search(request, timeout=self.timeout_s)

    async def task(
        self,
        concepts: Sequence[str | Sequence[bytes | str | Path]],
        *,
        top_k: int = DEFAULT_TOP_K,
        min_coverage: int = 0,
        allow_shared_logits: bool = False,
        candidate_depth: int = 0,
        max_score: float | None = None,
        aggregation: search_pb2.TaskAggregation.ValueType = search_pb2.TASK_AGGREGATION_UNSPECIFIED,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        probe_set_id: str = "",
        prompt_templates: Sequence[str] = (),
        evidence_probes: int = 0,
    ) -> search_pb2.TaskSearchResponse:
        """Models that cover a whole task: each concept a text, or example images (bytes or
        file paths). ``min_coverage`` 0 means every concept."""
        request = search_pb2.TaskSearchRequest(
            evidence_probes=evidence_probes,
            top_k=top_k,
            min_coverage=min_coverage,
            allow_shared_logits=allow_shared_logits,
            candidate_depth=candidate_depth,
            aggregation=aggregation,
            include_model_ids=list(include),
            exclude_model_ids=list(exclude),
            probe_set_id=probe_set_id,
            prompt_templates=list(prompt_templates),
        )
        if max_score is not None:
            request.max_score = max_score
        for concept in concepts:
            if isinstance(concept, str):
                request.concepts.add(text=concept)
            else:
                data = [i if isinstance(i, bytes) else Path(i).read_bytes() for i in concept]
                request.concepts.add(images=clip_encoder_pb2.ImageSet(images=data))
        with remote_errors(self.address):
            return await self._stub.TaskSearch(request, timeout=self.timeout_s)

    async def similar(
        self,
        model_id: str,
        *,
        logit_index: int | None = None,
        top_k: int = DEFAULT_TOP_K,
        min_coverage: int = 0,
        allow_shared_logits: bool = False,
        candidate_depth: int = 0,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        probe_set_id: str = "",
    ) -> search_pb2.SimilarLogitsResponse:
        """Logits like one logit of an indexed model (``hits``), or, without ``logit_index``,
        models like the whole model (``models``)."""
        request = search_pb2.SimilarLogitsRequest(
            model_id=model_id,
            top_k=top_k,
            min_coverage=min_coverage,
            allow_shared_logits=allow_shared_logits,
            candidate_depth=candidate_depth,
            include_model_ids=list(include),
            exclude_model_ids=list(exclude),
            probe_set_id=probe_set_id,
        )
        if logit_index is not None:
            request.logit_index = logit_index
        with remote_errors(self.address):
            return await self._stub.SimilarLogits(request, timeout=self.timeout_s)

    async def index(
        self,
        model_name: str,
        *,
        model_id: str = "",
        model_version: str = "",
        probe_set_id: str = "",
        labels: Sequence[str] = (),
        metadata: dict[str, str] | None = None,
        preprocessing: types_pb2.Preprocessing | None = None,
        output_name: str = "",
        output_kind: str = "",
    ) -> search_pb2.IndexModelResponse:
        """Probe and index a model; ``preprocessing`` fields that are set override its config's."""
        request = search_pb2.IndexModelRequest(
            model_name=model_name,
            model_id=model_id,
            model_version=model_version,
            probe_set_id=probe_set_id,
            labels=list(labels),
            metadata=metadata or {},
            preprocessing=preprocessing,
            output_name=output_name,
            output_kind=output_kind,
        )
        with remote_errors(self.address):
            return await self._stub.IndexModel(request, timeout=self.index_timeout_s)

    async def enqueue_indexing(
        self,
        model_names: Sequence[str] = (),
        *,
        all_models: bool = False,
        reindex: bool = False,
        retry_failed: bool = False,
        probe_set_id: str = "",
    ) -> search_pb2.EnqueueIndexingResponse:
        """Queue models for the indexing workers (the orchestrator needs a work queue)."""
        request = search_pb2.EnqueueIndexingRequest(
            model_names=list(model_names), all=all_models, reindex=reindex, retry_failed=retry_failed,
            probe_set_id=probe_set_id,
        )
        with remote_errors(self.address):
            return await self._stub.EnqueueIndexing(request, timeout=self.timeout_s)

    async def indexing_progress(self, *, max_failures: int = 0) -> search_pb2.GetIndexingProgressResponse:
        """The work queue's counts and failed models (``queue_enabled`` False without a queue)."""
        with remote_errors(self.address):
            return await self._stub.GetIndexingProgress(
                search_pb2.GetIndexingProgressRequest(max_failures=max_failures), timeout=self.timeout_s
            )

    async def models(self, *, probe_set_id: str = "", page_size: int = 500) -> list[types_pb2.ModelInfo]:
        """Every indexed model of a probe set (all pages)."""
        out: list[types_pb2.ModelInfo] = []
        token = ""
        while True:
            with remote_errors(self.address):
                response = await self._stub.ListModels(
                    search_pb2.ListModelsRequest(probe_set_id=probe_set_id, page_size=page_size, page_token=token),
                    timeout=self.timeout_s,
                )
            out.extend(response.models)
            token = response.next_page_token
            if not token:
                return out

    async def get_model(self, model_id: str, *, probe_set_id: str = "") -> types_pb2.ModelInfo:
        with remote_errors(self.address):
            response = await self._stub.GetModel(
                search_pb2.GetModelRequest(model_id=model_id, probe_set_id=probe_set_id), timeout=self.timeout_s
            )
        return response.model

    async def logit_probes(
        self, model_id: str, top_probes: int, *, probe_set_id: str = ""
    ) -> search_pb2.GetModelResponse:
        """A model's info and, per logit, its ``top_probes`` strongest probes (``.logits``)."""
        request = search_pb2.GetModelRequest(model_id=model_id, probe_set_id=probe_set_id, top_probes=top_probes)
        with remote_errors(self.address):
            return await self._stub.GetModel(request, timeout=self.timeout_s)

    async def probe_images(
        self, probe_indices: Sequence[int], *, size_px: int = 0, probe_set_id: str = ""
    ) -> search_pb2.GetProbeImagesResponse:
        """PNG thumbnails of probes (``.images``, in request order)."""
        request = search_pb2.GetProbeImagesRequest(
            probe_set_id=probe_set_id, probe_indices=list(probe_indices), size_px=size_px
        )
        with remote_errors(self.address):
            return await self._stub.GetProbeImages(request, timeout=self.timeout_s)

    async def delete_model(self, model_id: str, *, probe_set_id: str = "") -> None:
        with remote_errors(self.address):
            await self._stub.DeleteModel(
                search_pb2.DeleteModelRequest(model_id=model_id, probe_set_id=probe_set_id), timeout=self.timeout_s
            )

    async def probe_sets(self) -> search_pb2.ListProbeSetsResponse:
        with remote_errors(self.address):
            return await self._stub.ListProbeSets(search_pb2.ListProbeSetsRequest(), timeout=self.timeout_s)

    async def source_models(self, *, probe_set_id: str = "") -> list[search_pb2.SourceModel]:
        """Models the probe runner serves, each marked indexed or not."""
        with remote_errors(self.address):
            response = await self._stub.ListSourceModels(
                search_pb2.ListSourceModelsRequest(probe_set_id=probe_set_id), timeout=self.timeout_s
            )
        return list(response.models)


class SyncProbeLogClient:
    """:class:`ProbeLogClient` for code without an event loop: the same methods and arguments,
    each blocking until its answer (on a loop of the client's own; one thread at a time).

        with SyncProbeLogClient("localhost:50051") as client:
            print(client.search("red striped circle", top_k=5).hits[0].model_id)
    """

    def __init__(self, address: str, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()

        async def make() -> ProbeLogClient:  # the channel belongs to the loop it is made on
            return ProbeLogClient(address, **kwargs)

        self._client = self._loop.run_until_complete(make())
        self.address = address

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name == "close" or not inspect.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(attr(*args, **kwargs))

        return blocking

    call_metadata: Callable[..., contextlib.AbstractContextManager[None]] = staticmethod(ProbeLogClient.call_metadata)

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()

    def __enter__(self) -> SyncProbeLogClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
