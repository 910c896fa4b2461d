"""Bounds on the free-form request fields, checked before any work is done.

Each bound is a setting of the service that owns the field (its default is written here, once):
the orchestrator bounds what IndexModel stores with a model (labels, metadata, logits), the
encoder bounds prompt templates and query images, the store bounds probe-set uploads. A value
beyond a bound is INVALID_ARGUMENT naming the field; nothing has been probed, encoded or stored.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from probelog.common.errors import InvalidArgument

#: Characters of one logit label (a class name).
DEFAULT_MAX_LABEL_CHARS = 256
#: Logits of one model: labels and descriptors are stored per logit.
DEFAULT_MAX_LOGITS_PER_MODEL = 25_000
#: Metadata entries of one model, and characters of each key and value.
DEFAULT_MAX_METADATA_ENTRIES = 64
DEFAULT_MAX_METADATA_KEY_CHARS = 128
DEFAULT_MAX_METADATA_VALUE_CHARS = 1024
#: Prompt templates of one request, and characters of each.
DEFAULT_MAX_PROMPT_TEMPLATES = 16
DEFAULT_MAX_TEMPLATE_CHARS = 256
#: Pixels (width x height) of one decoded query image: 4096 x 4096.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
#: Pixel bytes of one streamed probe set: 4,000 probes of 224 x 224 RGB are 602 MB.
DEFAULT_MAX_PROBE_SET_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class ModelLimits:
    """What IndexModel accepts with a model (the orchestrator's settings)."""

    max_label_chars: int = DEFAULT_MAX_LABEL_CHARS
    max_logits_per_model: int = DEFAULT_MAX_LOGITS_PER_MODEL
    max_metadata_entries: int = DEFAULT_MAX_METADATA_ENTRIES
    max_metadata_key_chars: int = DEFAULT_MAX_METADATA_KEY_CHARS
    max_metadata_value_chars: int = DEFAULT_MAX_METADATA_VALUE_CHARS

    def check_labels(self, labels: Sequence[str], *, field: str = "labels") -> tuple[str, ...]:
        """``labels`` if there are at most ``max_logits_per_model`` of at most
        ``max_label_chars`` each (their count against the model's logits is checked once the
        model has been probed)."""
        if len(labels) > self.max_logits_per_model:
            raise InvalidArgument(
                f"{len(labels)} labels exceed the limit of {self.max_logits_per_model} logits per model", field=field
            )
        for i, label in enumerate(labels):
            if len(label) > self.max_label_chars:
                raise InvalidArgument(
                    f"label {i} is longer than {self.max_label_chars} characters", field=f"{field}[{i}]"
                )
        return tuple(labels)

    def check_metadata(self, metadata: Mapping[str, str], *, field: str = "metadata") -> dict[str, str]:
        if len(metadata) > self.max_metadata_entries:
            raise InvalidArgument(
                f"{len(metadata)} metadata entries exceed the limit of {self.max_metadata_entries}", field=field
            )
        for key, value in metadata.items():
            if not key or len(key) > self.max_metadata_key_chars:
                raise InvalidArgument(
                    f"metadata keys must have 1 to {self.max_metadata_key_chars} characters", field=field
                )
            if len(value) > self.max_metadata_value_chars:
                raise InvalidArgument(
                    f"metadata value of {key[:32]!r} is longer than {self.max_metadata_value_chars} characters",
                    field=f"{field}[{key[:32]}]",
                )
        return dict(metadata)

    def check_logits(self, n_logits: int, model_name: str) -> None:
        if n_logits > self.max_logits_per_model:
            raise InvalidArgument(
                f"model {model_name!r} has {n_logits} logits, more than the limit of {self.max_logits_per_model}",
                field="model_name",
            )


def check_template(template: str, *, max_chars: int = DEFAULT_MAX_TEMPLATE_CHARS, field: str = "prompt_templates") -> str:
    """``template`` if it has exactly one replacement field, the bare positional ``{}``.

    Parsed with :class:`string.Formatter`, as ``str.format`` reads it: ``{0}``, ``{name}``,
    ``{.attr}``, conversions and format specs are refused, so formatting can only insert the
    concept text.
    """
    if len(template) > max_chars:
        raise InvalidArgument(f"a prompt template is longer than {max_chars} characters", field=field)
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise InvalidArgument(f"prompt template {template!r} is not a format string: {exc}", field=field) from None
    if fields != [("", "", None)]:
        raise InvalidArgument(f"prompt template {template!r} must contain exactly one '{{}}' and no other field", field=field)
    return template


def check_templates(
    templates: Sequence[str],
    *,
    max_templates: int = DEFAULT_MAX_PROMPT_TEMPLATES,
    max_chars: int = DEFAULT_MAX_TEMPLATE_CHARS,
    field: str = "prompt_templates",
) -> tuple[str, ...]:
    """Each template checked by :func:`check_template`; at most ``max_templates`` of them."""
    if len(templates) > max_templates:
        raise InvalidArgument(f"{len(templates)} prompt templates exceed the limit of {max_templates}", field=field)
    return tuple(check_template(t, max_chars=max_chars, field=field) for t in templates)
