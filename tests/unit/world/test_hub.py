from __future__ import annotations

import numpy as np
import pytest
import torch

from probelog_world.concepts import ConceptSet
from probelog_world.hub import HubPlan, ObjectPool, plan_hub, train_hub_model
from probelog_world.models import ARCHITECTURES, FAMILIES


@pytest.fixture(scope="module")
def concepts() -> ConceptSet:
    return ConceptSet()


def test_plan_is_seeded_and_covers_families(concepts: ConceptSet) -> None:
    plan = HubPlan(n_models=40, architectures=tuple(sorted(ARCHITECTURES)))
    specs = plan_hub(concepts, plan, seed=0)
    assert specs == plan_hub(concepts, plan, seed=0)
    assert specs != plan_hub(concepts, plan, seed=1)
    assert [s.name for s in specs] == [f"hub-{i:04d}" for i in range(40)]
    assert {ARCHITECTURES[s.architecture].family for s in specs} == set(FAMILIES)
    assert sum(s.init == "scratch" for s in specs) == 4
    for s in specs:
        assert len(set(s.concepts)) == len(s.concepts)
        assert plan.min_classes <= len(s.concepts) <= plan.max_classes or s.kind == "shape"
        assert all(concepts[c].kind == s.kind for c in s.concepts)
        assert s.init in ("scratch", f"foundation:{s.architecture}")


def test_label_order_is_shuffled(concepts: ConceptSet) -> None:
    specs = plan_hub(concepts, HubPlan(n_models=20, architectures=("mlp-s",)), seed=0)
    fine = [s for s in specs if s.kind == "fine"]
    orders = [[concepts[c].index for c in s.concepts] for s in fine]
    assert any(o != sorted(o) for o in orders)


def test_pool_sampling_stays_within_members(concepts: ConceptSet) -> None:
    pool = ObjectPool(np.zeros((len(concepts.fine) * 3, 4, 4, 3), np.uint8), 3)
    members = concepts.members("red circle")
    rows = pool.sample(np.random.default_rng(0), members, 12)
    assert set(pool.labels[rows]) <= set(members.tolist())
    assert len(set(rows.tolist())) == 12


def test_train_hub_model_records_ground_truth(concepts: ConceptSet) -> None:
    from probelog_world.hub import ModelSpec

    torch.manual_seed(0)
    names = ("plain red circle", "plain blue square", "plain green star")
    spec = ModelSpec("hub-0000", "mlp-s", "scratch", "fine", names, 3, 16, 3e-3, 1)
    ids = np.concatenate([concepts.members(n) for n in names])
    images = np.zeros((len(concepts.fine) * 16, 48, 48, 3), np.uint8)
    from probelog_world.render import render_objects

    rng = np.random.default_rng(0)
    for i in ids:
        images[i * 16 : (i + 1) * 16] = render_objects(rng, concepts.fine_attributes[[i] * 16])
    pool = ObjectPool(images, 16)
    model, record = train_hub_model(spec, concepts, pool, pool, {}, 48, test_per_class=8)
    assert record["concepts"] == list(names)
    assert record["init"] == "scratch" and record["family"] == "mlp"
    assert len(record["logit_accuracy"]) == 3
    assert record["test_accuracy"] > 0.6  # three plain, differently coloured shapes
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 48, 48)).shape == (2, 3)
