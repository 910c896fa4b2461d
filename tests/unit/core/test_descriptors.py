from __future__ import annotations

import numpy as np
import pytest

from probelog.core import image_set_descriptor, text_descriptors, validate_descriptors, zscore
from tests.unit.core import paper


def test_zscore_uses_population_std():
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    mu, sd = paper.mean_std(x[0])
    np.testing.assert_allclose(zscore(x)[0], (x[0] - mu) / sd, rtol=1e-6)
    np.testing.assert_allclose((zscore(x) ** 2).sum(), 4.0, rtol=1e-6)


def test_text_descriptor_matches_eq3():
    rng = np.random.default_rng(1)
    text = rng.normal(size=(2, 8))
    probes = rng.normal(size=(6, 8))
    got = text_descriptors(text, probes)
    want = [paper.phi_text(t, probes) for t in text]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_image_set_descriptor_matches_eq8():
    rng = np.random.default_rng(2)
    images = rng.normal(size=(5, 8))
    probes = rng.normal(size=(7, 8))
    np.testing.assert_allclose(
        image_set_descriptor(images, probes), paper.phi_query(images, probes), rtol=1e-5, atol=1e-6
    )


def test_single_image_query_is_its_cosine_similarity():
    rng = np.random.default_rng(4)
    image = rng.normal(size=(1, 8))
    probes = rng.normal(size=(7, 8))
    np.testing.assert_allclose(
        image_set_descriptor(image, probes), text_descriptors(image, probes)[0], rtol=1e-5
    )


def test_embedding_dimension_mismatch():
    with pytest.raises(ValueError, match="dimensions differ"):
        text_descriptors(np.ones((1, 4)), np.ones((3, 5)))


def test_zero_embedding_is_rejected():
    with pytest.raises(ValueError, match="non-zero norms"):
        text_descriptors(np.zeros((1, 4)), np.ones((3, 4)))


def test_validate_lists_at_most_ten_rows():
    x = np.ones((15, 5))
    with pytest.raises(ValueError, match=r"rows 0, 1, .*9 and 5 more are constant"):
        validate_descriptors(x, what="logit")


def test_single_probe_is_rejected():
    with pytest.raises(ValueError, match="at least 2 probes"):
        zscore(np.ones((2, 1)))
