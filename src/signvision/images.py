"""Decoding images: any file OpenCV reads becomes RGB uint8 (grayscale, RGBA and 16-bit files included).

Very large files are decoded at reduced size: a JPEG over `LARGE_PIXELS` is read by OpenCV at 1/2, 1/4
or 1/8 of its side (libjpeg scales while decoding, so the full image never sits in memory); any image
over `MAX_PIXELS` in another format is refused with its name.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from signvision.errors import BadImage

LARGE_PIXELS = 4096 * 4096  # JPEGs above this are decoded at reduced size (1/2, 1/4 or 1/8 a side)
MAX_PIXELS = 16384 * 16384  # other images above this are refused

cv2.setNumThreads(1)  # decoding runs in our own thread pool / loader workers; nested pools only fight


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into an RGB uint8 array (H, W, 3), whatever its channels and bit depth."""
    return decode_image(np.fromfile(str(path), dtype=np.uint8), path)  # fromfile: non-ASCII paths too


def decode_image(buf: np.ndarray, path: str | Path, pixels: int | None = None) -> np.ndarray:
    """The bytes of an image file (named `path` in errors) -> RGB uint8 (H, W, 3).

    JPEGs are decoded in colour with their EXIF orientation applied; other formats unchanged first so
    that 16-bit and RGBA files are seen as such. A JPEG without its end marker (a truncated download)
    is refused rather than silently padded with grey. `pixels`: image_pixels(buf) if the caller has it.
    """
    if buf.size == 0:
        raise BadImage(f"{path}: empty file")
    is_jpeg = buf[:2].tobytes() == b"\xff\xd8"
    flag = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    pixels = image_pixels(buf) if pixels is None else pixels
    if pixels > LARGE_PIXELS and is_jpeg:
        reduced = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
        factor = next((f for f in (2, 4, 8) if pixels / f**2 <= LARGE_PIXELS), 8)
        flag = reduced[factor]
    elif pixels > MAX_PIXELS:
        raise BadImage(f"{path}: {pixels / 1e6:.0f} megapixels, over the limit of {MAX_PIXELS / 1e6:.0f}")
    if is_jpeg and not _ends_with_eoi(buf):
        raise BadImage(f"{path}: truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(buf, flag)
    if img is None:
        raise BadImage(f"{path}: not a readable image")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:  # float TIFF/EXR: assume 0..1
        img = (np.clip(img.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[0], img.shape[1]), cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_pixels(buf: np.ndarray) -> int:
    """Width x height from the file's header alone (Pillow reads no pixels for this); 0 if unknown."""
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(buf.tobytes())) as im:
            return int(im.size[0]) * int(im.size[1])
    except Exception:  # not a format Pillow knows: OpenCV decides below
        return 0


def _ends_with_eoi(buf: np.ndarray) -> bool:
    """A JPEG ends with the EOI marker FF D9, possibly followed by zero padding."""
    nonzero = np.flatnonzero(buf)
    return len(nonzero) > 1 and buf[nonzero[-1]] == 0xD9 and buf[nonzero[-1] - 1] == 0xFF


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize (the aspect ratio is not kept); area interpolation when shrinking."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    shrink = img.shape[0] > size or img.shape[1] > size
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def load_resized(path: str, size: int) -> np.ndarray:
    """Read an image file and resize it to size x size (RGB uint8)."""
    return resize(read_image(path), size)
