"""The HTML pages signvision writes (report.html, evaluation.html, audit.html, the notebook cards): one skeleton,
images embedded as base64 so that a page is one file that opens offline, one thumbnailer, and every text from
the data escaped."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from signvision.files import atomic_write

BASE_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}img{max-width:100%}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}.l{text-align:left}pre{background:#f6f6f6;padding:1em;overflow:auto}"
    ".warn{background:#fff4e0;border:1px solid #e0a040;padding:6px 10px}"
)


def escape(text) -> str:
    """HTML-escape any value shown on a page."""
    return html.escape(str(text))


def data_uri(data: bytes, mime: str) -> str:
    """Bytes as a data: URI, for images embedded in a page."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def img_tag(data: bytes, alt: str, mime: str = "image/png", **attrs) -> str:
    """An <img> holding the image bytes themselves."""
    extra = "".join(f' {k}="{escape(v)}"' for k, v in attrs.items())
    return f'<img alt="{escape(alt)}" src="{data_uri(data, mime)}"{extra}>'


def png_tag(path: Path, alt: str) -> str:
    """An <img> holding a PNG file's bytes."""
    return img_tag(Path(path).read_bytes(), alt)


def page(title: str, body: str, style: str = "") -> str:
    """A whole HTML document: `body` is HTML already escaped by its maker; the title is escaped here."""
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{BASE_STYLE}{style}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def write_page(path: Path, title: str, body: str, style: str = "") -> Path:
    """Write a whole page (see `page`) to `path`, atomically (an earlier page stays whole until the new one is)."""
    with atomic_write(path, encoding="utf-8") as f:
        f.write(page(title, body, style))
    return path


def thumbnail_tag(path: str | None, array=None, size: int = 64, alt: str = "image") -> str:
    """An image file (or an RGB array) as an embedded JPEG `<img>` of `size` pixels a side; an image that
    cannot be read shows as a grey "unreadable" box."""
    import cv2

    from signvision.data.images import read_image, resize

    try:
        img = resize(array if array is not None else read_image(path), size)
    except Exception:
        return f'<div class="broken" style="width:{size}px;height:{size}px;background:#eee">unreadable</div>'
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    return img_tag(buf.tobytes(), alt, "image/jpeg", width=size, height=size) if ok else ""
