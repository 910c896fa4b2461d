"""``probelog recalibrate``: new calibration offsets (paper Eq. 6) for every stored model.

A logit's offset depends only on the logit and the background set, so when the background set
changes (other concept names, another CLIP, another k) every stored model needs new offsets
and nothing else. This command computes them for all models of a probe set in batched passes
(:func:`probelog.common.background.calibration_offsets`: sparse rows against the dense background
descriptors, about 65,536 logits per pass) and writes each model back through the store, one
atomic write per model, so rankers pick the changes up from the store's change feed while they
keep serving. Models already calibrated against the same background and k are skipped, so an
interrupted run can simply be restarted.

The background comes either from the CLIP encoder (a names file, or ``imagenet1k``, with
``--encoder-address``) or as precomputed raw descriptors (a ``.npy`` of shape
(n_background, n_probes) for the probe set). Point the orchestrator at the same background
afterwards (``--background``), so that models indexed later are calibrated the same way.

Write through the store service (``--store-address``) while it runs: a ``file://`` store has a
single writer. ``--store-url`` opens the store directly (Redis, or a stopped file store).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from probelog.common.background import (
    Background,
    background_from_array,
    calibration_offsets,
    encode_background,
    load_names,
    resolve_k,
)
from probelog.common.edge import status_code
from probelog.common.errors import InvalidArgument, ProbeLogError
from probelog.common.ports import DescriptorStore, iter_models
from probelog.core.distance import DEFAULT_CALIBRATION_K, LogitEntries
from probelog.v1 import types_pb2

logger = logging.getLogger(__name__)

#: Logits per batched offsets pass (and per round of reads and writes).
BATCH_LOGITS = 65_536
_CONCURRENCY = 16


@dataclass(frozen=True)
class Report:
    probe_set_id: str
    models: int
    logits: int
    skipped: int
    seconds: float


async def recalibrate(
    store: DescriptorStore,
    probe_set_id: str,
    background: Background,
    k: int,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    batch_logits: int = BATCH_LOGITS,
) -> Report:
    """Recompute and rewrite the offsets of every model of a probe set.

    Parameters
    ----------
    progress : callable, optional
        Called with the number of logits done after each pass.
    """
    started = time.perf_counter()
    k = resolve_k(k, background.size)
    calibration = types_pb2.Calibration(
        background_id=background.background_id, n_background=background.size, k=k
    )
    todo: list[types_pb2.ModelInfo] = []
    skipped = 0
    async for infos in iter_models(store, probe_set_id):
        for info in infos:
            if not force and info.calibration == calibration:
                skipped += 1
            else:
                todo.append(info)
    slots = asyncio.Semaphore(_CONCURRENCY)
    done_models = done_logits = 0
    batch: list[types_pb2.ModelInfo] = []
    for i, info in enumerate(todo):
        batch.append(info)
        if sum(m.n_logits for m in batch) < batch_logits and i + 1 < len(todo):
            continue
        models, logits = await _recalibrate_batch(store, probe_set_id, batch, background, k, calibration, slots)
        done_models += models
        done_logits += logits
        if progress is not None:
            progress(logits)
        batch = []
    return Report(probe_set_id, done_models, done_logits, skipped, time.perf_counter() - started)


async def _recalibrate_batch(
    store: DescriptorStore,
    probe_set_id: str,
    infos: list[types_pb2.ModelInfo],
    background: Background,
    k: int,
    calibration: types_pb2.Calibration,
    slots: asyncio.Semaphore,
) -> tuple[int, int]:
    async def fetch(info: types_pb2.ModelInfo) -> Any:
        async with slots:
            return await store.get_model(probe_set_id, info.model_id, include_descriptors=True)

    stored = [s for s in await asyncio.gather(*(fetch(i) for i in infos)) if s.entries is not None]
    if not stored:
        return 0, 0
    entries = LogitEntries(
        np.concatenate([s.entries.top_indices for s in stored]),
        np.concatenate([s.entries.top_values for s in stored]),
        stored[0].entries.n_probes,
    )
    offsets = await asyncio.to_thread(calibration_offsets, entries, background, k)
    bounds = np.cumsum([0, *(s.entries.n_logits for s in stored)])

    async def write(j: int) -> None:
        info = types_pb2.ModelInfo()
        info.CopyFrom(stored[j].info)
        info.calibration.CopyFrom(calibration)
        async with slots:
            await store.put_model(info, stored[j].entries, offsets[bounds[j] : bounds[j + 1]])

    await asyncio.gather(*(write(j) for j in range(len(stored))))
    return len(stored), int(bounds[-1])


# ---------------------------------------------------------------------- command line


def command() -> Any:
    """``probelog recalibrate``, a click command (click is imported only when the CLI runs)."""
    import click

    def callback(**values: Any) -> int:
        if bool(values["store_address"]) == bool(values["store_url"]):
            raise click.UsageError("give --store-address or --store-url (one of them)")
        return main(SimpleNamespace(**values))

    return click.Command("recalibrate", callback=callback, help=__doc__.split("\n\n")[1], params=[
        click.Option(["--store-address"], help="DescriptorStoreService host:port (while it runs)"),
        click.Option(["--store-url"], help="open the store directly: redis://... or file:///path"),
        click.Option(
            ["--background"], required=True,
            help="raw background descriptors (.npy, n_background x n_probes), or concept names "
            "(a file with one per line, or imagenet1k) encoded through --encoder-address",
        ),
        click.Option(["--encoder-address"], help="ClipEncoderService host:port, for a names background"),
        click.Option(
            ["--k"], type=int, default=None,
            help=f"background concepts averaged per offset (default: {DEFAULT_CALIBRATION_K}, or the background "
            "size when that is smaller)",
        ),
        click.Option(["--probe-set"], default="", help="probe-set id (default: the only one in the store)"),
        click.Option(["--force"], is_flag=True, help="also models already calibrated this way"),
        click.Option(["--quiet"], is_flag=True, help="no progress bar"),
    ], short_help="recompute every stored model's calibration offsets against a new background set")


def main(args: SimpleNamespace) -> int:
    try:
        return asyncio.run(_main(args))
    except ProbeLogError as exc:
        print(f"error: {status_code(exc).name}: {exc}", file=sys.stderr)
        return 1


async def _main(args: SimpleNamespace) -> int:
    from tqdm import tqdm

    from probelog.common.server import create_channel

    closers = []
    try:
        if args.store_address:
            from probelog.descriptor_store.client import DescriptorStoreClient

            store: DescriptorStore = DescriptorStoreClient(create_channel(args.store_address), args.store_address)
        else:
            from probelog.descriptor_store.config import StoreSettings
            from probelog.descriptor_store.main import open_store

            store, _ = await open_store(StoreSettings(store_url=args.store_url))
        closers.append(store.close)
        probe_sets = await store.list_probe_sets()
        if args.probe_set:
            probe_set = await store.probe_set_info(args.probe_set)
        elif len(probe_sets) == 1:
            probe_set = probe_sets[0]
        else:
            raise InvalidArgument(f"the store has {len(probe_sets)} probe sets: name one with --probe-set")
        ps_id = probe_set.probe_set_id
        if args.background.endswith(".npy"):
            try:
                raw = np.load(args.background)
            except (OSError, ValueError) as exc:
                raise InvalidArgument(f"cannot read background descriptors {args.background}: {exc}") from None
            background = background_from_array(ps_id, raw, probe_set.n_probes)
        else:
            if not args.encoder_address:
                raise InvalidArgument("a names background needs --encoder-address (or give a .npy)")
            from probelog.clip_encoder.client import ClipEncoderClient

            encoder = ClipEncoderClient(create_channel(args.encoder_address), args.encoder_address)
            closers.append(encoder.close)
            background = await encode_background(encoder, ps_id, load_names(args.background))
        k = resolve_k(args.k, background.size)
        infos_total = sum([i.n_logits async for infos in iter_models(store, ps_id) for i in infos])
        with tqdm(total=infos_total, unit="logit", desc="recalibrating", file=sys.stderr,
                  disable=args.quiet) as bar:
            report = await recalibrate(store, ps_id, background, k, force=args.force, progress=bar.update)
        print(
            f"recalibrated {report.models} models ({report.logits} logits) of {ps_id} against "
            f"{background.background_id} ({background.size} concepts, k = {k}) in "
            f"{report.seconds:.1f} s; {report.skipped} already calibrated this way",
            file=sys.stderr,
        )
        return 0
    finally:
        for close in reversed(closers):
            await close()
