from __future__ import annotations

from dataclasses import dataclass, field

from probelog.clip_encoder.encoder import DEFAULT_PROMPT_TEMPLATES
from probelog.common.settings import Settings

PORT = 50053


@dataclass(frozen=True)
class EncoderSettings(Settings):
    #: open_clip model name, e.g. "ViT-B-32", or a custom config's name.
    clip_model: str = ""
    #: Checkpoint path (or an open_clip pretrained tag where weights can be downloaded).
    clip_pretrained: str = ""
    #: Optional model-config JSON registered with open_clip before loading.
    clip_config: str = ""
    store_address: str = field(default="127.0.0.1:50054", metadata={"peer": True})
    #: Probe-set embeddings are cached here across restarts ("" disables the disk cache).
    cache_dir: str = "/tmp/probelog-cache"
    #: Templates, each with one "{}", separated by "|".
    prompt_templates: tuple[str, ...] = field(default=DEFAULT_PROMPT_TEMPLATES, metadata={"separator": "|"})
    #: torch intra-op threads (0: torch's default).
    torch_threads: int = 0
