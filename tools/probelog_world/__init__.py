"""The miniature world: a trained stand-in for ImageNet, COCO, CLIP and a model hub.

No pretrained CLIP, real image dataset or public classifier can be fetched where this project is
built, so it trains its own world, as the ProbeLog paper built INet-Hub (App. E): a procedural
image generator with hundreds of fine-grained concepts, small CLIPs trained on it with open_clip's
own model classes, probe sets, competent foundations (the CLIPs' image towers and backbones
trained on every concept, each checked on held-out images), and a hub of classifiers with 15 to
200 classes each drawn at random, 90% from those foundations (linear heads or linear probe then
fine-tune) and 10% from scratch, with ground truth kept apart for evaluation. Build one with::

    python -m probelog_world build --scale tiny|demo|bench --seed 0 --out DIR   # or: probelog world build

or from Python with :func:`probelog_world.build.build_world`; :func:`~probelog_world.build.cached_world`
returns the default tiny world, building it on first use.

Layout of a built world ``DIR``
-------------------------------
``world.json``
    Scale, seed, version, ``image_size``, ``clip_model_name``, probe-set ids and sizes, the
    search CLIP's zero-shot top-1 (fine, coarse) and text selectivity, every CLIP's report
    (``clips``), every foundation's held-out accuracy (``foundations``), a hub summary (logits
    per model, mean test accuracy, mean logit PR-AUC, by family, init, method and kind),
    ``probelog_top1`` (at the demo scale: ProbeLog's top-1 and top-5 over the hub's concepts),
    timings, the scale's parameters.
``concepts.json``
    Every concept: ``{"index", "name", "level": "fine"|"coarse", "kind", "parents": [...],
    "attributes": {"colour", "pattern", "shape"}}`` (a coarse concept's unset attributes are
    null). Fine concepts come first; ``index`` < 384 are fine.
``background.txt``
    The background concept set for hubness calibration, one name per line (up to 500 names of
    the world's concepts, fine and coarse, drawn with a fixed seed).
``clip/<clip_model_name>.json``, ``clip/checkpoint.pt``
    The open_clip model config (the file stem is the model name) and an open_clip checkpoint:
    ``open_clip.add_model_config(json)``, then ``open_clip.create_model_and_transforms(name,
    pretrained=checkpoint)`` and ``open_clip.get_tokenizer(name)``; :func:`~probelog_world.clip.load_clip`
    does exactly this.
``clip/report.json``
    Zero-shot top-1 on held-out single objects over the fine concepts (``fine_top1``) and over
    each coarse kind (``coarse_top1_by_kind``, mean ``coarse_top1``), ``text_selectivity`` (mean
    R-precision of each fine concept's prompt on held-out objects), ``scene_auc``, the loss curve,
    steps and time; ``carried`` when the CLIP came from the package's ``data/``.
``probe_sets/{scenes,objects,noise,shifted}.npz``
    Probe sets as written by :func:`probelog.common.probe_sets.save_probe_set`: uint8
    (n, H, W, 3) RGB, fixed order, identified by content hash. ``scenes`` is the default.
``hub/<model>/config.pbtxt``, ``hub/<model>/1/model.onnx``
    A Triton model repository (platform ``onnxruntime_onnx``): input ``images`` FP32
    ``[3, H, W]`` in [0, 1] (normalisation is inside the graph), output ``logits`` FP32
    ``[n_logits]``, dynamic batch axis. Names are ``hub-0000`` onwards; nothing in ``hub/``
    names a class.
``ground_truth.json``
    Evaluation only, never read by search: ``{"models": {name: {"concepts": [name per logit, in
    logit order], "architecture", "family", "init": "foundation:<name>"|"scratch", "method":
    "linear"|"lp-ft"|"scratch", "kind", "test_accuracy", "logit_accuracy": [per logit],
    "logit_pr_auc": [per logit, one against all held-out objects], "epochs", "n_train_images",
    ...}}}``.
``eval/objects.npz``
    Held-out single-object test images (never trained on), ``eval_per_concept`` per fine
    concept: ``images`` uint8 (n, H, W, 3), ``labels`` int64 (n,) fine concept index,
    ``concept_names`` (n_fine,). For search-by-image queries and PR-AUC of retrieved logits.
``eval/probe_contents_{scenes,objects,shifted}.npz``
    ``contents`` int64 (n_probes, k): the fine concepts shown in each probe, -1 padded.
``work/``
    Build state: further CLIPs (``clips/``), foundation weights and reports (``foundations/``),
    the hub plan, per-model records, timings. Not needed to use the world.
``BUILD_COMPLETE``
    Written last; a build finding it (same version, scale and seed) returns at once.

Modules: :mod:`~probelog_world.concepts` (the concept hierarchy), :mod:`~probelog_world.render`
(the image generator), :mod:`~probelog_world.captions`, :mod:`~probelog_world.clip`,
:mod:`~probelog_world.models` (hub architectures), :mod:`~probelog_world.hub` (foundations,
planning and training), :mod:`~probelog_world.export` (ONNX and Triton),
:mod:`~probelog_world.evaluate` (ProbeLog on the world's own hub), :mod:`~probelog_world.build`,
:mod:`~probelog_world.cli`. Only ``concepts``, ``render`` and ``captions`` import without torch.
"""
