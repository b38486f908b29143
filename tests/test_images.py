"""Decoding image files safely: channels and depths, upright, bounded in memory, and one clear error for
anything that is not an image (a bomb, a FIFO, a loop, a truncated or foreign file)."""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pytest

from signvision.data.images import read_image
from signvision.errors import BadImage


def test_read_image_channels_and_depths(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])
    assert np.array_equal(read_image(tmp_path / "c.png"), rgb)  # BGR on disk -> RGB in memory
    cv2.imwrite(str(tmp_path / "g.png"), rgb[..., 0])
    gray = read_image(tmp_path / "g.png")
    assert gray.shape == (10, 12, 3) and np.array_equal(gray[..., 1], rgb[..., 0])
    rgba = np.dstack([rgb[..., ::-1], np.full((10, 12), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    cv2.imwrite(str(tmp_path / "d.png"), rgb[..., ::-1].astype(np.uint16) * 257)
    assert np.array_equal(read_image(tmp_path / "d.png"), rgb)  # 16-bit scaled back to 8


def test_corrupt_and_truncated_jpeg(tmp_path):
    ok = tmp_path / "ok.jpg"
    cv2.imwrite(str(ok), np.full((20, 20, 3), 128, np.uint8))
    data = ok.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "padded.jpg").write_bytes(data + b"\x00" * 5000)  # zero padding after EOI is fine
    assert read_image(tmp_path / "padded.jpg").shape == (20, 20, 3)
    for name, message in [("trunc.jpg", "truncated"), ("junk.jpg", "not a readable image"), ("empty.jpg", "empty")]:
        with pytest.raises(BadImage, match=message):
            read_image(tmp_path / name)


def test_huge_jpeg_is_decoded_at_reduced_size(tmp_path):
    """Over 16 megapixels, a JPEG is decoded at 1/2, 1/4 or 1/8 of its side (never whole in memory)."""
    from signvision.data.images import LARGE_PIXELS, read_image

    big = np.zeros((4000, 5000, 3), np.uint8)  # 20 megapixels
    big[:, 2500:] = (0, 0, 255)  # right half red (BGR)
    cv2.imwrite(str(tmp_path / "big.jpg"), big)
    img = read_image(tmp_path / "big.jpg")
    assert img.shape == (2000, 2500, 3) and img.shape[0] * img.shape[1] <= LARGE_PIXELS
    assert img[1000, 2000, 0] > 200 and img[1000, 500, 0] < 30  # still RGB, still the same picture


def encoded(img: np.ndarray, fmt: str, orientation: int = 1) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.fromarray(img).save(out, fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_exif_orientation_is_applied_in_every_format(tmp_path, fmt):
    from PIL import Image, ImageOps

    img = np.random.default_rng(0).integers(0, 255, (20, 40, 3), dtype=np.uint8)
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}.{fmt.lower()}"
        path.write_bytes(encoded(img, fmt, orientation))
        upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")).astype(int)
        ours = read_image(path).astype(int)
        assert ours.shape == upright.shape and np.abs(ours - upright).mean() < 3, (fmt, orientation)


def test_a_motion_photo_jpeg_decodes(tmp_path):
    ok, jpeg = cv2.imencode(".jpg", np.full((20, 30, 3), 90, np.uint8))
    video = b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000) + b"\xff\xd8\xff\xd9"  # what phones append
    (tmp_path / "motion.jpg").write_bytes(jpeg.tobytes() + video)
    assert read_image(tmp_path / "motion.jpg").shape == (20, 30, 3)
    (tmp_path / "cut.jpg").write_bytes(jpeg.tobytes()[:-40])
    with pytest.raises(BadImage, match="truncated JPEG"):
        read_image(tmp_path / "cut.jpg")


def test_a_header_without_a_size_is_refused_before_decoding(tmp_path):
    bomb = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8000 +X 8000\n" + b"\x00" * 4096  # 64 megapixels
    (tmp_path / "bomb.jpg").write_bytes(bomb)
    with pytest.raises(BadImage, match="bomb.jpg: not a readable image"):
        read_image(tmp_path / "bomb.jpg")


def test_a_huge_png_is_refused_by_its_header(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)  # 900 megapixels, RGB
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "huge.png").write_bytes(png)
    with pytest.raises(BadImage, match="huge.png: .*megapixels"):
        read_image(tmp_path / "huge.png")
    import warnings

    with warnings.catch_warnings():  # G12: PIL's bomb warning for a 100 MP header does not leak out
        warnings.simplefilter("error")
        header = struct.pack(">IIBBBBB", 10000, 10001, 8, 2, 0, 0, 0)  # over PIL's bomb warning and our limit
        (tmp_path / "100mp.png").write_bytes(png.replace(png[8:33], chunk(b"IHDR", header)))
        with pytest.raises(BadImage, match="100mp.png: 100 megapixels, over the limit of 100"):
            read_image(tmp_path / "100mp.png")  # refused by its header, never decoded by PIL to read its EXIF


def test_a_float_image_of_nan_is_refused_not_given_a_class(tmp_path):
    """G12: a float TIFF holding NaN was cast to undefined bytes (with a RuntimeWarning) and classified."""
    import warnings

    from PIL import Image

    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(tmp_path / "nan.tif")  # a float TIFF (mode F)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BadImage, match="nan.tif: holds NaN or infinite pixels"):
            read_image(tmp_path / "nan.tif")
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "half.tif")
    assert read_image(tmp_path / "half.tif").max() == 128  # a finite float image still reads (0..1 -> 0..255)


def test_what_is_not_a_file_is_no_image(tmp_path):
    os.mkfifo(tmp_path / "fifo.jpg")  # reading it would block for ever
    with pytest.raises(BadImage, match="fifo.jpg: not a regular file"):
        read_image(tmp_path / "fifo.jpg")
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(BadImage, match="dir.jpg: a folder"):
        read_image(tmp_path / "dir.jpg")
    os.symlink(tmp_path / "loop.jpg", tmp_path / "loop.jpg")
    with pytest.raises(BadImage, match="loop.jpg: cannot read it"):
        read_image(tmp_path / "loop.jpg")
