"""The background set: its names, k, and the one production path of Eq. 6."""

from __future__ import annotations

import numpy as np
import open_clip.zero_shot_metadata
import pytest

from probelog.common.background import (
    Background,
    background_from_array,
    calibration_offsets,
    load_names,
    resolve_k,
)
from probelog.common.errors import FailedPrecondition, InvalidArgument
from probelog.core import distance
from probelog.core.descriptors import zscore


def test_imagenet1k_ships_with_the_package_as_open_clip_has_it():
    assert load_names("imagenet1k") == list(open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES)


def test_a_names_file_skips_blank_and_comment_lines(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("# mine\nred circle\n\n blue square \n")
    assert load_names(str(path)) == ["red circle", "blue square"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(FailedPrecondition, match="no names"):
        load_names(str(tmp_path / "empty.txt"))
    with pytest.raises(FailedPrecondition, match="does not exist"):
        load_names(str(tmp_path / "missing.txt"))


@pytest.mark.parametrize(("k", "n", "want"), [(None, 500, distance.DEFAULT_CALIBRATION_K), (0, 7, 7), (3, 30, 3)])
def test_resolve_k(k, n, want):
    assert resolve_k(k, n) == want


def test_resolve_k_rejects_what_the_background_cannot_give():
    with pytest.raises(InvalidArgument, match="must be in"):
        resolve_k(31, 30)
    with pytest.raises(InvalidArgument, match="empty"):
        resolve_k(None, 0)


def test_offsets_agree_with_the_reference_eq6():
    rng = np.random.default_rng(0)
    entries = distance.logit_entries(rng.normal(size=(40, 120)), r=10)
    raw = rng.normal(size=(25, 120))
    background = background_from_array("ps-0123456789abcdef", raw, 120)
    assert isinstance(background, Background) and background.size == 25
    want = distance.calibration_offsets(entries, zscore(raw), 5)
    np.testing.assert_allclose(calibration_offsets(entries, background, 5), want, rtol=2e-6, atol=2e-6)


def test_background_from_array_checks_its_shape():
    with pytest.raises(InvalidArgument, match="shape"):
        background_from_array("ps-0123456789abcdef", np.zeros((3, 7)), 8)
