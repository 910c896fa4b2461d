from __future__ import annotations

from dataclasses import dataclass, field

from probelog.common.settings import Settings

PORT = 8080


@dataclass(frozen=True)
class WebSettings(Settings):
    """The web role: plain HTTP to browsers, gRPC to SearchService like any other client."""

    #: SearchService (the orchestrator, or an embedded server) to call.
    search_address: str = field(default="127.0.0.1:50051", metadata={"peer": True})
    #: Deadline of each call the page makes (seconds).
    web_timeout_s: float = 30.0
    #: Hits shown per search.
    web_top_k: int = 10
    #: Evidence thumbnails per hit, and top probes per logit on a model page.
    web_evidence_probes: int = 8
    #: Thumbnail size (the longer side, pixels).
    web_thumbnail_px: int = 64
    #: Send the API-key cookie only over HTTPS (set behind a TLS Ingress).
    web_cookie_secure: bool = False
