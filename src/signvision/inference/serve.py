"""`signvision serve --run RUN`: a web page to try a trained model (upload or webcam) and a JSON API.

    GET  /              the page: drop or choose images, or take a webcam snapshot; top classes as bars
    POST /predict       multipart images (field `images`, one or several) -> calibrated probabilities in
                        the run's class order: the numbers `signvision predict` writes for those images
    GET  /health        {"status": "ok"}
    GET  /info          classes, model, image size, validation figures
    GET  /report        the run's report.html
    GET  /openapi.json  the API described by FastAPI (OpenAPI 3)
    (HEAD too, on every GET route)

Requests that arrive together share a forward pass (batcher.py). Safe defaults, each of them tested:

    the address     binds 127.0.0.1; then only Host names of this machine are answered (a page elsewhere cannot
                    reach the server through DNS rebinding); `allowed_hosts` adds others
    the body        over `max_upload_mb` is refused as it arrives (413), with or without a Content-Length;
                    at most `max_images` files; uploads read and decoded at once are bounded (memory)
    the files       an image only if it decodes; over 40 megapixels (JPEG) or 16 (other formats) refused
                    before decoding; a format whose size cannot be read first is refused
    the answers     every error is JSON {"error": ...} with a 4xx status, even for a request the HTTP layer
                    cannot parse; every response says nosniff, the page has a content security policy and
                    cannot be framed; the server keeps serving
"""

import asyncio
import json
import time
from pathlib import Path

import numpy as np

from signvision.config import SERVE_MAX_IMAGES, SERVE_MAX_UPLOAD_MB
from signvision.data.threads import cpu_threads
from signvision.errors import MissingError, OptionError
from signvision.inference.batcher import Batcher, RequestError, read_upload
from signvision.inference.members import input_size, load_members
from signvision.inference.predict import probability_columns, probability_table
from signvision.logs import get_logger
from signvision.models.augment import TTA
from signvision.training.folder import check_run_folder
from signvision.training.runtime import pick_device

logger = get_logger(__name__)

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
        b"style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; connect-src 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


def served_hosts(host: str) -> set[str] | None:
    """The Host names a server bound to `host` answers: the loopback names when it listens on this machine
    only (a page elsewhere cannot reach it through DNS rebinding), any when bound to all interfaces or
    another address (then `allowed_hosts` narrows it)."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return set(LOOPBACK_NAMES) if loopback else None


def host_name(header: str) -> str:
    """The name in a Host header, without its port, in lower case (host names are: '[::1]:8000' -> '::1')."""
    header = header.lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


async def json_reply(send, status: int, message: str) -> None:
    """A whole JSON error response, sent from below the application."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware in front of the application: refuses a Host the server does not answer and a POST from
    another site's page (its Origin), refuses a
    body over `max_bytes` as it arrives (with or without a Content-Length, which must be a number) instead of
    after reading it whole, and adds the security headers (nosniff, a content security policy, no framing) to
    every response."""

    def __init__(self, app, *, max_bytes: int, hosts: set[str] | None):
        self.app, self.max_bytes, self.hosts = app, max_bytes, hosts

    def same_origin(self, origin: str, host: str) -> bool:
        """Whether a browser's Origin is this server's own page (or an allowed host's): a page of another site
        must not make the visitor's browser post to this server (simple cross-origin POSTs need no preflight)."""
        from urllib.parse import urlsplit

        name = host_name(urlsplit(origin).netloc)
        return urlsplit(origin).netloc.lower() == host.lower() or (
            self.hosts is not None and name in self.hosts - LOOPBACK_NAMES
        )

    @property
    def state(self):
        """The application's state (its batcher)."""
        return self.app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if sum(name == b"host" for name, _ in scope["headers"]) > 1:
            return await json_reply(send, 400, "two Host headers: one request names one host")
        host = headers.get(b"host", b"").decode("latin-1")
        if self.hosts is not None and host_name(host) not in self.hosts:
            allowed = ", ".join(sorted(self.hosts))
            return await json_reply(send, 400, f"Host {host!r} is not served here (this server answers {allowed})")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin and scope["method"] not in ("GET", "HEAD") and not self.same_origin(origin, host):
            return await json_reply(send, 403, f"a request from the page of {origin!r} is refused (another site)")
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await json_reply(send, 400, f"Content-Length {declared.decode('latin-1')!r} is not a number")
            if int(declared) > self.max_bytes:
                limit = self.max_bytes / 1e6
                return await json_reply(
                    send, 413, f"the request is {int(declared) / 1e6:.1f} MB; the limit is {limit:.0f} MB"
                )
        received = 0

        async def capped_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestError(413, f"the request is over the limit of {self.max_bytes / 1e6:.0f} MB")
            return message

        async def secure_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, capped_receive, secure_send)


MAX_HEAD_BYTES = 64 * 1024  # a request's line and headers at most: a header longer than this is an attack
HEAD_SECONDS = 10.0  # ... and the time they may take to arrive (a connection that never finishes them is closed)


def json_error_protocol():
    """uvicorn's HTTP protocol, with its answer to a malformed request (a bad Content-Length, a broken header)
    in JSON like every other error, not plain text; and with the request head bounded: over MAX_HEAD_BYTES is
    refused (431) as it arrives, and a head not complete within HEAD_SECONDS closes the connection (slowloris)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # without httptools: uvicorn's h11 has its own bound on an incomplete head
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class JsonErrorProtocol(Base):
        def send_400_response(self, msg: str) -> None:
            self._refuse(400, "Bad Request", f"not a readable HTTP request ({msg.rstrip('.')})")

        def _refuse(self, status: int, reason: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            head = (
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\n"
            )
            self.transport.write(head.encode() + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
            self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

        def _head_too_slow(self) -> None:
            if self._head_bytes is not None and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)  # parses: a head that completes here stops the count (on_headers_complete)
            if self._head_bytes is not None and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refuse(431, "Request Header Fields Too Large", "the request's headers are too large")

        def on_headers_complete(self) -> None:
            self._head_bytes = None  # the body is bounded by the Guard
            self._head_timer.cancel()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._head_bytes = 0  # a kept-alive connection's next request starts its head
            self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

        def connection_lost(self, exc) -> None:
            self._head_timer.cancel()
            super().connection_lost(exc)

    return JsonErrorProtocol


def run_info(run: Path, members: list, tta: str, max_images: int, max_upload_mb: int) -> dict:
    """GET /info: the run's classes, model, image size and validation figures, and the server's limits."""
    first = members[0]
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    return {
        "run": run.name,
        "model": " + ".join(dict.fromkeys(m.cfg.model for m in members)),
        "image_size": input_size(members),
        "classes": probability_columns(first.task),
        "folds": len(members),
        "temperature": getattr(members, "temperature", None) or first.temperature,
        "tta": tta,
        "validation": {k: summary.get(k) for k in ("val_roc_auc", "val_log_loss", "val_accuracy", "val_ece")},
        "max_images": max_images,
        "max_upload_mb": max_upload_mb,
    }


def create_app(
    run: str | Path,
    *,
    tta: str = "none",
    device: str = "auto",
    max_images: int = SERVE_MAX_IMAGES,
    max_upload_mb: int = SERVE_MAX_UPLOAD_MB,
    host: str = "127.0.0.1",
    allowed_hosts: list[str] | None = None,
):
    """The application serving RUN (checked first: a missing or unfinished run is a RunError), behind its
    Guard. `allowed_hosts`: Host names to answer besides those of `host` (e.g. a reverse proxy's name)."""
    from fastapi import FastAPI

    run = check_run_folder(run)
    members = load_members(run)
    if tta == "auto":
        from signvision.inference.evaluate import chosen_tta

        tta = chosen_tta(run)
    batcher = Batcher(members, pick_device(device), TTA(tta, image_size=input_size(members)))
    info = run_info(run, members, tta, max_images, max_upload_mb)
    app = FastAPI(
        title=f"signvision: {run.name}",
        description="Try a trained signvision model.",
        version=__import__("signvision").__version__,
        docs_url=None,
        redoc_url=None,
    )
    app.state.batcher = batcher
    add_error_handlers(app)
    add_routes(app, run, info, batcher, members[0].task, max_images, max_upload_mb)
    hosts = served_hosts(host)
    if hosts is not None and allowed_hosts:
        hosts |= set(allowed_hosts)
    elif allowed_hosts:
        hosts = set(allowed_hosts)
    return Guard(app, max_bytes=max_upload_mb * 1_000_000, hosts=hosts)


def add_error_handlers(app) -> None:
    """Every error a JSON {"error": ...} with its 4xx status."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(RequestError)
    async def request_error(_, e: RequestError):
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        message = {
            404: f"no route {request.method} {request.url.path}; see GET /openapi.json",
            405: f"method {request.method} not allowed on {request.url.path}",
        }.get(e.status_code, str(e.detail))
        return JSONResponse({"error": message}, status_code=e.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_, e: RequestValidationError):
        return JSONResponse({"error": f"bad request: {e.errors()[0].get('msg', 'invalid')}"}, status_code=422)


def add_routes(app, run: Path, info: dict, batcher: Batcher, task, max_images: int, max_upload_mb: int) -> None:
    """GET|HEAD /, /health, /info, /report; POST /predict, /explain."""
    from fastapi import Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    reading = asyncio.Semaphore(2 * cpu_threads())  # uploads read and decoded at once: bounds the memory they take

    @app.head("/", include_in_schema=False)
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(render_page(info))

    @app.head("/health", include_in_schema=False)
    @app.get("/health")
    async def health():
        """Liveness: the model is loaded."""
        return {"status": "ok"}

    @app.head("/info", include_in_schema=False)
    @app.get("/info")
    async def get_info():
        """The run: classes (the order of the probabilities), model, image size, validation figures."""
        return info

    @app.head("/report", include_in_schema=False)
    @app.get("/report", response_class=HTMLResponse)
    async def report():
        """The run's report.html (curves, ROC, confusion matrix, reliability)."""
        if not (run / "report.html").is_file():
            raise RequestError(404, f"{run.name} has no report.html; make it with: signvision report {run}")
        return FileResponse(run / "report.html", media_type="text/html")

    @app.post("/predict")
    async def predict(request: Request):
        """Multipart form with one or several files in the field `images`. Returns, per image, the
        calibrated probabilities of every class in the run's class order, and the top classes."""
        with batcher.in_flight():
            started = time.perf_counter()
            async with reading:
                uploads = await read_uploads(request, max_images, max_upload_mb)
                probs = await asyncio.wrap_future(batcher.submit_files(uploads))
            columns = info["classes"]
            results = []
            for (_, name), row in zip(uploads, probability_table(task, probs)):
                pairs = sorted(zip(columns, row.tolist()), key=lambda t: -t[1])
                results.append({"filename": name, "probabilities": dict(zip(columns, row.tolist())), "top": pairs[:5]})
            seconds = round(time.perf_counter() - started, 4)
            return JSONResponse({"classes": columns, "results": results, "seconds": seconds})

    explaining = asyncio.Semaphore(1)  # one heatmap request at a time (each is a backward pass per member)

    @app.post("/explain")
    async def explain(request: Request):
        """Multipart form with one or several files in the field `images`. Returns, per image, the predicted
        class, its probability and `heatmap`: a PNG (data URI) of the image as the model sees it (S x S) with
        the class-activation heatmap of that class over it (red: where the evidence came from)."""
        with batcher.in_flight():
            started = time.perf_counter()
            async with reading:
                uploads = await read_uploads(request, max_images, max_upload_mb)
                images = await asyncio.to_thread(
                    lambda: [read_upload(data, name, batcher.image_size) for data, name in uploads]
                )
            async with explaining:
                results = await asyncio.to_thread(heatmap_results, batcher, uploads, images, task.names)
            seconds = round(time.perf_counter() - started, 4)
            return JSONResponse({"results": results, "seconds": seconds})


def heatmap_results(batcher: Batcher, uploads, images, names: list[str]) -> list[dict]:
    """What /explain answers for decoded uploads: class, probability and the overlay as a PNG data URI."""
    import cv2

    from signvision.inference.explain import explain_arrays
    from signvision.reports.heatmaps import overlay
    from signvision.reports.html import data_uri

    maps, probs, target = explain_arrays(batcher.members, images, device=str(batcher.device))
    results = []
    for (_, name), image, heat, p, t in zip(uploads, images, maps, probs, target):
        ok, png = cv2.imencode(".png", overlay(image, heat)[..., ::-1])
        p_class = float(p[t]) if np.ndim(p) else float(p if t == 1 else 1 - p)
        results.append(
            {
                "filename": name,
                "class": names[t],
                "probability": p_class,
                "heatmap": data_uri(png.tobytes(), "image/png"),
            }
        )
    return results


def form_error(e: Exception, max_images: int) -> RequestError:
    """What was wrong with a multipart body that Starlette could not read, in words."""
    detail = str(getattr(e, "detail", e)).rstrip(".")
    chain, link = [], e.__cause__ or e.__context__
    while link is not None and len(chain) < 5:  # what python-multipart said, beneath Starlette's words
        chain.append(str(link))
        link = link.__cause__ or link.__context__
    cause = "; ".join(c for c in chain if c and c.rstrip(".") != detail)
    if "Too many files" in detail:
        return RequestError(413, f"{detail} (at most {max_images} images)")
    if "header size" in cause:
        return RequestError(400, "a part's header is over 4 KB (a file name that long?); send a shorter file name")
    return RequestError(400, f"not a readable multipart body ({detail}{': ' + cause[:120] if cause else ''})")


async def read_uploads(request, max_images: int, max_upload_mb: int) -> list[tuple[bytes, str]]:
    """The files of a POST /predict request [(bytes, name)], or the RequestError that says what is wrong."""
    kind = request.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/form-data"):  # media types are case-insensitive
        raise RequestError(415, f"content type {kind or '(none)'}: send multipart/form-data with files in 'images'")
    max_bytes = max_upload_mb * 1_000_000
    try:
        form = await request.form(max_files=max_images, max_fields=8, max_part_size=max_bytes)
    except RequestError:
        raise
    except Exception as e:  # Starlette's words, and python-multipart's reason beneath them
        raise form_error(e, max_images) from None
    files = [f for f in form.getlist("images") if hasattr(f, "read")]
    if not files:
        raise RequestError(400, "no files in the form field 'images'")
    if len(files) > max_images:
        raise RequestError(413, f"{len(files)} images; at most {max_images} per request")
    uploads, total = [], 0
    for f in files:
        data = await f.read()
        total += len(data)
        if total > max_bytes:
            raise RequestError(413, f"the images add up to over {max_upload_mb} MB")
        name = f.filename or f"image {len(uploads) + 1}"
        uploads.append((data, name if len(name) <= 200 else name[:200] + "..."))
    return uploads


def check_address(host: str, port: int) -> None:
    """Bind HOST:PORT once and let go, so that a port in use or an unknown host is one line, before the
    model is loaded and the server starts."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except OSError as e:
        raise OptionError(
            f"cannot listen there on port {port} ({e.strerror or e})", option="host", value=host
        ) from None


def serve(
    run,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    tta: str = "none",
    device: str = "auto",
    max_images: int = SERVE_MAX_IMAGES,
    max_upload_mb: int = SERVE_MAX_UPLOAD_MB,
    allowed_hosts: list[str] | None = None,
) -> None:
    """Check the run, build the app, serve it with uvicorn until Ctrl-C (the CLI's `serve`)."""
    try:
        import uvicorn
    except ImportError:
        raise MissingError("serve: the web packages are not installed; pip install 'signvision[serve]'") from None
    if not 0 < port < 65536:
        raise OptionError("expected 1 to 65535", option="port", value=port)
    check_address(host, port)
    app = create_app(
        run,
        tta=tta,
        device=device,
        max_images=max_images,
        max_upload_mb=max_upload_mb,
        host=host,
        allowed_hosts=allowed_hosts,
    )
    print(f"serving {run} on http://{host}:{port}  (API: POST /predict, GET /info, /health; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", http=json_error_protocol())
    print("stopped", flush=True)


def render_page(info: dict) -> str:
    """The single page: no asset from outside (it must work with no network)."""
    from signvision.reports.html import escape

    figures = " · ".join(
        f"{k.removeprefix('val_').replace('_', ' ')} {v:.4f}" for k, v in info["validation"].items() if v is not None
    )
    page = (Path(__file__).parent / "static" / "serve.html").read_text(encoding="utf-8")
    return (
        page.replace("{{title}}", escape(f"signvision: {info['run']}"))
        .replace(
            "{{meta}}",
            escape(
                f"model {info['model']} · {info['image_size']} px · {len(info['classes'])} classes"
                + (f" · {info['folds']} folds" if info["folds"] > 1 else "")
                + (f" · validation {figures}" if figures else "")
            ),
        )
        .replace("{{max}}", str(info["max_images"]))
    )
