from __future__ import annotations

import numpy as np
import pytest
import torch

from probelog.core.metrics import average_precision
from probelog_world.concepts import ConceptSet
from probelog_world.hub import (
    EvalSet,
    FoundationTooWeakError,
    HubPlan,
    ModelSpec,
    ObjectPool,
    _augment,
    evaluate,
    fit,
    fit_linear_head,
    plan_hub,
    train_foundation,
    train_hub_model,
)
from probelog_world.models import ARCHITECTURES, param_groups
from probelog_world.render import render_objects

FOUNDATIONS = ("clip-rn", "clip-vit", "cnn-s", "resnet-s")
SCRATCH = ("mlp-s", "cnn-s", "resnet-s", "vit-s")


@pytest.fixture(scope="module")
def concepts() -> ConceptSet:
    return ConceptSet()


def bench_like(n: int) -> HubPlan:
    return HubPlan(
        n_models=n, foundations=FOUNDATIONS, foundation_weights=(4.0, 2.0, 1.5, 1.5), scratch_architectures=SCRATCH
    )


def test_plan_is_seeded_and_follows_app_e(concepts: ConceptSet) -> None:
    plan = bench_like(300)
    specs = plan_hub(concepts, plan, seed=0)
    assert specs == plan_hub(concepts, plan, seed=0)
    assert specs != plan_hub(concepts, plan, seed=1)
    assert [s.name for s in specs] == [f"hub-{i:04d}" for i in range(300)]
    # 10% from scratch, cycling through the scratch architectures; 90% from foundations.
    scratch = [s for s in specs if s.init == "scratch"]
    assert len(scratch) == 30 and all(s.method == "scratch" for s in scratch)
    assert {s.architecture for s in scratch} == set(SCRATCH)
    found = [s for s in specs if s.init != "scratch"]
    assert {s.init for s in found} == {f"foundation:{f}" for f in FOUNDATIONS}
    assert all(s.init == f"foundation:{s.architecture}" for s in found)
    # The CLIP towers carry most of them, as the paper's hub.
    assert sum(s.architecture.startswith("clip") for s in found) > len(found) / 2
    assert sum(s.method == "linear" for s in found) == round(0.4 * len(found))
    # 15-200 classes (fewer only where a coarse kind has fewer concepts), mean near the paper's 57.
    fine = [len(s.concepts) for s in specs if s.kind == "fine"]
    assert min(fine) >= 15 and max(fine) <= 200
    assert 50 <= np.mean([len(s.concepts) for s in specs]) <= 64
    for s in specs:
        assert len(set(s.concepts)) == len(s.concepts)
        assert all(concepts[c].kind == s.kind for c in s.concepts)
        assert 2 <= s.epochs <= 5
    assert sum(s.kind != "fine" for s in specs) == 30


def test_label_order_is_shuffled(concepts: ConceptSet) -> None:
    specs = plan_hub(concepts, bench_like(20), seed=0)
    fine = [s for s in specs if s.kind == "fine"]
    orders = [[concepts[c].index for c in s.concepts] for s in fine]
    assert any(o != sorted(o) for o in orders)


def test_pool_sampling_stays_within_members(concepts: ConceptSet) -> None:
    pool = ObjectPool(np.zeros((len(concepts.fine) * 3, 4, 4, 3), np.uint8), 3)
    members = concepts.members("red circle")
    rows = pool.sample(np.random.default_rng(0), members, 12)
    assert set(pool.labels[rows]) <= set(members.tolist())
    assert len(set(rows.tolist())) == 12


def test_augment_shifts_without_wrapping_around() -> None:
    # A bright bottom row must never appear at the top, whatever the shift.
    x = torch.zeros(8, 3, 12, 12)
    x[:, :, -1, :] = 1.0
    for seed in range(20):
        out = _augment(x, torch.Generator().manual_seed(seed))
        assert out.shape == x.shape
        assert float(out[:, :, 0, :].max()) == 0.0


def test_weight_decay_spares_norms_and_biases() -> None:
    model = ARCHITECTURES["resnet-s"].build(48, 5)
    spared, decayed = param_groups(model, 0.05)
    assert spared["weight_decay"] == 0.0 and decayed["weight_decay"] == 0.05
    names = {id(p): n for n, p in model.named_parameters()}
    spared_names = {names[id(p)] for p in spared["params"]}
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert "head.bias" in spared_names and "head.weight" not in spared_names
    assert any(".1.weight" in n for n in spared_names)  # BatchNorm gains


def test_linear_head_fits_separable_features() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)).astype(np.float32) * 3
    labels = np.repeat(np.arange(4), 30)
    feats = centres[labels] + rng.normal(size=(120, 16)).astype(np.float32)
    head = torch.nn.Linear(16, 4)
    fit_linear_head(head, feats, labels)
    with torch.no_grad():
        pred = head(torch.from_numpy(feats)).argmax(1).numpy()
    assert np.mean(pred == labels) > 0.95


def test_evaluate_against_direct_transcription() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(6), 5)  # fine concepts 0..5, five images each
    eval_set = EvalSet(np.zeros((30, 2, 2, 3), np.uint8), labels)
    members = [np.array([1]), np.array([3, 4])]  # a fine class and a coarse one
    logits = rng.normal(size=(30, 2)).astype(np.float32)
    out = evaluate(logits, eval_set, members)
    own = np.isin(labels, [1, 3, 4])
    truth = np.where(labels == 1, 0, 1)[own]
    assert out["test_accuracy"] == pytest.approx(np.mean(logits[own].argmax(1) == truth))
    assert out["n_test_images"] == 15
    for c, m in enumerate(members):
        assert out["logit_pr_auc"][c] == pytest.approx(average_precision(logits[:, c], np.isin(labels, m)))
        assert out["logit_accuracy"][c] == pytest.approx(np.mean(logits[own].argmax(1)[truth == c] == c))


def test_foundation_below_its_floor_is_refused(concepts: ConceptSet, tmp_path) -> None:
    pool = ObjectPool.generate(concepts, 1, 0, "t", 48)
    path = tmp_path / "cnn-s.pt"
    with pytest.raises(FoundationTooWeakError, match=r"below the floor of 90%"):
        train_foundation("mlp-s", pool, pool, 1, 0.9, 0, 48, path, progress=False)
    assert not path.exists()


def test_train_hub_model_records_ground_truth(concepts: ConceptSet) -> None:
    torch.manual_seed(0)
    names = ("plain red circle", "plain blue square", "plain green star")
    spec = ModelSpec("hub-0000", "mlp-s", "scratch", "scratch", "fine", names, 3, 16, 3e-3, 1)
    ids = np.concatenate([concepts.members(n) for n in names])
    images = np.zeros((len(concepts.fine) * 16, 48, 48, 3), np.uint8)
    rng = np.random.default_rng(0)
    for i in ids:
        images[i * 16 : (i + 1) * 16] = render_objects(rng, concepts.fine_attributes[[i] * 16])
    pool = ObjectPool(images, 16)
    eval_set = EvalSet(pool.images, pool.labels)
    model, record = train_hub_model(spec, concepts, pool, eval_set, None, 48)
    assert record["concepts"] == list(names)
    assert record["init"] == "scratch" and record["family"] == "mlp" and record["method"] == "scratch"
    assert len(record["logit_accuracy"]) == 3 and len(record["logit_pr_auc"]) == 3
    assert record["test_accuracy"] > 0.6  # three plain, differently coloured shapes
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 48, 48)).shape == (2, 3)


def test_fit_skips_a_last_batch_of_one_image(concepts: ConceptSet) -> None:
    # 65 images at batch size 64 leave one image: batch norm cannot train on it.
    pool = ObjectPool.generate(concepts, 1, 0, "t", 48)
    model = ARCHITECTURES["cnn-s"].build(48, 2)
    losses = fit(model, pool.images[:65], np.arange(65) % 2, 1, 1e-3, 0, batch_size=64)
    assert len(losses) == 1 and np.isfinite(losses[0])
