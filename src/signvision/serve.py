"""`signvision serve --run RUN`: a web page to try a trained model (upload or webcam) and a JSON API.

    GET  /              the page: drop or choose images, or take a webcam snapshot; top classes as bars
    POST /predict       multipart images (field `images`, one or several) -> calibrated probabilities in
                        the run's class order: the numbers `signvision predict` writes for those images
    GET  /health        {"status": "ok"}
    GET  /info          classes, model, image size, validation figures
    GET  /report        the run's report.html
    GET  /openapi.json  the API described by FastAPI (OpenAPI 3)

Images are decoded and resized exactly as `predict` does (data.decode_image, data.resize). Requests that
arrive together are run through the model as one batch: each request puts its images on a queue, and
one worker takes whatever is waiting (up to `max_batch` images) for every forward pass.

Safe defaults: binds 127.0.0.1; a request body over `--max-upload-mb` or with more than `--max-images`
files is refused (413); a file is an image only if it decodes (its name and declared type are not
trusted); images over `MAX_SERVE_PIXELS` are refused before they are decoded. Every error is JSON:
{"error": "..."} with a 4xx status, and the server keeps serving.
"""

import asyncio
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from signvision.augment import TTA
from signvision.errors import BadImage, UserError
from signvision.images import decode_image, read_header, resize
from signvision.inference import check_run_folder, load_members, probability_columns, probability_table, runtime_for
from signvision.runtime import cpu_threads, pick_device

MAX_SERVE_PIXELS = 40_000_000  # a 50-megapixel upload is refused; phone photos (12-24 MP) pass
MAX_BATCH_WAIT = 0.1  # seconds: the longest the batcher waits for a batch to fill


class RequestError(Exception):
    """A client's mistake: answered with `status` and {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Batcher:
    """Runs the run's model(s) on batches of images gathered from concurrent requests (dynamic batching,
    as Triton's and TorchServe's batchers do).

    `submit_files([(bytes, name), ...])` decodes each request's uploads in a small thread pool, off the
    event loop (a 24 MP photo holds up no other request), then queues them, and returns a Future of
    probabilities (N, K) or (N,); `submit(images)` takes images already decoded, uint8 (N, S, S, 3).
    A worker thread takes every waiting request, up to `max_batch` images, and runs them as one forward
    pass per member.

    Waiting for the rest of a batch: requests are counted while they are in the server (`in_flight`).
    When fewer are queued than were in the server at once during the last second, the worker waits for
    the others, at most as long as its last forward pass took. Under a steady load of N clients every
    batch then holds all N requests (instead of two half-batches chasing each other, each paying the
    model's per-batch cost), and a lone client waits for nobody.
    """

    members: list
    device: torch.device
    tta: TTA | None = None
    max_batch: int = 64
    queue: list = field(default_factory=list)  # [(images uint8 (N, S, S, 3), Future)]
    lock: threading.Condition = field(default_factory=threading.Condition)
    batches: int = 0  # forward passes made (the test of batching reads it)
    in_server: int = 0  # requests between arriving and being answered
    most_in_server: tuple = (0, 0)  # the most at once during (the last whole second, this second)
    second: int = 0
    wait_limit: float = 0.005  # seconds the worker may wait for a batch to fill: the last forward pass

    def __post_init__(self):
        self.runtimes = [runtime_for(m, self.device) for m in self.members]
        self.image_size = self.members[0].cfg.image_size
        for m in self.members:
            m.model.to(self.device).eval()
        self.decoders = ThreadPoolExecutor(max_workers=cpu_threads(), thread_name_prefix="signvision-decode")
        threading.Thread(target=self._work, daemon=True, name="signvision-batcher").start()

    @contextmanager
    def in_flight(self):
        """Count a request for as long as it is in the server (the batch the worker waits for)."""
        with self.lock:
            self.in_server += 1
            now = int(time.monotonic())
            if now != self.second:  # a new second: this one's count becomes the last whole second's
                last = self.most_in_server[1] if now == self.second + 1 else 0
                self.most_in_server, self.second = (last, 0), now
            self.most_in_server = (self.most_in_server[0], max(self.most_in_server[1], self.in_server))
        try:
            yield
        finally:
            with self.lock:
                self.in_server -= 1

    def submit(self, images: np.ndarray, future: Future | None = None) -> Future:
        """Decoded images, uint8 (N, S, S, 3) -> a Future of their probabilities (N, K) or (N,)."""
        future = future or Future()
        with self.lock:
            self.queue.append((images, future))
            self.lock.notify()
        return future

    def submit_files(self, files: list[tuple[bytes, str]]) -> Future:
        """Uploaded files [(bytes, name)] -> a Future of their probabilities, or of the RequestError of the
        first that is not an image. Decoded in the pool, then queued: the worker sees decoded images only."""
        future: Future = Future()

        def decode_then_submit():
            try:
                images = np.stack([read_upload(data, name, self.image_size) for data, name in files])
            except Exception as e:
                future.set_exception(e)
                return
            self.submit(images, future)

        self.decoders.submit(decode_then_submit)
        return future

    def _take(self) -> list:
        """Wait for work, and for the requests still in the server (see the class docstring); then take
        every waiting request up to max_batch images (at least one request)."""
        with self.lock:
            while not self.queue:
                self.lock.wait()
            deadline = time.perf_counter() + self.wait_limit
            while len(self.queue) < max(self.most_in_server) and self._queued_images() < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self.lock.wait(left)
            jobs, size = [], 0
            while self.queue and (not jobs or size + len(self.queue[0][0]) <= self.max_batch):
                jobs.append(self.queue.pop(0))
                size += len(jobs[-1][0])
        return jobs

    def _queued_images(self) -> int:
        return sum(len(images) for images, _ in self.queue)

    def _work(self) -> None:
        while True:
            jobs = self._take()
            started = time.perf_counter()
            try:
                probs = self.predict(np.concatenate([images for images, _ in jobs]))
            except Exception as e:  # a model failure answers every waiting request, the worker lives on
                for _, future in jobs:
                    future.set_exception(e)
                continue
            self.wait_limit = min(time.perf_counter() - started, MAX_BATCH_WAIT)
            start = 0
            for images, future in jobs:
                future.set_result(probs[start : start + len(images)])
                start += len(images)

    @torch.no_grad()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> the mean over members of calibrated probabilities (N, K) or (N,)."""
        self.batches += 1
        batch = torch.from_numpy(images).permute(0, 3, 1, 2)  # (N, 3, S, S) uint8
        total = None
        for m, runtime in zip(self.members, self.runtimes):
            if self.tta is not None and self.tta.spec != "none":
                p = self.tta(lambda x, m=m: m.task.probs(m.model(x), m.temperature), batch, runtime.prepare)
            else:
                p = m.task.probs(m.model(runtime.prepare(batch)), m.temperature)
            p = p.float().cpu().numpy()
            total = p if total is None else total + p
        return total / len(self.members)


def read_upload(data: bytes, name: str, image_size: int) -> np.ndarray:
    """One uploaded file -> uint8 (S, S, 3), decoded as `predict` decodes files; RequestError otherwise."""
    if not data:
        raise RequestError(400, f"{name}: the file is empty")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        header = read_header(buf, name)
        if header.pixels > MAX_SERVE_PIXELS:
            pixels = header.pixels / 1e6
            raise RequestError(413, f"{name}: {pixels:.0f} megapixels; the limit is {MAX_SERVE_PIXELS / 1e6:.0f}")
        return resize(decode_image(buf, name, header), image_size)
    except BadImage as e:
        raise RequestError(422, str(e)) from None


def create_app(
    run: str | Path, *, tta: str = "none", device: str = "auto", max_images: int = 16, max_upload_mb: int = 20
):
    """The FastAPI application serving RUN (checked first: a missing or unfinished run is a UserError)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException

    run = check_run_folder(run)
    members = load_members(run)
    first = members[0]
    image_size = first.cfg.image_size
    views = TTA(tta, image_size=image_size)
    batcher = Batcher(members, pick_device(device), views)
    columns = probability_columns(first.task)
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    info = {
        "run": run.name,
        "model": first.cfg.model,
        "image_size": image_size,
        "classes": columns,
        "folds": len(members),
        "temperature": first.temperature,
        "tta": tta,
        "validation": {k: summary.get(k) for k in ("val_roc_auc", "val_log_loss", "val_accuracy", "val_ece")},
        "max_images": max_images,
        "max_upload_mb": max_upload_mb,
    }
    max_bytes = max_upload_mb * 1_000_000
    app = FastAPI(
        title=f"signvision: {run.name}",
        description="Try a trained signvision model.",
        version=__import__("signvision").__version__,
        docs_url=None,
        redoc_url=None,
    )
    app.state.batcher = batcher

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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(render_page(info))

    @app.get("/health")
    async def health():
        """Liveness: the model is loaded."""
        return {"status": "ok"}

    @app.get("/info")
    async def get_info():
        """The run: classes (the order of the probabilities), model, image size, validation figures."""
        return info

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
            return await answer(request)

    async def answer(request: Request):
        started = time.perf_counter()
        kind = request.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            raise RequestError(415, f"content type {kind or '(none)'}: send multipart/form-data with files in 'images'")
        declared = int(request.headers.get("content-length") or 0)
        if declared > max_bytes:
            raise RequestError(413, f"the request is {declared / 1e6:.1f} MB; the limit is {max_upload_mb} MB")
        try:
            form = await request.form(max_files=max_images, max_fields=8, max_part_size=max_bytes)
        except HTTPException as e:
            status = 413 if "Too many" in str(e.detail) else 400
            raise RequestError(status, f"{e.detail} (at most {max_images} images)") from None
        except Exception as e:
            raise RequestError(400, f"not a readable multipart body ({type(e).__name__})") from None
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
            uploads.append((data, f.filename or f"image {len(uploads) + 1}"))
        probs = await asyncio.wrap_future(batcher.submit_files(uploads))
        table = probability_table(first.task, probs)
        results = []
        for (_, name), row in zip(uploads, table):
            pairs = sorted(zip(columns, row.tolist()), key=lambda t: -t[1])
            results.append({"filename": name, "probabilities": dict(zip(columns, row.tolist())), "top": pairs[:5]})
        seconds = round(time.perf_counter() - started, 4)
        return JSONResponse({"classes": columns, "results": results, "seconds": seconds})

    return app


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
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None


def serve(
    run,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    tta: str = "none",
    device: str = "auto",
    max_images: int = 16,
    max_upload_mb: int = 20,
) -> None:
    """Check the run, build the app, serve it with uvicorn until Ctrl-C."""
    try:
        import uvicorn
    except ImportError:
        raise UserError("serve: the web packages are not installed; pip install 'signvision[serve]'") from None
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: expected 1 to 65535")
    check_address(host, port)
    app = create_app(run, tta=tta, device=device, max_images=max_images, max_upload_mb=max_upload_mb)
    print(f"serving {run} on http://{host}:{port}  (API: POST /predict, GET /info, /health; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    print("stopped", flush=True)


def render_page(info: dict) -> str:
    """The single page: no asset from outside (it must work with no network)."""
    from signvision.pages import escape

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
