from __future__ import annotations

from pydantic import Field

from probelog.common.settings import Settings, peer

PORT = 8080


class WebSettings(Settings):
    """The web role: plain HTTP to browsers, gRPC to SearchService like any other client."""

    search_address: str = peer("127.0.0.1:50051", "SearchService (the orchestrator, or an embedded server) to call.")
    web_timeout_s: float = Field(30.0, description="Deadline of each call the page makes (seconds).")
    web_top_k: int = Field(10, description="Hits shown per search.")
    web_evidence_probes: int = Field(8, description="Evidence thumbnails per hit, and top probes per logit on a model page.")
    web_thumbnail_px: int = Field(64, description="Thumbnail size (the longer side, pixels).")
    web_cookie_secure: bool = Field(False, description="Send the API-key cookie only over HTTPS (set behind a TLS Ingress).")
