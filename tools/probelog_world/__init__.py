"""The miniature world: a trained stand-in for ImageNet, COCO, CLIP and a model hub.

No pretrained CLIP, real image dataset or public classifier can be fetched where this project is
built, so it trains its own world, as the ProbeLog paper built INet-Hub (App. E): a procedural
image generator with hundreds of fine-grained concepts, a small CLIP trained on it with open_clip's
own model classes, probe sets, and a hub of classifiers trained on random concept subsets, with
ground truth kept apart for evaluation. Build one with::

    python -m probelog_world build --scale tiny --seed 0 --out DIR     # or: probelog world build

or from Python with :func:`probelog_world.build.build_world`; :func:`~probelog_world.build.cached_world`
returns the default tiny world, building it on first use.

Layout of a built world ``DIR``
-------------------------------
``world.json``
    Scale, seed, version, ``image_size``, ``clip_model_name``, probe-set ids and sizes, the
    CLIP's zero-shot top-1 (fine, coarse), a hub summary, timings, the scale's parameters.
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
    each coarse kind (``coarse_top1_by_kind``, mean ``coarse_top1``), ``scene_auc``, the loss
    curve, steps and time.
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
    logit order], "architecture", "family", "init": "foundation:<arch>"|"scratch", "kind",
    "test_accuracy", "logit_accuracy": [per logit], "epochs", "n_train_images", ...}}}``.
``eval/objects.npz``
    Held-out single-object test images (never trained on), ``eval_per_concept`` per fine
    concept: ``images`` uint8 (n, H, W, 3), ``labels`` int64 (n,) fine concept index,
    ``concept_names`` (n_fine,). For search-by-image queries and PR-AUC of retrieved logits.
``eval/probe_contents_{scenes,objects,shifted}.npz``
    ``contents`` int64 (n_probes, k): the fine concepts shown in each probe, -1 padded.
``work/``
    Build state: foundation weights, the hub plan, per-model records, timings. Not needed to use
    the world.
``BUILD_COMPLETE``
    Written last; a build finding it (same version, scale and seed) returns at once.

Modules: :mod:`~probelog_world.concepts` (the concept hierarchy), :mod:`~probelog_world.render`
(the image generator), :mod:`~probelog_world.captions`, :mod:`~probelog_world.clip`,
:mod:`~probelog_world.models` (hub architectures), :mod:`~probelog_world.hub` (planning and
training), :mod:`~probelog_world.export` (ONNX and Triton), :mod:`~probelog_world.build`,
:mod:`~probelog_world.cli`. Only ``concepts``, ``render`` and ``captions`` import without torch.
"""
