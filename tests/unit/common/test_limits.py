"""The bounds on free-form request fields (probelog.common.limits): each refused with
INVALID_ARGUMENT naming the field, before any work."""

from __future__ import annotations

import pytest

from probelog.common.errors import InvalidArgument
from probelog.common.limits import ModelLimits, check_template, check_templates
from probelog.descriptor_store.records import listing_page
from probelog.v1 import types_pb2


@pytest.mark.parametrize("template", ["a photo of a {}.", "{}", "{{literal}} and {}", "a {} with {{braces}}"])
def test_templates_with_one_bare_field_pass(template):
    assert check_template(template) == template


@pytest.mark.parametrize(
    "template",
    ["{0}{}", "{.__class__}{}", "{}{}", "no field", "{0}", "{name}", "{!r}", "{:>10}", "{", "}", "{}{0.__doc__}"],
)
def test_templates_other_than_one_bare_field_are_refused(template):
    with pytest.raises(InvalidArgument) as err:
        check_template(template)
    assert err.value.field == "prompt_templates"


def test_template_count_and_length():
    with pytest.raises(InvalidArgument, match="exceed the limit of 2"):
        check_templates(["{}"] * 3, max_templates=2)
    with pytest.raises(InvalidArgument, match="longer than 10"):
        check_templates(["a photo of {}"], max_chars=10)


def test_labels_and_metadata():
    limits = ModelLimits(max_label_chars=5, max_logits_per_model=3, max_metadata_entries=2,
                         max_metadata_key_chars=4, max_metadata_value_chars=6)
    assert limits.check_labels(["a", "bb"]) == ("a", "bb")
    with pytest.raises(InvalidArgument) as err:
        limits.check_labels(["ok", "toolong"])
    assert err.value.field == "labels[1]"
    with pytest.raises(InvalidArgument, match="exceed the limit of 3"):
        limits.check_labels(["a"] * 4)
    assert limits.check_metadata({"k": "v"}) == {"k": "v"}
    for bad in ({"a": "1", "b": "2", "c": "3"}, {"long-key": "v"}, {"": "v"}, {"k": "1234567"}):
        with pytest.raises(InvalidArgument):
            limits.check_metadata(bad)
    limits.check_logits(3, "m")
    with pytest.raises(InvalidArgument, match="4 logits"):
        limits.check_logits(4, "m")


def test_a_listing_page_ends_by_size(monkeypatch):
    from probelog.descriptor_store import records

    monkeypatch.setattr(records, "MAX_PAGE_BYTES", 1000)
    infos = [types_pb2.ModelInfo(model_id=f"m{i}", labels=["x" * 300]) for i in range(6)]
    ids = [i.model_id for i in infos]
    page, token = listing_page(ids, infos, more=False)
    assert [i.model_id for i in page] == ["m0", "m1", "m2"] and token == "m2"
    assert sum(i.ByteSize() for i in page) <= 1000
    # One model larger than the budget still makes a page of its own.
    big = [types_pb2.ModelInfo(model_id="big", labels=["x" * 5000]), infos[0]]
    page, token = listing_page(["big", "m0"], big, more=False)
    assert [i.model_id for i in page] == ["big"] and token == "big"
    # Deleted models (None) are skipped; the token still covers them.
    page, token = listing_page(["a", "b"], [infos[0], None], more=True)
    assert len(page) == 1 and token == "b"
