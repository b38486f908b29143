"""`signvision serve --run RUN`: a web page to try a trained model (upload or webcam) and a JSON API.

    GET  /              the page: drop or choose images, or take a webcam snapshot; top classes as bars
    POST /predict       multipart images (field `images`, one or several) -> calibrated probabilities in
                        the run's class order: the numbers `signvision predict` writes for those images
    GET  /health        {"status": "ok"}
    GET  /info          classes, model, image size, validation figures
    GET  /report        the run's report.html
    GET  /openapi.json  the API described by FastAPI (OpenAPI 3)
    (HEAD too, on every GET route)

Requests that arrive together share a forward pass (batcher.py). Safe defaults, each of them tested (the HTTP
layer's, in front of the application, are in guard.py):

    the address     binds 127.0.0.1; then only Host names of this machine are answered (a page elsewhere cannot
                    reach the server through DNS rebinding); `allowed_hosts` adds others
    the head        the request line and headers: at most 64 KB (431) and 10 s; an upload's body never counts
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
from signvision.inference.guard import Guard, guarded_protocol, served_hosts
from signvision.inference.members import input_size, load_members
from signvision.inference.predict import probability_columns, probability_table
from signvision.logs import get_logger
from signvision.models.augment import TTA
from signvision.training.finished import check_run_folder
from signvision.training.runtime import pick_device

logger = get_logger(__name__)


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
        from signvision.inference.tta_choice import chosen_tta

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
    logger.info(f"serving {run} on http://{host}:{port}  (API: POST /predict, GET /info, /health; Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning", http=guarded_protocol())
    logger.info("stopped")


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
