"""The model explorer's pages: search by text or example images, hits with their evidence, a page
per model with what each logit responds to, and the index's status.

Server-side templates (Jinja2, every value escaped) and no script at all: the
Content-Security-Policy allows images, styles and forms from this origin only. The API key a
person enters is kept in an HttpOnly, SameSite=Strict cookie and sent on with each gRPC call;
the page has no authority of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import grpc
import jinja2
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from probelog.common.edge import status_code
from probelog.common.errors import ProbeLogError
from probelog.web.config import WebSettings
from probelog.web.gateway import SearchGateway

logger = logging.getLogger(__name__)

#: The cookie that keeps a person's API key between pages.
KEY_COOKIE = "probelog_key"
#: Example images one upload may carry, and the largest image accepted (bytes).
MAX_UPLOAD_IMAGES = 8
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
#: Sent with every response: nothing runs, everything comes from this origin.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
#: HTTP statuses for the gRPC codes a page may meet.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def security_headers(app: Asgi) -> Asgi:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""
    extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


class Pages:
    """The request handlers, over one :class:`SearchGateway`."""

    def __init__(self, gateway: SearchGateway, settings: WebSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("probelog.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def render(self, request: Request, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        page = self.templates.get_template(name).render(
            has_key=bool(request.cookies.get(KEY_COOKIE)), thumbnail_px=self.settings.web_thumbnail_px, **values
        )
        return HTMLResponse(page, status_code=status_code)

    def failed(self, request: Request, exc: ProbeLogError, **values: Any) -> HTMLResponse:
        """The page for a failed call: the service's message, and the key form when the key is
        missing or not good enough."""
        code = status_code(exc)
        return self.render(
            request,
            "error.html",
            status_code=HTTP_STATUS.get(code, 502),
            code=code.name,
            message=str(exc),
            needs_key=code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED),
            **values,
        )

    @staticmethod
    def key(request: Request) -> str:
        return request.cookies.get(KEY_COOKIE, "")

    async def search(self, request: Request) -> Response:
        text = request.query_params.get("q", "")
        if not text.strip():
            return self.render(request, "search.html", query=text, result=None)
        try:
            result = await self.gateway.search(
                self.key(request), text=text, top_k=self.settings.web_top_k,
                evidence_probes=self.settings.web_evidence_probes,
            )
        except ProbeLogError as exc:
            return self.failed(request, exc, query=text)
        return self.render(request, "search.html", query=text, result=result)

    async def search_images(self, request: Request) -> Response:
        async with request.form(
            max_files=MAX_UPLOAD_IMAGES, max_fields=MAX_UPLOAD_IMAGES, max_part_size=MAX_UPLOAD_BYTES
        ) as form:
            uploads = [f for f in form.getlist("images") if isinstance(f, UploadFile) and f.filename]
            images = [await f.read() for f in uploads]
        label = ", ".join(f.filename or "" for f in uploads)
        if not images:
            return self.render(
                request, "search.html", status_code=400, query="", result=None,
                notice="Choose one or more example images to search by.",
            )
        try:
            result = await self.gateway.search(
                self.key(request), images=images, top_k=self.settings.web_top_k,
                evidence_probes=self.settings.web_evidence_probes,
            )
        except ProbeLogError as exc:
            return self.failed(request, exc, query="")
        return self.render(request, "search.html", query="", images_label=label, result=result)

    async def models(self, request: Request) -> Response:
        key = self.key(request)
        try:
            probe_sets = await self.gateway.probe_sets(key)
            models = await self.gateway.models(key)
        except ProbeLogError as exc:
            return self.failed(request, exc)
        return self.render(
            request, "models.html", probe_sets=probe_sets, models=models,
            n_logits=sum(m.n_logits for m in models),
        )

    async def model(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        try:
            response = await self.gateway.model(self.key(request), model_id, self.settings.web_evidence_probes)
        except ProbeLogError as exc:
            return self.failed(request, exc)
        return self.render(request, "model.html", model=response.model, logits=response.logits)

    async def probe_image(self, request: Request) -> Response:
        try:
            image = await self.gateway.probe_image(
                self.key(request), request.path_params["probe_set_id"], request.path_params["index"],
                self.settings.web_thumbnail_px,
            )
        except ProbeLogError as exc:
            return Response(str(exc), status_code=HTTP_STATUS.get(status_code(exc), 502), media_type="text/plain")
        # A probe set's images never change: its id is the hash of its bytes.
        headers = {"cache-control": "private, max-age=86400, immutable"}
        return Response(image.data, media_type=image.media_type, headers=headers)

    async def key_form(self, request: Request) -> Response:
        return self.render(request, "key.html", saved=request.query_params.get("saved") == "1")

    async def save_key(self, request: Request) -> Response:
        async with request.form(max_files=0, max_fields=2) as form:
            value = form.get("key")
        key = value.strip() if isinstance(value, str) else ""
        response = RedirectResponse("/key?saved=1" if key else "/key", status_code=303)
        if key:
            response.set_cookie(
                KEY_COOKIE, key, httponly=True, samesite="strict", secure=self.settings.web_cookie_secure, path="/"
            )
        else:
            response.delete_cookie(KEY_COOKIE, path="/")
        return response


async def healthz(request: Request) -> Response:
    """Liveness: the page's own process answers (SearchService has its own probes)."""
    return PlainTextResponse("ok")


def create_app(gateway: SearchGateway, settings: WebSettings) -> Asgi:
    """The explorer as an ASGI app (static files served from the package)."""
    pages = Pages(gateway, settings)

    async def key_page(request: Request) -> Response:
        if request.method == "POST":
            return await pages.save_key(request)
        return await pages.key_form(request)

    app = Starlette(
        routes=[
            Route("/", pages.search),
            Route("/search", pages.search_images, methods=["POST"]),
            Route("/models", pages.models),
            Route("/models/{model_id:path}", pages.model),
            Route("/probes/{probe_set_id}/{index:int}.png", pages.probe_image),
            Route("/key", key_page, methods=["GET", "POST"]),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(packages=[("probelog.web", "static")]), name="static"),
        ],
    )
    return security_headers(app)
