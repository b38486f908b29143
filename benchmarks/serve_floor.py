"""The floor under `signvision serve`: the same batcher with no web framework, for benchmarks/serve.py --floor.

    python benchmarks/serve_floor.py RUN PORT

A bare ASGI application on uvicorn: GET answers ok; POST takes the first part of a multipart body as the
image (a naive split, good for the benchmark's own requests only), runs it through `serve.Batcher`
(decode pool, batching, the model) and answers the class probabilities as JSON. No routing, no
multipart parser, no checks. What it serves is the most a single Python process with this batcher
can serve on the machine; `signvision serve` can only be slower. Not for use beyond measuring.
"""

import asyncio
import json
import sys

import torch
import uvicorn

from signvision.errors import SignvisionError
from signvision.inference.batcher import Batcher
from signvision.inference.members import load_members
from signvision.training.finished import check_run_folder


def make_app(run: str):
    batcher = Batcher(load_members(check_run_folder(run)), torch.device("cpu"))
    classes = list(batcher.members[0].task.classes)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if scope["method"] == "GET":  # the benchmark's health check
            reply = b'{"status": "ok"}'
        else:
            image = body[body.index(b"\r\n\r\n") + 4 : body.rindex(b"\r\n--")]
            with batcher.in_flight():
                probs = await asyncio.wrap_future(batcher.submit_files([(image, "a.jpg")]))
            reply = json.dumps({"classes": classes, "probabilities": probs[0].tolist()}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    return app


if __name__ == "__main__":
    try:
        app = make_app(sys.argv[1])
    except SignvisionError as e:  # a missing or unfinished run: one line, as `signvision serve` says it
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
