from __future__ import annotations

from dataclasses import dataclass, field

from probelog.clip_encoder.encoder import DEFAULT_PROMPT_TEMPLATES, DEFAULT_TEXT_CACHE_SIZE, QueryLimits
from probelog.common import limits
from probelog.common.settings import Settings

PORT = 50053


@dataclass(frozen=True)
class EncoderSettings(Settings):
    #: open_clip model name, e.g. "ViT-B-32", or a custom config's name.
    clip_model: str = ""
    #: open_clip pretrained tag (e.g. "laion2b_s34b_b79k") or checkpoint path; empty for an
    #: "hf-hub:" model; "none" builds random weights (tests only). Required otherwise.
    clip_pretrained: str = ""
    #: Optional model-config JSON registered with open_clip before loading.
    clip_config: str = ""
    #: Where CLIP runs: "auto" (CUDA when a GPU is visible), "cpu" or "cuda" (fp16 autocast).
    clip_device: str = "auto"
    #: Where downloaded CLIP weights are kept across restarts ("": open_clip's default, ~/.cache).
    clip_weights_dir: str = ""
    store_address: str = field(default="127.0.0.1:50054", metadata={"peer": True})
    #: Probe-set embeddings are cached here across restarts ("" disables the disk cache).
    cache_dir: str = "/tmp/probelog-cache"
    #: Templates, each with one "{}", separated by "|".
    prompt_templates: tuple[str, ...] = field(default=DEFAULT_PROMPT_TEMPLATES, metadata={"separator": "|"})
    #: torch intra-op threads (0: torch's default).
    torch_threads: int = 0
    #: Limits on a query's prompt templates (count, characters of each).
    max_prompt_templates: int = limits.DEFAULT_MAX_PROMPT_TEMPLATES
    max_template_chars: int = limits.DEFAULT_MAX_TEMPLATE_CHARS
    #: Largest query image, in pixels (width x height), read from its header before decoding.
    max_image_pixels: int = limits.DEFAULT_MAX_IMAGE_PIXELS
    #: Threads that decode query images, off the event loop.
    image_decode_workers: int = 2
    #: Descriptors of this many recent query texts are kept in memory (0: no cache).
    text_cache_size: int = DEFAULT_TEXT_CACHE_SIZE

    @property
    def query_limits(self) -> QueryLimits:
        return QueryLimits(
            max_prompt_templates=self.max_prompt_templates,
            max_template_chars=self.max_template_chars,
            max_image_pixels=self.max_image_pixels,
            image_decode_workers=self.image_decode_workers,
        )
