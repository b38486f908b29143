"""Can uploads exhaust the server's memory? Peak memory of `signvision serve` under 20 concurrent worst-case requests.

    python benchmarks/serve_attack.py --run runs/lenet [--clients 20]

For each kind of hostile upload below, starts a fresh `signvision serve` on 127.0.0.1, sends `--clients`
requests at once, each carrying as many copies of the file as the server takes in one request (16) within
its body limit (20 MB), and meanwhile asks `/health` every 0.2 s. Prints the answers' status codes, the
server's resident memory at rest and its peak (the kernel's VmHWM for the server process), and the slowest
`/health` answer during the attack. The target (issue 18): peak under 1.5 GB, `/health` answering throughout.

The files are small on the wire and large once decoded, the shape of a memory bomb:
  jpeg-40mp   a 6,320 x 6,320 JPEG of one colour (just under the 40-megapixel limit for JPEGs)
  png-16mp    a 4,000 x 4,000 RGBA PNG with 16 bits a channel (8 bytes a pixel decoded; under the 16 MP limit)
  hdr-64mp    a Radiance .hdr of 8,000 x 8,000 named bomb.jpg (its size is not in a header OpenCV exposes)
  png-lying   a PNG whose header says 100 x 100 but whose data holds 16 MP (libpng stops at the header's size)
Figures are written down in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
from serve import BOUNDARY, free_port, start  # benchmarks/serve.py: the same server start-up

MAX_IMAGES, MAX_BODY = 16, 20_000_000


def hdr_bytes(side: int) -> bytes:
    """A Radiance RGBE file, run-length encoded: a few KB for `side`^2 pixels."""
    head = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {side} +X {side}\n".encode()
    row = bytes([2, 2, side >> 8, side & 255])  # new-style RLE scanline header
    runs = b""
    for _channel in range(4):
        left = side
        while left:
            n = min(127, left)
            runs += bytes([128 + n, 128])
            left -= n
    return head + (row + runs) * side


def png_lying() -> bytes:
    """A valid 100x100 PNG header in front of 16 MP of compressed data."""
    good = cv2.imencode(".png", np.zeros((100, 100, 3), np.uint8))[1].tobytes()
    raw = zlib.compress(b"\x00" * (4000 * (4000 * 3 + 1)), 9)
    chunk = len(raw).to_bytes(4, "big") + b"IDAT" + raw + zlib.crc32(b"IDAT" + raw).to_bytes(4, "big")
    iend = good.rindex(b"IEND") - 4
    return good[:iend] + chunk + good[iend:]


def hostile_files() -> dict[str, bytes]:
    jpeg = cv2.imencode(".jpg", np.full((6320, 6320, 3), 120, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])[1]
    png = cv2.imencode(".png", np.full((4000, 4000, 4), 30000, np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1]
    return {
        "jpeg-40mp": jpeg.tobytes(),
        "png-16mp": png.tobytes(),
        "hdr-64mp": hdr_bytes(8000),
        "png-lying": png_lying(),
    }


def multipart(data: bytes, copies: int) -> bytes:
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="bomb.jpg"\r\n'
    part = part.encode() + b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n"
    return part * copies + f"--{BOUNDARY}--\r\n".encode()


def post(port: int, body: bytes, statuses: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    try:
        conn.request("POST", "/predict", body=body, headers=headers)
        statuses.append(conn.getresponse().status)
    except OSError as error:
        statuses.append(type(error).__name__)
    finally:
        conn.close()


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def health_latency(port: int, stop: threading.Event, worst: list) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
        except OSError:
            ok = False
        worst.append(time.perf_counter() - started if ok else float("inf"))
        time.sleep(0.2)


def attack(run: str, name: str, data: bytes, clients: int) -> str:
    copies = max(1, min(MAX_IMAGES, (MAX_BODY - 1024) // (len(data) + 200)))
    body = multipart(data, copies)
    port = free_port()
    server = start(run, port)
    try:
        at_rest = memory_kb(server.pid, "VmRSS")
        statuses: list = []
        latencies: list = []
        stop = threading.Event()
        watcher = threading.Thread(target=health_latency, args=(port, stop, latencies))
        watcher.start()
        started = time.perf_counter()
        threads = [threading.Thread(target=post, args=(port, body, statuses)) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        stop.set()
        watcher.join()
        peak = memory_kb(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait()
    codes = ", ".join(f"{code} x{statuses.count(code)}" for code in sorted(set(statuses), key=str))
    slowest = max(latencies) if latencies else float("nan")
    return (
        f"| {name} | {len(data) / 1e6:.2f} MB x {copies} | {codes} | {seconds:.1f} s | {at_rest / 1024**2:.2f} GB "
        f"| **{peak / 1024**2:.2f} GB** | {slowest * 1000:.0f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run folder to serve")
    parser.add_argument("--clients", type=int, default=20, help="requests sent at once")
    parser.add_argument("--only", nargs="*", help="kinds of file to send (default: all)")
    args = parser.parse_args()
    print("| upload | file x per request | answers | time | server at rest | server peak | slowest /health |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, data in hostile_files().items():
        if not args.only or name in args.only:
            print(attack(args.run, name, data, args.clients), flush=True)


if __name__ == "__main__":
    main()
