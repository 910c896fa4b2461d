"""probelog: run the services, index models, search them, inspect the index.

    probelog serve --embedded --world .data/world-tiny-seed0 --port 50051
    probelog serve orchestrator --ranker-addresses host1:50055,host2:50055
    probelog index --all
    probelog search "red striped circle" --top-k 10
    probelog task "cat" "dog" "fox"          # the models that cover a whole task
    probelog similar hub-0003 --logit 2      # logits that recognise what this one does
    probelog models

Service settings come from the environment (``PROBELOG_<NAME>``); every setting also has a flag
(``--store-url``, ``--clip-model``, ...), which wins.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import json
import logging
import os
import sys
import typing
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from probelog.common.edge import status_code
from probelog.common.errors import FailedPrecondition, ProbeLogError
from probelog.common.ids import DEFAULT_TOP_K
from probelog.common.logs import configure_logging
from probelog.common.probe_sets import DEFAULT_BUILD_SIZE
from probelog.common.settings import Settings, flat_fields, separator, split
from probelog.common.tracing import configure_tracing
from probelog.probe_runner.preprocessing import PRESETS
from probelog.v1 import types_pb2

DEFAULT_ADDRESS = "localhost:50051"
#: Labels `probelog models` prints per model.
LABELS_SHOWN = 5
#: Short flags for the backend URLs: ``--store redis://...``, ``--runner triton://host:8001``.
FLAG_ALIASES = {"store_url": ("--store",), "runner_url": ("--runner",), "clip_device": ("--device",)}


def _services() -> dict[str, tuple[type[Settings], Callable[..., Coroutine[Any, Any, None]]]]:
    # Imported here: each service pulls in only its own dependencies.
    from probelog import embedded
    from probelog.clip_encoder import config as encoder_config
    from probelog.clip_encoder import main as encoder_main
    from probelog.descriptor_store import config as store_config
    from probelog.descriptor_store import main as store_main
    from probelog.orchestrator import config as orchestrator_config
    from probelog.orchestrator import main as orchestrator_main
    from probelog.probe_runner import config as runner_config
    from probelog.probe_runner import main as runner_main
    from probelog.ranker import config as ranker_config
    from probelog.ranker import main as ranker_main
    from probelog.web import config as web_config

    return {
        "orchestrator": (orchestrator_config.OrchestratorSettings, orchestrator_main.serve),
        "indexer": (orchestrator_config.IndexerSettings, orchestrator_main.serve),
        "probe-runner": (runner_config.RunnerSettings, runner_main.serve),
        "clip-encoder": (encoder_config.EncoderSettings, encoder_main.serve),
        "descriptor-store": (store_config.StoreSettings, store_main.serve),
        "ranker": (ranker_config.RankerSettings, ranker_main.serve),
        "embedded": (embedded.EmbeddedSettings, embedded.serve),
        "web": (web_config.WebSettings, _serve_web),
    }


async def _serve_web(settings: Any, ready_file: str = "") -> None:
    try:
        from probelog.web import main as web_main
    except ImportError as exc:
        raise FailedPrecondition(f"the web role needs the web extra (pip install 'probelog[web]'): {exc}") from None
    await web_main.serve(settings, ready_file=ready_file)


SERVICE_NAMES = ("orchestrator", "indexer", "probe-runner", "clip-encoder", "descriptor-store", "ranker", "web")
DEFAULT_PORTS = {
    "orchestrator": 50051,
    "indexer": 50051,
    "probe-runner": 50052,
    "clip-encoder": 50053,
    "descriptor-store": 50054,
    "ranker": 50055,
    "embedded": 50051,
    "web": 8080,
}


def _serve(args: argparse.Namespace) -> int:
    service = "embedded" if args.embedded else args.service
    if service is None:
        print("error: name a service or pass --embedded", file=sys.stderr)
        return 2
    settings_cls, serve = _services()[service]
    names = set(flat_fields(settings_cls))
    every = {name for cls, _ in _services().values() for name in flat_fields(cls)}
    foreign = sorted(k for k, v in vars(args).items() if v is not None and k in every - names)
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        print(f"error: {service} does not take {flags}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in vars(args).items() if k in names}
    # Embedded mode binds loopback unless told otherwise: it is the one shape that may run
    # without API keys, on a developer's machine.
    host = args.host or ("127.0.0.1" if service == "embedded" else "[::]")
    if args.port is not None or args.host:
        overrides["listen_address"] = f"{host}:{args.port if args.port is not None else DEFAULT_PORTS[service]}"
    try:
        settings = settings_cls.from_env(overrides)
        configure_logging(settings.log_level, settings.log_format)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop_tracing = None
    try:
        stop_tracing = configure_tracing(service)
        asyncio.run(serve(settings, ready_file=args.ready_file or ""))
    except ProbeLogError as exc:
        logging.getLogger("probelog").error("cannot start %s: %s", service, exc)
        return 1
    except OSError as exc:
        logging.getLogger("probelog").error("cannot start %s: %s", service, exc)
        return 1
    finally:
        if stop_tracing is not None:
            stop_tracing()  # flushes the spans still buffered
    return 0


def _client(args: argparse.Namespace) -> Any:
    from probelog.client import ProbeLogClient

    return ProbeLogClient(args.address, token=args.token)


def _run_client(args: argparse.Namespace, action: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    async def main() -> int:
        async with _client(args) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except ProbeLogError as exc:
        print(f"error: {status_code(exc).name}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file named on the command line (an image, a truth file)
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


def _index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    async def action(client: Any) -> int:
        if args.status or args.retry_failed or (args.all and not args.models):
            progress = await client.indexing_progress()
            if progress.queue_enabled:
                return await _index_on_queue(client, args)
            if args.status or args.retry_failed:
                print("error: the orchestrator has no indexing queue (--index-queue-url)", file=sys.stderr)
                return 1
        names = [str(Path(n).resolve()) if os.path.exists(n) else n for n in args.models]
        if args.all:
            source = await client.source_models(probe_set_id=args.probe_set)
            names += [m.model_name for m in source if args.reindex or not m.indexed]
            if not names:
                print(f"all {len(source)} models are indexed already (--reindex to redo)", file=sys.stderr)
                return 0
        if not names:
            print("error: name models to index, or pass --all", file=sys.stderr)
            return 2
        failed = 0
        with tqdm(names, desc="indexing", unit="model", file=sys.stderr, disable=args.quiet) as bar:
            for name in bar:
                bar.set_postfix_str(Path(name).name)
                try:
                    response = await client.index(
                        name,
                        probe_set_id=args.probe_set,
                        preprocessing=types_pb2.Preprocessing(preset=args.preset) if args.preset else None,
                        output_name=args.output_name,
                        output_kind=args.output_kind,
                    )
                except ProbeLogError as exc:
                    failed += 1
                    tqdm.write(f"  {name}: {status_code(exc).name}: {exc}", file=sys.stderr)
                    continue
                model = response.model
                tqdm.write(
                    f"  {model.model_id}: {model.n_logits} logits, "
                    f"{response.timings.total_us / 1e6:.2f} s, {response.images_per_second:.0f} probes/s"
                    + ("" if response.searchable else " (stored, not yet searchable)"),
                    file=sys.stderr,
                )
        print(f"indexed {len(names) - failed} of {len(names)} models", file=sys.stderr)
        return 1 if failed else 0

    return _run_client(args, action)


#: Seconds between two progress polls of `probelog index` on a work queue.
PROGRESS_POLL_S = 0.5


async def _index_on_queue(client: Any, args: argparse.Namespace) -> int:
    """`index --all`, `--retry-failed`, `--status` on the orchestrator's work queue: queue, then
    follow the workers with a progress bar until nothing is queued or running."""
    from tqdm import tqdm

    if args.all or args.retry_failed:
        queued = await client.enqueue_indexing(
            all_models=args.all, reindex=args.reindex, retry_failed=args.retry_failed, probe_set_id=args.probe_set
        )
        print(f"queued {queued.enqueued} models ({queued.already_queued} queued already)", file=sys.stderr)
        if args.no_wait:
            return 0
    progress = await client.indexing_progress()
    if args.status and not args.wait:
        print(f"queued {progress.queued}  running {progress.running}  done {progress.done}  failed {progress.failed}")
    else:
        with tqdm(desc="indexing", unit="model", file=sys.stderr, disable=args.quiet) as bar:
            while True:
                bar.total = progress.queued + progress.running + progress.done + progress.failed
                bar.n = progress.done + progress.failed
                bar.set_postfix_str(f"running {progress.running}, failed {progress.failed}")
                if not progress.queued and not progress.running:
                    break
                await asyncio.sleep(PROGRESS_POLL_S)
                progress = await client.indexing_progress()
        print(f"done {progress.done}, failed {progress.failed}", file=sys.stderr)
    for failure in progress.failures:
        print(f"  failed: {failure.model_name}: {failure.reason}", file=sys.stderr)
    if progress.failed and not args.status:
        print("retry the failed models with `probelog index --retry-failed`", file=sys.stderr)
        return 1
    return 0


def _print_hits(hits: Sequence[Any], truth: dict[str, list[str]]) -> None:
    """One line per hit: rank, model, logit, score, distance, label, and the ground truth if given;
    then its evidence, when the search asked for it."""
    for hit in hits:
        line = (
            f"{hit.rank:>4}  {hit.model_id:<24} {hit.logit_index:>5}  {hit.score:>8.3f}  "
            f"{hit.distance:>8.3f}  {hit.label or '-'}"
        )
        if truth:
            concepts = truth.get(hit.model_id, [])
            line += "  |  " + (concepts[hit.logit_index] if hit.logit_index < len(concepts) else "?")
        print(line)
        if hit.evidence:
            print("      evidence (probe: logit z / query z): " + ", ".join(
                f"{e.probe_index}: {e.logit_value:.2f} / {e.query_value:.2f}" for e in hit.evidence
            ))


def _load_truth(path: str) -> dict[str, list[str]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    models = data.get("models", data)
    return {mid: list(m.get("concepts", [])) for mid, m in models.items()}


def _search(args: argparse.Namespace) -> int:
    if bool(args.text) == bool(args.image):
        print("error: give a concept text or --image files (not both)", file=sys.stderr)
        return 2

    async def action(client: Any) -> int:
        response = await client.search(
            args.text,
            images=args.image or (),
            top_k=args.top_k,
            one_hit_per_model=args.one_per_model,
            include=args.include or (),
            exclude=args.exclude or (),
            probe_set_id=args.probe_set,
            evidence_probes=args.evidence,
        )
        truth = _load_truth(args.truth) if args.truth else {}
        if args.json:
            from google.protobuf import json_format

            print(json_format.MessageToJson(response))
            return 0
        query = args.text if args.text else f"{len(args.image)} image(s)"
        print(
            f"{query!r}: {len(response.hits)} hits among {response.n_logits_searched} logits of "
            f"{response.n_models_searched} models ({response.timings.total_us / 1000:.1f} ms)"
            + ("  [PARTIAL: some shards did not answer]" if response.partial else "")
        )
        header = f"{'rank':>4}  {'model':<24} {'logit':>5}  {'score':>8}  {'distance':>8}  label"
        if truth:
            header += "  |  ground truth (evaluation only)"
        print(header)
        _print_hits(response.hits, truth)
        return 0

    return _run_client(args, action)


AGGREGATIONS = ("mean", "worst", "mean_rank")


def _print_matches(matches: Sequence[Any], concepts: Sequence[str], truth: dict[str, list[str]]) -> None:
    """Each model with its score and coverage, then concept -> logit lines."""
    for match in matches:
        print(f"{match.rank:>4}  {match.model_id:<24} score {match.score:>8.3f}  covers {match.coverage}/{len(concepts)}")
        for a in match.assignments:
            if not a.covered:
                print(f"        {concepts[a.concept_index]!r:<28} -> (uncovered)")
                continue
            line = (
                f"        {concepts[a.concept_index]!r:<28} -> logit {a.logit_index:>4}  score {a.score:>8.3f}  "
                f"rank {a.concept_rank:>4}  {a.label or '-'}"
            )
            if truth:
                labels = truth.get(match.model_id, [])
                line += "  |  " + (labels[a.logit_index] if a.logit_index < len(labels) else "?")
            print(line)


def _task(args: argparse.Namespace) -> int:
    from probelog.v1 import search_pb2

    async def action(client: Any) -> int:
        response = await client.task(
            args.concepts,
            top_k=args.top_k,
            min_coverage=args.min_coverage,
            allow_shared_logits=args.allow_shared_logits,
            candidate_depth=args.candidate_depth,
            max_score=args.max_score,
            aggregation=search_pb2.TaskAggregation.Value(f"TASK_AGGREGATION_{args.aggregation.upper()}"),
            include=args.include or (),
            exclude=args.exclude or (),
            probe_set_id=args.probe_set,
        )
        if args.json:
            from google.protobuf import json_format

            print(json_format.MessageToJson(response))
            return 0
        print(
            f"task of {len(args.concepts)} concepts: {len(response.models)} models among "
            f"{response.n_models_searched} ({response.n_models_eligible} eligible, top {response.candidate_depth} "
            f"candidates per concept, {response.timings.total_us / 1000:.1f} ms)"
            + ("  [PARTIAL: some shards did not answer]" if response.partial else "")
        )
        _print_matches(response.models, args.concepts, _load_truth(args.truth) if args.truth else {})
        return 0

    return _run_client(args, action)


def _similar(args: argparse.Namespace) -> int:
    async def action(client: Any) -> int:
        response = await client.similar(
            args.model_id,
            logit_index=args.logit,
            top_k=args.top_k,
            min_coverage=args.min_coverage,
            allow_shared_logits=args.allow_shared_logits,
            include=args.include or (),
            exclude=args.exclude or (),
            probe_set_id=args.probe_set,
        )
        if args.json:
            from google.protobuf import json_format

            print(json_format.MessageToJson(response))
            return 0
        truth = _load_truth(args.truth) if args.truth else {}
        if args.logit is None:
            info = await client.get_model(args.model_id, probe_set_id=args.probe_set)
            names = [f"logit {j}" + (f" ({label})" if label else "") for j, label in enumerate(info.labels or [""] * info.n_logits)]
            print(f"models like {args.model_id} ({response.timings.total_us / 1000:.1f} ms):")
            _print_matches(response.models, names, truth)
            return 0
        print(f"logits like {args.model_id}[{args.logit}] ({response.timings.total_us / 1000:.1f} ms):")
        _print_hits(response.hits, truth)
        return 0

    return _run_client(args, action)


def _models(args: argparse.Namespace) -> int:
    async def action(client: Any) -> int:
        models = await client.models(probe_set_id=args.probe_set)
        if args.json:
            from google.protobuf import json_format

            print(json.dumps([json_format.MessageToDict(m) for m in models], indent=2))
            return 0
        from probelog.probe_runner.preprocessing import describe

        print(f"{'model':<28} {'logits':>6}  {'source':<28} indexed")
        for m in models:
            print(
                f"{m.model_id:<28} {m.n_logits:>6}  {m.source.model_name[-28:]:<28} "
                f"{m.indexed_at.ToDatetime().isoformat(timespec='seconds')}"
            )
            if m.preprocessing.height:
                print(f"    input    {describe(m.preprocessing)}")
                print(f"    output   {m.output_name} ({m.output_kind})")
            if any(m.labels):
                shown = ", ".join(m.labels[:LABELS_SHOWN]) + (", ..." if len(m.labels) > LABELS_SHOWN else "")
                print(f"    labels   {shown}")
        print(f"{len(models)} models, {sum(m.n_logits for m in models)} logits", file=sys.stderr)
        return 0

    return _run_client(args, action)


def _delete(args: argparse.Namespace) -> int:
    async def action(client: Any) -> int:
        for model_id in args.model_ids:
            await client.delete_model(model_id, probe_set_id=args.probe_set)
            print(f"deleted {model_id}")
        return 0

    return _run_client(args, action)


def _probe_sets(args: argparse.Namespace) -> int:
    async def action(client: Any) -> int:
        response = await client.probe_sets()
        for p in response.probe_sets:
            mark = "*" if p.probe_set_id == response.default_probe_set_id else " "
            print(f"{mark} {p.probe_set_id}  {p.name:<24} {p.n_probes:>6} probes  {p.height}x{p.width}")
        return 0

    return _run_client(args, action)


def _triton_repo(args: argparse.Namespace) -> int:
    from probelog.probe_runner.triton_repo import write_repository

    try:
        names = write_repository(args.hub, args.out, backend=args.backend, models=args.model)
    except ProbeLogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(names)} models to {args.out} ({args.backend} backend)", file=sys.stderr)
    return 0


def _probe_set_build(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from probelog.common.probe_sets import find_images, probe_set_id, read_probe_image, save_probe_set

    if args.size < 1:
        print(f"error: --size must be >= 1, got {args.size}", file=sys.stderr)
        return 2
    if not (args.out or args.store):
        print("error: give --out FILE, --store URL, or both", file=sys.stderr)
        return 2
    try:
        paths = find_images(args.source, count=args.count, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    images, skipped = [], 0
    for path in tqdm(paths, desc="reading", unit="image", file=sys.stderr, disable=args.quiet):
        try:
            images.append(read_probe_image(path, args.size))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            skipped += 1
            tqdm.write(f"  skipped {path}: {exc}", file=sys.stderr)
    if not images:
        print(f"error: none of the {len(paths)} files could be read", file=sys.stderr)
        return 1
    stacked = np.stack(images)
    ps_id = probe_set_id(stacked)
    where = []
    if args.out:
        save_probe_set(args.out, args.name, stacked)
        where.append(args.out)
    if args.store:
        try:
            asyncio.run(_register_probe_set(args.store, args.name, stacked))
        except ProbeLogError as exc:
            print(f"error: {status_code(exc).name}: {exc}", file=sys.stderr)
            return 1
        where.append(f"the store at {args.store}")
    print(ps_id)
    print(
        f"probe set {args.name!r} ({ps_id}): {len(images)} images of {args.size}x{args.size} in "
        + " and ".join(where)
        + (f"; {skipped} unreadable files skipped" if skipped else ""),
        file=sys.stderr,
    )
    return 0


async def _register_probe_set(store_url: str, name: str, images: Any) -> None:
    from probelog.descriptor_store.config import StoreSettings
    from probelog.descriptor_store.main import open_store

    store, _ = await open_store(StoreSettings(store_url=store_url))
    try:
        await store.put_probe_set(name, images)
    finally:
        await store.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probelog", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a service, or all of them in one process (--embedded)")
    serve.add_argument("service", nargs="?", choices=SERVICE_NAMES)
    serve.add_argument("--embedded", action="store_true", help="all five services in one process")
    serve.add_argument(
        "--host", help="interface to bind (default 127.0.0.1 for --embedded, [::] for a service)"
    )
    serve.add_argument("--port", type=int, help="port to bind (0: any free port); default per service")
    serve.add_argument("--ready-file", help="write the bound port here once serving")
    # Every service's settings are accepted; each service reads the ones it has.
    seen: set[str] = set()
    for settings_cls, _ in _services().values():
        _add_settings_flags(serve, settings_cls, seen)
    serve.set_defaults(func=_serve)

    def client_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--address", default=os.environ.get("PROBELOG_ADDRESS", DEFAULT_ADDRESS),
            help=f"SearchService host:port (env PROBELOG_ADDRESS; default {DEFAULT_ADDRESS})",
        )
        p.add_argument("--probe-set", default="", help="probe-set id or name (default: the server's)")
        p.add_argument(
            "--token", default=os.environ.get("PROBELOG_TOKEN", ""),
            help="API key sent as 'authorization: Bearer <key>' (env PROBELOG_TOKEN)",
        )
        return p

    index = client_parser("index", "probe models and make them searchable")
    index.add_argument("models", nargs="*", help="model names known to the runner, or model paths (a server run with --onnx-allow-paths)")
    index.add_argument("--all", action="store_true", help="every model the runner serves that is not indexed yet")
    index.add_argument("--reindex", action="store_true", help="with --all: also models indexed already")
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    index.add_argument("--status", action="store_true", help="the work queue's counts and failed models")
    index.add_argument("--wait", action="store_true", help="with --status: follow the workers until the queue is empty")
    index.add_argument("--retry-failed", action="store_true", help="queue the models that failed again")
    index.add_argument("--no-wait", action="store_true", help="on a work queue: return once the models are queued")
    index.add_argument(
        "--preset", choices=sorted(PRESETS),
        help="preprocessing preset, over the model config's (README: Indexing your own models)",
    )
    index.add_argument("--output-name", default="", help="the output to index when a model has several")
    index.add_argument(
        "--output-kind", choices=["logits", "probabilities"], default="",
        help="what the output holds (default: detected)",
    )
    index.set_defaults(func=_index)

    search = client_parser("search", "find the models (and logits) that recognise a concept")
    search.add_argument("text", nargs="?", help='a concept, e.g. "golden retriever"')
    search.add_argument("--image", action="append", help="an example image of the concept (repeatable)")
    search.add_argument("--top-k", type=positive_int, default=DEFAULT_TOP_K, help=f"hits to return (default {DEFAULT_TOP_K})")
    search.add_argument("--one-per-model", action="store_true", help="each model once, through its best logit")
    search.add_argument("--include", action="append", help="only this model id (repeatable)")
    search.add_argument("--exclude", action="append", help="leave this model id out (repeatable)")
    search.add_argument("--truth", help="a ground-truth JSON to print beside hits (evaluation only)")
    search.add_argument(
        "--evidence", type=int, default=0, metavar="N",
        help="per hit, the N probes where its logit and the query agree most",
    )
    search.add_argument("--json", action="store_true", help="print the response as JSON")
    search.set_defaults(func=_search)

    task = client_parser("task", "find the models that cover a whole task of concepts")
    task.add_argument("concepts", nargs="+", help='2 to 1,000 concepts, e.g. "cat" "dog" "fox"')
    task.add_argument("--top-k", type=positive_int, default=DEFAULT_TOP_K, help=f"models to return (default {DEFAULT_TOP_K})")
    task.add_argument("--min-coverage", type=int, default=0, help="fewest concepts a model covers (default all)")
    task.add_argument("--allow-shared-logits", action="store_true", help="several concepts may share a logit")
    task.add_argument("--candidate-depth", type=int, default=0, help="candidate logits per concept (default: the server's)")
    task.add_argument("--max-score", type=float, help="a logit covers a concept only at this calibrated score or lower")
    task.add_argument("--aggregation", choices=AGGREGATIONS, default="mean", help="the model score")
    task.add_argument("--include", action="append", help="only this model id (repeatable)")
    task.add_argument("--exclude", action="append", help="leave this model id out (repeatable)")
    task.add_argument("--truth", help="a ground-truth JSON to print beside assignments (evaluation only)")
    task.add_argument("--json", action="store_true", help="print the response as JSON")
    task.set_defaults(func=_task)

    similar = client_parser("similar", "find the logits (or models) that recognise what an indexed one does")
    similar.add_argument("model_id")
    similar.add_argument("--logit", type=int, help="the logit index (default: the whole model)")
    similar.add_argument("--top-k", type=positive_int, default=DEFAULT_TOP_K, help=f"hits to return (default {DEFAULT_TOP_K})")
    similar.add_argument("--min-coverage", type=int, default=0, help="whole model: fewest of its logits covered (default 1)")
    similar.add_argument("--allow-shared-logits", action="store_true")
    similar.add_argument("--include", action="append", help="only this model id (repeatable)")
    similar.add_argument("--exclude", action="append", help="leave this model id out (repeatable)")
    similar.add_argument("--truth", help="a ground-truth JSON to print beside hits (evaluation only)")
    similar.add_argument("--json", action="store_true", help="print the response as JSON")
    similar.set_defaults(func=_similar)

    models = client_parser("models", "list indexed models")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=_models)

    delete = client_parser("delete", "remove models from the index")
    delete.add_argument("model_ids", nargs="+")
    delete.set_defaults(func=_delete)

    probe_sets = client_parser("probe-sets", "list registered probe sets (* marks the default)")
    probe_sets.set_defaults(func=_probe_sets)

    probe_set = sub.add_parser("probe-set", help="make probe sets")
    probe_set_sub = probe_set.add_subparsers(dest="probe_set_command", required=True)
    build = probe_set_sub.add_parser(
        "build", help="a probe-set file from a folder (or glob) of JPEG/PNG/WebP images; serve it with --probe-set-file"
    )
    build.add_argument("source", help="a directory (searched recursively) or a glob pattern, e.g. 'val/**/*.JPEG'")
    build.add_argument("--name", required=True, help="the probe set's name, e.g. coco-val-4000")
    build.add_argument("--out", help="the probe-set file to write (.npz), for a server's --probe-set-file")
    build.add_argument("--store", help="register it in this store (file://DIR or redis://...), as the services' --store-url")
    build.add_argument("--count", type=int, default=0, help="a sample of this many images (default: all)")
    build.add_argument("--seed", type=int, default=0, help="seed of the sample")
    build.add_argument(
        "--size", type=int, default=DEFAULT_BUILD_SIZE,
        help=f"side of the stored square images (default {DEFAULT_BUILD_SIZE}); each model's preprocessing resizes from it",
    )
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_probe_set_build)

    repo = sub.add_parser("triton-repo", help="write a hub of ONNX models as a Triton model repository")
    repo.add_argument("hub", help="model hub: NAME/config.pbtxt + NAME/<version>/model.onnx, or NAME.onnx files")
    repo.add_argument("out", help="the repository directory to write (models in it are replaced)")
    repo.add_argument(
        "--backend", choices=("onnxruntime", "python"), default="onnxruntime",
        help="onnxruntime: Triton's ONNX backend (GPU servers); python: a model.py running onnxruntime "
        "(CPU-only servers with the Python backend only)",
    )
    repo.add_argument("--model", action="append", default=[], help="only this model (repeatable)")
    repo.set_defaults(func=_triton_repo)

    # Command groups of their own; each imports its heavy dependencies only when it runs.
    from probelog.orchestrator import recalibrate

    recalibrate.register(sub)
    # Groups from installed tools (`world` and `bench` from probelog-tools) come through the
    # entry-point group "probelog.commands": the served package never imports them.
    for entry_point in sorted(entry_points(group="probelog.commands"), key=lambda e: e.name):
        entry_point.load()(sub)
    return parser


def positive_int(value: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field of a settings class and its bases, by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        comment: list[str] = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#:"):
                comment.append(stripped[2:].strip())
                continue
            name = stripped.split(":", 1)[0]
            if comment and name.isidentifier():
                docs[name] = " ".join(comment)
            comment = []
    return docs


def _add_settings_flags(parser: argparse.ArgumentParser, cls: type[Settings], seen: set[str]) -> None:
    """A flag per settings field not added yet (``store_url`` -> ``--store-url``), its help
    the field's description, default and environment variable."""
    fresh = {name: spec for name, spec in flat_fields(cls).items() if name not in seen}
    seen.update(fresh)
    docs: dict[str, str] = {}
    for hint in [cls, *(typing.get_type_hints(cls).values())]:
        if isinstance(hint, type) and issubclass(hint, Settings):
            docs.update(field_docs(hint))
    for name, (field, kind) in fresh.items():
        flags = ["--" + name.replace("_", "-"), *FLAG_ALIASES.get(name, ())]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        shown = ",".join(default) if isinstance(default, tuple) else default
        help_text = f"{docs.get(name, '')} (default {shown!r}; env PROBELOG_{name.upper()})".lstrip()
        help_text = help_text.replace("%", "%%")
        if kind is bool:
            parser.add_argument(*flags, dest=field.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(kind) is tuple:
            sep = separator(field)
            parser.add_argument(
                *flags, dest=field.name, default=None, help=help_text + f" ({sep!r}-separated)",
                type=lambda v, sep=sep: split(v, sep),
            )
        else:
            parser.add_argument(*flags, dest=field.name, type=kind, default=None, help=help_text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
