"""The decoded-image cache: every image decoded and resized once, on a thread pool, into a uint8 array in
memory or a memmap on disk, so that later epochs never decode a JPEG again. Within one process the last
arrays decoded in memory are kept too (`REUSED`), so the folds of a `--folds` job, an ensemble's evaluation or
a notebook's second run on the same images and size decode each image once, not once per run."""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from signvision.data.images import load_resized
from signvision.data.threads import cpu_threads
from signvision.errors import BadImage, OptionError
from signvision.progress import progress_bar


def cache_key(paths: Sequence[str], size: int) -> str:
    """Changes when any path, file size, modification time or the image size changes."""
    h = hashlib.sha1(f"size={size}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def already_decoded(paths: Sequence[str], size: int, cache: str = "memory", cache_dir=None) -> bool:
    """Whether `decode_all` would decode nothing: these images at this size are kept in this process's memory,
    or in a finished disk cache. (A file that cannot be read: False, and decoding says which.)"""
    try:
        key = cache_key(paths, size)
    except OSError:
        return False
    if cache == "memory":
        return key in _decoded
    return cache == "disk" and disk_cache_file(cache_dir, key, len(paths), size).with_suffix(".json").is_file()


def disk_cache_file(cache_dir, key: str, n: int, size: int) -> Path:
    """The memmap of `n` images at `size` with `cache_key` `key` under `cache_dir` (~/.cache/signvision when None);
    a .json beside it marks it finished."""
    return Path(cache_dir or Path.home() / ".cache" / "signvision") / f"images-{key}-{n}x{size}.u8"


def decode_all(
    paths: Sequence[str],
    size: int,
    *,
    cache: str = "memory",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
    desc: str = "decoding images",
    rank: int = 0,
) -> tuple[np.ndarray | None, list[int], list[str]]:
    """Decode and resize every image once, on a thread pool (OpenCV releases the GIL).

    Returns (array, bad_indices, bad_messages). `cache`: "memory" keeps a (N, size, size, 3) uint8 array
    in RAM; "disk" writes a uint8 memmap under `cache_dir` (reused by later runs while the files and
    the size are unchanged); "none" only checks that every image decodes and returns None.
    """
    n = len(paths)
    threads = threads or cpu_threads()
    arr: np.ndarray | None = None
    done_marker = None
    if cache == "memory":
        key = cache_key(paths, size)  # the files' sizes and times: a changed file is decoded again
        if key in _decoded:
            _decoded.move_to_end(key)
            return _decoded[key]
        arr = np.empty((n, size, size, 3), dtype=np.uint8)
    elif cache == "disk":
        file = disk_cache_file(cache_dir, cache_key(paths, size), n, size)
        file.parent.mkdir(parents=True, exist_ok=True)
        done_marker = file.with_suffix(".json")
        if done_marker.is_file() and file.is_file():
            info = json.loads(done_marker.read_text())
            arr = np.memmap(file, dtype=np.uint8, mode="r", shape=(n, size, size, 3))
            return arr, info["bad"], info["messages"]
        arr = np.memmap(file, dtype=np.uint8, mode="w+", shape=(n, size, size, 3))
    elif cache != "none":
        raise OptionError("expected memory, disk or none", option="cache", value=cache)

    bad: list[int] = []
    messages: list[str] = []

    def work(i: int) -> tuple[int, str | None]:
        try:
            img = load_resized(paths[i], size)
        except BadImage as e:
            return i, str(e)
        if arr is not None:
            arr[i] = img
        return i, None

    with ThreadPoolExecutor(threads) as pool:
        for i, err in progress_bar(
            pool.map(work, range(n), chunksize=64), total=n, desc=desc, unit="img", rank=rank, min_total=500
        ):
            if err is not None:
                bad.append(i)
                messages.append(err)
                if arr is not None:
                    arr[i] = 0
    if cache == "disk":
        assert isinstance(arr, np.memmap) and done_marker is not None
        arr.flush()
        done_marker.write_text(json.dumps({"bad": bad, "messages": messages, "paths": len(paths), "size": size}))
        arr = np.memmap(arr.filename, dtype=np.uint8, mode="r", shape=(n, size, size, 3))
    if cache == "memory":
        remember(key, (arr, bad, messages))
    return arr, bad, messages


REUSED = 2  # decoded arrays kept in memory for the next run of this process (one per image size a job uses) ...
REUSED_SHARE = 0.125  # ... each at most this share of the machine's memory
_decoded: OrderedDict[str, tuple] = OrderedDict()


def remember(key: str, decoded: tuple) -> None:
    """Keep a decoded array for the next run on the same files and size (the oldest one goes first)."""
    import psutil

    if decoded[0].nbytes <= REUSED_SHARE * psutil.virtual_memory().total:
        _decoded[key] = decoded
        while len(_decoded) > REUSED:
            _decoded.popitem(last=False)
