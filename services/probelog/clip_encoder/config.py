from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_settings import NoDecode

from probelog.clip_encoder.encoder import DEFAULT_PROMPT_TEMPLATES, DEFAULT_TEXT_CACHE_SIZE, QueryLimits
from probelog.common import limits
from probelog.common.settings import Settings, Split, peer

PORT = 50053
#: Prompt templates may hold commas: they are separated by "|".
PromptTemplates = Annotated[tuple[str, ...], NoDecode, Split("|"), BeforeValidator(Split("|"))]


class EncoderSettings(Settings):
    clip_model: str = Field("", description="open_clip model name, e.g. \"ViT-B-32\", or a custom config's name.")
    clip_pretrained: str = Field(
        "",
        description="open_clip pretrained tag (e.g. \"laion2b_s34b_b79k\") or checkpoint path; empty for an "
        "\"hf-hub:\" model; \"none\" builds random weights (tests only). Required otherwise.",
    )
    clip_config: str = Field("", description="Optional model-config JSON registered with open_clip before loading.")
    clip_device: str = Field(
        "auto", description="Where CLIP runs: \"auto\" (CUDA when a GPU is visible), \"cpu\" or \"cuda\" (fp16 autocast)."
    )
    clip_weights_dir: str = Field(
        "", description="Where downloaded CLIP weights are kept across restarts (\"\": open_clip's default, ~/.cache)."
    )
    store_address: str = peer("127.0.0.1:50054", "The descriptor store service (host:port).")
    cache_dir: str = Field(
        "/tmp/probelog-cache",
        description="Probe-set embeddings are cached here across restarts (\"\" disables the disk cache).",
    )
    prompt_templates: PromptTemplates = Field(
        DEFAULT_PROMPT_TEMPLATES, description="Prompt templates, each with one \"{}\"."
    )
    torch_threads: int = Field(0, description="torch intra-op threads (0: torch's default).")
    max_prompt_templates: int = Field(
        limits.DEFAULT_MAX_PROMPT_TEMPLATES, description="Most prompt templates a query may bring."
    )
    max_template_chars: int = Field(
        limits.DEFAULT_MAX_TEMPLATE_CHARS, description="Most characters in each of a query's prompt templates."
    )
    max_image_pixels: int = Field(
        limits.DEFAULT_MAX_IMAGE_PIXELS,
        description="Largest query image, in pixels (width x height), read from its header before decoding.",
    )
    image_decode_workers: int = Field(2, description="Threads that decode query images, off the event loop.")
    text_cache_size: int = Field(
        DEFAULT_TEXT_CACHE_SIZE,
        description="Descriptors of this many recent query texts are kept in memory (0: no cache).",
    )

    @property
    def query_limits(self) -> QueryLimits:
        return QueryLimits(
            max_prompt_templates=self.max_prompt_templates,
            max_template_chars=self.max_template_chars,
            max_image_pixels=self.max_image_pixels,
            image_decode_workers=self.image_decode_workers,
        )
