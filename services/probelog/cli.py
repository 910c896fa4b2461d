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
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import grpc
from pydantic.fields import FieldInfo

from probelog.common.edge import status_code
from probelog.common.errors import FailedPrecondition, ProbeLogError
from probelog.common.ids import DEFAULT_TOP_K
from probelog.common.logs import configure_logging
from probelog.common.probe_sets import DEFAULT_BUILD_SIZE
from probelog.common.settings import Settings, env_name, flag, flat_fields, separator
from probelog.common.tracing import configure_tracing
from probelog.probe_runner.preprocessing import PRESETS
from probelog.v1 import types_pb2

DEFAULT_ADDRESS = "localhost:50051"
#: Labels `probelog models` prints per model.
LABELS_SHOWN = 5
#: Short flags for the backend URLs: ``--store redis://...``, ``--runner triton://host:8001``.
#: What a command's handler gets: its parameters by name (``args.top_k``).
Args = SimpleNamespace
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


def _serve(args: Args) -> int:
    service = "embedded" if args.embedded else args.service
    if service is None:
        print("error: name a service or pass --embedded", file=sys.stderr)
        return 2
    settings_cls, serve = _services()[service]
    names = set(flat_fields(settings_cls))
    every = {name for cls, _ in _services().values() for name in flat_fields(cls)}
    foreign = sorted(k for k, v in vars(args).items() if v is not None and k in every - names)
    if foreign:
        flags = ", ".join(flag(k) for k in foreign)
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


def _client(args: Args) -> Any:
    from probelog.client import ProbeLogClient

    return ProbeLogClient(args.address, token=args.token)


def _run_client(args: Args, action: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    async def main() -> int:
        async with _client(args) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except ProbeLogError as exc:
        code = status_code(exc)
        print(f"error: {code.name}: {exc}", file=sys.stderr)
        # No server at the address is the caller's mistake, like a bad flag; the server's own
        # answers (NOT_FOUND, INVALID_ARGUMENT, ...) exit 1.
        return 2 if code == grpc.StatusCode.UNAVAILABLE else 1
    except OSError as exc:  # a file named on the command line (an image, a truth file)
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


def _index(args: Args) -> int:
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
                        output_kind=args.output_kind or "",
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


async def _index_on_queue(client: Any, args: Args) -> int:
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


def _search(args: Args) -> int:
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


def _task(args: Args) -> int:
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


def _similar(args: Args) -> int:
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


def _models(args: Args) -> int:
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


def _delete(args: Args) -> int:
    async def action(client: Any) -> int:
        for model_id in args.model_ids:
            await client.delete_model(model_id, probe_set_id=args.probe_set)
            print(f"deleted {model_id}")
        return 0

    return _run_client(args, action)


def _probe_sets(args: Args) -> int:
    async def action(client: Any) -> int:
        response = await client.probe_sets()
        for p in response.probe_sets:
            mark = "*" if p.probe_set_id == response.default_probe_set_id else " "
            print(f"{mark} {p.probe_set_id}  {p.name:<24} {p.n_probes:>6} probes  {p.height}x{p.width}")
        return 0

    return _run_client(args, action)


def _triton_repo(args: Args) -> int:
    from probelog.probe_runner.triton_repo import write_repository

    try:
        names = write_repository(args.hub, args.out, backend=args.backend, models=args.model)
    except ProbeLogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(names)} models to {args.out} ({args.backend} backend)", file=sys.stderr)
    return 0


def _probe_set_build(args: Args) -> int:
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


class PositiveInt(click.ParamType):
    """An integer of at least 1."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            number = int(value)
        except ValueError:
            self.fail(f"expected a whole number, got {value!r}", param, ctx)
        if number < 1:
            self.fail(f"must be at least 1, got {number}", param, ctx)
        return number


def _field_help(name: str, field: FieldInfo) -> str:
    """A settings field's description, default and environment variable."""
    default = field.get_default(call_default_factory=True)
    sep = separator(field)
    shown = sep.join(default) if sep is not None else default
    return f"{field.description or ''} (default {shown!r}; env {env_name(name)})".lstrip()


def _setting_option(name: str, fields: dict[str, FieldInfo]) -> click.Option:
    """A flag for a settings field (``store_url`` -> ``--store-url``) that one or more roles take,
    its help the field's description, default and environment variable (each role's, where roles
    differ: ``serve indexer`` runs one worker by default, the orchestrator none). It defaults to
    None: the settings then read the environment, or keep their default."""
    field = next(iter(fields.values()))
    sep = separator(field)
    helps: dict[str, str] = {}
    for role, role_field in fields.items():
        helps.setdefault(_field_help(name, role_field), role)
    first, *others = helps
    help_text = "; ".join([first, *(f"{helps[text]}: {text}" for text in others)])
    decls = [flag(name), *FLAG_ALIASES.get(name, ())]
    if field.annotation is bool:
        return click.Option([f"{decls[0]}/--no-{decls[0][2:]}", *decls[1:], name], default=None, help=help_text)
    if sep is not None:
        help_text += f" ({sep!r}-separated)"
    kind = {int: click.INT, float: click.FLOAT}.get(field.annotation, click.STRING)  # type: ignore[call-overload]
    return click.Option([*decls, name], type=kind, default=None, metavar=name.upper(), help=help_text)


def _serve_command() -> click.Command:
    """``probelog serve``: every service's settings as flags; each service takes its own only."""
    fields: dict[str, dict[str, FieldInfo]] = {}
    for role, (settings_cls, _) in _services().items():
        for name, field in flat_fields(settings_cls).items():
            fields.setdefault(name, {})[role] = field
    options = {name: _setting_option(name, by_role) for name, by_role in fields.items()}
    return _command("serve", _serve, [
        click.Argument(["service"], required=False, type=click.Choice(SERVICE_NAMES)),
        click.Option(["--embedded"], is_flag=True, help="all five services in one process"),
        click.Option(["--host"], help="interface to bind (default 127.0.0.1 for --embedded, [::] for a service)"),
        click.Option(["--port"], type=int, help="port to bind (0: any free port); default per service"),
        click.Option(["--ready-file"], help="write the bound port here once serving"),
        *options.values(),
    ], help_text="run a service, or all of them in one process (--embedded); each setting is read from its "
       "PROBELOG_* environment variable unless its flag is given")


def _command(name: str, handler: Callable[[Args], int], params: list[click.Parameter], help_text: str) -> click.Command:
    """A command whose handler gets its parameters as one namespace (``args.top_k``)."""

    def callback(**values: Any) -> int:
        return handler(Args(**values))

    return click.Command(name, params=params, callback=callback, help=help_text, short_help=help_text.split(";")[0])


def _client_command(name: str, handler: Callable[[Args], int], params: list[click.Parameter], help_text: str) -> click.Command:
    """A command that calls SearchService: its own parameters, then the address, probe set and key."""
    return _command(name, handler, [
        *params,
        click.Option(
            ["--address"], default=DEFAULT_ADDRESS, envvar="PROBELOG_ADDRESS",
            help=f"SearchService host:port (default {DEFAULT_ADDRESS!r}; env PROBELOG_ADDRESS)",
        ),
        click.Option(["--probe-set", "probe_set"], default="", help="probe-set id or name (default: the server's)"),
        click.Option(
            ["--token"], default="", envvar="PROBELOG_TOKEN",
            help="API key sent as 'authorization: Bearer <key>' (env PROBELOG_TOKEN)",
        ),
    ], help_text)


def _flag(decl: str, help_text: str) -> click.Option:
    return click.Option([decl, decl[2:].replace("-", "_")], is_flag=True, help=help_text)


def _top_k(what: str) -> click.Option:
    return click.Option(
        ["--top-k"], type=PositiveInt(), default=DEFAULT_TOP_K, help=f"{what} to return (default {DEFAULT_TOP_K})"
    )


def _filters(truth: str) -> list[click.Parameter]:
    """--include, --exclude, --truth and --json, as the search commands share them."""
    return [
        click.Option(["--include"], multiple=True, help="only this model id (repeatable)"),
        click.Option(["--exclude"], multiple=True, help="leave this model id out (repeatable)"),
        click.Option(["--truth"], help=f"a ground-truth JSON to print beside {truth} (evaluation only)"),
        _flag("--json", "print the response as JSON"),
    ]


def build_cli() -> click.Group:
    """The ``probelog`` command and its subcommands."""
    cli = click.Group(
        "probelog", help=__doc__.split("\n\n")[0], context_settings={"help_option_names": ["-h", "--help"]}
    )
    cli.add_command(_serve_command())
    cli.add_command(_client_command("index", _index, [
        click.Argument(["models"], nargs=-1),
        _flag("--all", "every model the runner serves that is not indexed yet"),
        _flag("--reindex", "with --all: also models indexed already"),
        _flag("--quiet", "no progress bar"),
        _flag("--status", "the work queue's counts and failed models"),
        _flag("--wait", "with --status: follow the workers until the queue is empty"),
        _flag("--retry-failed", "queue the models that failed again"),
        _flag("--no-wait", "on a work queue: return once the models are queued"),
        click.Option(
            ["--preset"], type=click.Choice(sorted(PRESETS)),
            help="preprocessing preset, over the model config's (README: Indexing your own models)",
        ),
        click.Option(["--output-name"], default="", help="the output to index when a model has several"),
        click.Option(
            ["--output-kind"], type=click.Choice(["logits", "probabilities"]),
            help="what the output holds (default: detected)",
        ),
    ], "probe models and make them searchable; MODELS are names known to the runner, or model paths "
       "(a server run with --onnx-allow-paths)"))
    cli.add_command(_client_command("search", _search, [
        click.Argument(["text"], required=False),
        click.Option(["--image"], multiple=True, help="an example image of the concept (repeatable)"),
        _top_k("hits"),
        _flag("--one-per-model", "each model once, through its best logit"),
        click.Option(
            ["--evidence"], type=click.IntRange(min=0), default=0, metavar="N",
            help="per hit, the N probes where its logit and the query agree most",
        ),
        *_filters("hits"),
    ], 'find the models (and logits) that recognise a concept; TEXT e.g. "golden retriever"'))
    cli.add_command(_client_command("task", _task, [
        click.Argument(["concepts"], nargs=-1, required=True),
        _top_k("models"),
        click.Option(["--min-coverage"], type=int, default=0, help="fewest concepts a model covers (default all)"),
        _flag("--allow-shared-logits", "several concepts may share a logit"),
        click.Option(["--candidate-depth"], type=int, default=0, help="candidate logits per concept (default: the server's)"),
        click.Option(["--max-score"], type=float, help="a logit covers a concept only at this calibrated score or lower"),
        click.Option(["--aggregation"], type=click.Choice(AGGREGATIONS), default="mean", help="the model score"),
        *_filters("assignments"),
    ], 'find the models that cover a whole task; 2 to 1,000 CONCEPTS, e.g. "cat" "dog" "fox"'))
    cli.add_command(_client_command("similar", _similar, [
        click.Argument(["model_id"]),
        click.Option(["--logit"], type=int, help="the logit index (default: the whole model)"),
        _top_k("hits"),
        click.Option(["--min-coverage"], type=int, default=0, help="whole model: fewest of its logits covered (default 1)"),
        _flag("--allow-shared-logits", "several of its logits may share one"),
        *_filters("hits"),
    ], "find the logits (or models) that recognise what an indexed one does"))
    cli.add_command(_client_command("models", _models, [_flag("--json", "print the models as JSON")], "list indexed models"))
    cli.add_command(_client_command(
        "delete", _delete, [click.Argument(["model_ids"], nargs=-1, required=True)], "remove models from the index"
    ))
    cli.add_command(_client_command("probe-sets", _probe_sets, [], "list registered probe sets (* marks the default)"))
    probe_set = click.Group("probe-set", help="make probe sets")
    probe_set.add_command(_command("build", _probe_set_build, [
        click.Argument(["source"]),
        click.Option(["--name"], required=True, help="the probe set's name, e.g. coco-val-4000"),
        click.Option(["--out"], help="the probe-set file to write (.npz), for a server's --probe-set-file"),
        click.Option(["--store"], help="register it in this store (file://DIR or redis://...), as the services' --store-url"),
        click.Option(["--count"], type=int, default=0, help="a sample of this many images (default: all)"),
        click.Option(["--seed"], type=int, default=0, help="seed of the sample"),
        click.Option(
            ["--size"], type=int, default=DEFAULT_BUILD_SIZE,
            help=f"side of the stored square images (default {DEFAULT_BUILD_SIZE}); each model's preprocessing resizes from it",
        ),
        _flag("--quiet", "no progress bar"),
    ], "a probe-set file from JPEG/PNG/WebP images; SOURCE is a folder (searched recursively) or a glob "
       "('val/**/*.JPEG'); serve the file with --probe-set-file"))
    cli.add_command(probe_set)
    cli.add_command(_command("triton-repo", _triton_repo, [
        click.Argument(["hub"]),
        click.Argument(["out"]),
        click.Option(
            ["--backend"], type=click.Choice(("onnxruntime", "python")), default="onnxruntime",
            help="onnxruntime: Triton's ONNX backend (GPU servers); python: a model.py running onnxruntime "
            "(CPU-only servers with the Python backend only)",
        ),
        click.Option(["--model"], multiple=True, help="only this model (repeatable)"),
    ], "write a hub of ONNX models as a Triton model repository; HUB: NAME/config.pbtxt + "
       "NAME/<version>/model.onnx, or NAME.onnx files; OUT: the repository to write (models in it are replaced)"))
    # Command groups of their own; each imports its heavy dependencies only when it runs.
    from probelog.orchestrator import recalibrate

    cli.add_command(recalibrate.command())
    # Groups from installed tools (`world` and `bench` from probelog-tools) come through the
    # entry-point group "probelog.commands": the served package never imports them.
    for entry_point in sorted(entry_points(group="probelog.commands"), key=lambda e: e.name):
        cli.add_command(_argparse_group(entry_point.name, entry_point.load()))
    return cli


def _argparse_group(name: str, register: Callable[[Any], Any]) -> click.Command:
    """A command group that a tool declares with argparse (``register(subparsers)``), run under
    the ``probelog`` command: its own parser reads the arguments that follow its name."""
    parser = argparse.ArgumentParser(prog="probelog")
    groups = parser.add_subparsers(dest="command", required=True)
    register(groups)

    def callback(args: tuple[str, ...]) -> int:
        try:
            parsed = parser.parse_args([name, *args])
        except SystemExit as exc:  # --help, or a usage error already printed
            return exc.code if isinstance(exc.code, int) else 2
        return int(parsed.func(parsed) or 0)

    return click.Command(
        name, callback=callback, params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        help=getattr(groups.choices.get(name), "description", None) or f"the {name} commands (probelog {name} --help)",
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; a usage mistake ends in one line on stderr and exit code 2."""
    try:
        return int(build_cli().main(list(sys.argv[1:] if argv is None else argv), prog_name="probelog", standalone_mode=False) or 0)
    except click.MissingParameter as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except click.BadParameter as exc:
        where = exc.param.opts[0] if exc.param is not None and exc.param.opts else exc.param_hint
        print(f"error: {where}: {exc.message}" if where else f"error: {exc.message}", file=sys.stderr)
        return 2
    except click.UsageError as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except click.Abort:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
