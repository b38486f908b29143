"""Decoding images: any file OpenCV reads becomes RGB uint8 (grayscale, RGBA and 16-bit files included),
upright, within a bound on the memory it takes.

What a file must pass before a single pixel is decoded (each failure is a `BadImage` naming the file):

    a regular file     not a folder, a FIFO or a device (a FIFO would block for ever), at most MAX_FILE_BYTES
    a known size       the header says how many pixels it has: JPEG's own frame header, or Pillow's reading
                       of the others; a file whose size cannot be read this way is refused, since decoding
                       it could take any amount of memory (a 4 MB Radiance HDR file can hold 64 megapixels)
    within the bound   a JPEG over LARGE_PIXELS is decoded at 1/2, 1/4 or 1/8 of its side (libjpeg scales
                       while decoding, so the full image never sits in memory); any other image over
                       MAX_PIXELS is refused
    a whole JPEG       the entropy-coded data must reach an end-of-image marker (a truncated download is
                       refused rather than padded with grey); bytes after that marker are allowed (phones
                       append a video to Motion Photos)

EXIF orientation is applied whatever the format (JPEG, PNG, WebP, TIFF), so a photo is read upright.
"""

from __future__ import annotations

import os
import stat
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np

from signvision.errors import BadImage

LARGE_PIXELS = 4096 * 4096  # JPEGs above this are decoded at reduced size (1/2, 1/4 or 1/8 a side)
MAX_PIXELS = 100_000_000  # other images above this are refused (RGBA at this size: 400 MB)
MAX_FILE_BYTES = 512 * 2**20  # larger files are refused before they are read


def read_bytes(path: str | Path) -> np.ndarray:
    """A file's bytes, refusing what is not a regular file or too large (non-ASCII paths work too)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, socket or device)"
            raise BadImage(f"{path}: {kind}, not an image file")
        if info.st_size > MAX_FILE_BYTES:
            raise BadImage(f"{path}: {info.st_size / 2**20:.0f} MB, over the limit of {MAX_FILE_BYTES / 2**20:.0f} MB")
        with open(path, "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as e:
        raise BadImage(f"{path}: cannot read it ({e.strerror or type(e).__name__})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into an upright RGB uint8 array (H, W, 3), whatever its channels and bit depth;
    BadImage naming the file for anything that is not an image within the bounds (module docstring).

    Example:
        >>> read_image("../shared/data/sign-digits/Images/ImageID_04I4SS8P.jpg").shape
        (100, 100, 3)
    """
    return decode_image(read_bytes(path), path)


class Header:
    """What a file's header says: format ("JPEG", "PNG", ...), width, height and EXIF orientation (1-8)."""

    def __init__(self, kind: str, width: int, height: int, orientation: int = 1):
        self.kind, self.width, self.height, self.orientation = kind, width, height, orientation

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(buf: np.ndarray, path: str | Path) -> Header:
    """The header of an image file's bytes, or BadImage when its size cannot be known before decoding."""
    if buf.size == 0:
        raise BadImage(f"{path}: empty file")
    if buf[:2].tobytes() == b"\xff\xd8":
        size = jpeg_size(buf)
        if size is None:
            raise BadImage(f"{path}: not a readable JPEG (no frame header)")
        return Header("JPEG", *size)  # orientation: OpenCV applies it to JPEGs
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limits are decode_image's
            with Image.open(BytesIO(buf.tobytes())) as im:
                kind, (width, height) = im.format or "?", im.size
                small = width * height <= LARGE_PIXELS  # PIL decodes a PNG whole to read its EXIF: not a huge one
                orientation = int(im.getexif().get(0x0112, 1)) if kind in ("PNG", "WEBP") and small else 1
    except Image.DecompressionBombError:
        raise BadImage(f"{path}: over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, refused") from None
    except Exception:
        raise BadImage(
            f"{path}: not a readable image (no JPEG, PNG, BMP, TIFF, WebP, GIF or PNM header to read its size from)"
        ) from None
    return Header(kind, int(width), int(height), orientation if 1 <= orientation <= 8 else 1)


def decode_image(buf: np.ndarray, path: str | Path, header: Header | None = None) -> np.ndarray:
    """The bytes of an image file (named `path` in errors) -> upright RGB uint8 (H, W, 3).

    JPEGs are decoded in colour (at reduced size when large); other formats unchanged first so that 16-bit
    and RGBA files are seen as such. `header`: read_header(buf) if the caller has it.
    """
    header = header or read_header(buf, path)
    is_jpeg = header.kind == "JPEG"
    flag = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    if is_jpeg and header.pixels > LARGE_PIXELS:
        factor = next((f for f in (2, 4, 8) if header.pixels / f**2 <= LARGE_PIXELS), None)
        if factor is None:
            raise BadImage(f"{path}: {header.pixels / 1e6:.0f} megapixels, too large even at 1/8 of its side")
        flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    elif not is_jpeg and header.pixels > MAX_PIXELS:
        raise BadImage(f"{path}: {header.pixels / 1e6:.0f} megapixels, over the limit of {MAX_PIXELS / 1e6:.0f}")
    if is_jpeg and jpeg_end(buf) is None:
        raise BadImage(f"{path}: truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(buf, flag)
    if img is None:
        raise BadImage(f"{path}: not a readable image")
    if img.dtype == np.uint16:
        img = cv2.convertScaleAbs(img, alpha=1 / 257)  # to 8 bits without a float copy of the whole image
    elif img.dtype != np.uint8:  # float TIFF: assume 0..1
        if not np.isfinite(img).all():
            raise BadImage(f"{path}: holds NaN or infinite pixels (a float image with no picture in those pixels)")
        img = (np.clip(img.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        rgb = cv2.cvtColor(img.reshape(img.shape[0], img.shape[1]), cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(orient(rgb, header.orientation))


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W, C) array, as Pillow's ImageOps.exif_transpose does."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1]
    if orientation == 5:
        return img.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(img, -1)
    if orientation == 7:
        return img[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(img, 1)
    return img


def read_grey_small(path: str | Path, min_side: int = 64) -> tuple[np.ndarray, int]:
    """(a grey version of the image whose smaller side is at least `min_side` where the image has it, the
    smaller side of the image itself): JPEGs are decoded straight to grey at 1/2, 1/4 or 1/8 of their size,
    which makes fingerprinting phone photos cheap."""
    buf = read_bytes(path)
    header = read_header(buf, path)
    side = min(header.width, header.height)
    if header.kind == "JPEG":
        factor = next((f for f in (8, 4, 2) if side / f >= min_side), 1)
        if header.pixels / factor**2 > LARGE_PIXELS:
            raise BadImage(f"{path}: {header.pixels / 1e6:.0f} megapixels, too large even at 1/8 of its side")
        flags = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2}
        flags.update({4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8})
        grey = cv2.imdecode(buf, flags[factor])
        if grey is None:
            raise BadImage(f"{path}: not a readable image")
        return grey, side
    return cv2.cvtColor(decode_image(buf, path, header), cv2.COLOR_RGB2GRAY), side


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize (the aspect ratio is not kept); area interpolation when shrinking."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    shrink = img.shape[0] > size or img.shape[1] > size
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def load_resized(path: str, size: int) -> np.ndarray:
    """Read an image file and resize it to size x size (RGB uint8)."""
    return resize(read_image(path), size)


# ----------------------------------------------------------------------------------------------------
# JPEG structure: markers FF xx; segments carry a 2-byte length; after SOS (FF DA) comes entropy-coded
# data, in which FF is followed by 00 (a stuffed byte) or D0-D7 (restart markers); FF D9 ends the image
# ----------------------------------------------------------------------------------------------------
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _segments(buf: np.ndarray):
    """Yield (marker, offset of the marker) of a JPEG's segments, skipping over entropy-coded data; the last
    one yielded is EOI (0xD9) unless the file is cut short or corrupt."""
    n, i = len(buf), 2
    while i + 1 < n:
        if buf[i] != 0xFF:
            return
        marker = int(buf[i + 1])
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        yield marker, i
        if marker == 0xD9:
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        if i + 3 >= n:
            return
        i += 2 + (int(buf[i + 2]) << 8 | int(buf[i + 3]))
        if marker == 0xDA:  # entropy-coded data runs to the next marker that is not stuffing or a restart
            ff = np.flatnonzero(buf[i : n - 1] == 0xFF) + i
            following = buf[ff + 1]
            real = ff[(following != 0x00) & (following != 0xFF) & ((following < 0xD0) | (following > 0xD7))]
            if not len(real):
                return
            i = int(real[0])


def jpeg_frame(buf: np.ndarray) -> tuple[int, int, int, int] | None:
    """(width, height, channels, bits per sample) from a JPEG's frame header (SOF), or None."""
    for marker, at in _segments(buf):
        if marker in _SOF and at + 10 <= len(buf):
            height = int(buf[at + 5]) << 8 | int(buf[at + 6])
            width = int(buf[at + 7]) << 8 | int(buf[at + 8])
            return width, height, int(buf[at + 9]), int(buf[at + 4])
        if marker == 0xDA:
            return None
    return None


def jpeg_size(buf: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, or None."""
    frame = jpeg_frame(buf)
    return frame[:2] if frame else None


def jpeg_end(buf: np.ndarray) -> int | None:
    """The offset just past the end-of-image marker of the JPEG that `buf` starts with, or None if the data
    stops before it (a truncated file). Bytes after it (a Motion Photo's video) are not looked at."""
    for marker, at in _segments(buf):
        if marker == 0xD9:
            return at + 2
    return None
