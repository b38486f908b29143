"""Dynamic batching for the server: requests that arrive together share one forward pass, and uploads are
decoded (as `predict` decodes files) in a small thread pool, off the event loop, within a bound on memory.

    RequestError   a client's mistake: answered with its 4xx status and {"error": message}
    read_upload    one uploaded file -> the run's input size, or the RequestError that says why not
    Batcher        the queue and the worker that runs the run's model(s) on batches of waiting requests
"""

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from signvision.data.images import decode_image, read_header, resize
from signvision.data.threads import cpu_threads
from signvision.errors import BadImage
from signvision.inference.members import ensemble_probs, input_size, runtime_for
from signvision.models.augment import TTA

MAX_SERVE_PIXELS = 40_000_000  # a 50-megapixel JPEG is refused; phone photos (12-24 MP) pass (decoded at 1/2)
MAX_SERVE_OTHER_PIXELS = 16_000_000  # PNG, WebP, TIFF...: decoded whole (RGBA, 16 bits: 8 bytes a pixel)
LARGE_UPLOAD_PIXELS = 4_000_000  # uploads above this decode two at a time, however many cores decode
LARGE_DECODES = threading.BoundedSemaphore(2)  # so the server's peak memory does not grow with the core count
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
        self.image_size = input_size(self.members)
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

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> the mean over members of calibrated probabilities (N, K) or (N,)."""
        self.batches += 1
        batch = torch.from_numpy(images).permute(0, 3, 1, 2)  # (N, 3, S, S) uint8
        return ensemble_probs(self.members, self.runtimes, batch, self.tta)


def read_upload(data: bytes, name: str, image_size: int) -> np.ndarray:
    """One uploaded file -> uint8 (S, S, 3), decoded as `predict` decodes files; RequestError otherwise."""
    if not data:
        raise RequestError(400, f"{name}: the file is empty")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        header = read_header(buf, name)
        limit = MAX_SERVE_PIXELS if header.kind == "JPEG" else MAX_SERVE_OTHER_PIXELS
        if header.pixels > limit:
            pixels = header.pixels / 1e6
            raise RequestError(
                413, f"{name}: {pixels:.0f} megapixels; the limit is {limit / 1e6:.0f} for {header.kind}"
            )
        with LARGE_DECODES if header.pixels > LARGE_UPLOAD_PIXELS else nullcontext():
            return resize(decode_image(buf, name, header), image_size)
    except BadImage as e:
        raise RequestError(422, str(e)) from None
