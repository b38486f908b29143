"""The HTML pages signvision writes (report.html, audit.html): one skeleton, images embedded as base64
so that a page is one file that opens offline, and every text from the data escaped."""

from __future__ import annotations

import base64
import html
from pathlib import Path

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
    """Write a whole page (see `page`) to `path`."""
    path.write_text(page(title, body, style), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------
# Cards: how signvision's objects show themselves in a notebook (`_repr_html_`)
# ----------------------------------------------------------------------------------------------------
def _png_bytes(draw, *args) -> bytes:
    """A picture from one of plots.py's functions, as PNG bytes (no file)."""
    from io import BytesIO

    buffer = BytesIO()
    draw(*args, buffer)
    return buffer.getvalue()


def _figure_row(label: str, value) -> str:
    return f"<tr><th class=l>{escape(label)}</th><td>{escape(value)}</td></tr>"


def run_card(run) -> str:
    """A run: its validation figures with their intervals, what the split leaks, and its learning curves."""
    from signvision.reports.plots import plot_curves

    s = run.summary
    where = f"folder {run.folder}" if run.folder else "in memory"
    rows = [_figure_row("model", f"{run.cfg.model}, {len(run.classes)} classes, {where}")]
    for key in ("accuracy", "log_loss"):
        value, ci = s.get(f"val_{key}"), s.get(f"val_{key}_ci")
        if value is not None:
            shown = f"{value:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}] over {s['val_groups']} groups" if ci else "")
            rows.append(_figure_row(f"validation {key.replace('_', ' ')}", shown))
    if s.get("val_roc_auc") is not None:
        rows.append(_figure_row("validation ROC AUC", f"{s['val_roc_auc']:.4f}"))
    if s.get("val_near_copy_share") is not None:
        rows.append(_figure_row("validation images with a near copy in training", f"{s['val_near_copy_share']:.1%}"))
        rows.append(_figure_row("memory baseline (1-nearest-neighbour accuracy)", f"{s['memory_accuracy']:.4f}"))
    warn = (
        '<p class="warn">This validation figure measures memory (see the leak check).</p>'
        if s.get("measures_memory")
        else ""
    )
    curves = ""
    history = run.history
    if len(history) and "val_loss" in history.columns and history["val_loss"].notna().any():
        curves = img_tag(_png_bytes(plot_curves, history), "learning curves", width="720")
    return f"<div><b>signvision run</b>{warn}<table>{''.join(rows)}</table>{curves}</div>"


def _thumbnail(path: str | None, array=None, size: int = 64) -> str:
    import cv2

    from signvision.data.images import read_image, resize

    try:
        img = resize(array if array is not None else read_image(path), size)
    except Exception:
        return ""
    ok, buf = cv2.imencode(".jpg", img[..., ::-1])
    return img_tag(buf.tobytes(), "image", "image/jpeg", width=size, height=size) if ok else ""


def predictions_card(predictions, limit: int = 24) -> str:
    """Each image (up to `limit`) with its three most probable classes as bars."""
    top = predictions.top(3)
    rows = []
    for i in range(min(limit, len(top))):
        path = predictions.paths[i] if predictions.paths else None
        array = predictions.arrays[i] if predictions.arrays else None
        bars = "".join(
            f'<div><span class="bar" style="width:{120 * top[f"p_{j}"].iloc[i]:.0f}px"></span> '
            f"{escape(top[f'class_{j}'].iloc[i])} {top[f'p_{j}'].iloc[i]:.3f}</div>"
            for j in range(1, 4)
            if f"class_{j}" in top.columns
        )
        name = escape(top["img_IDS"].iloc[i])
        rows.append(f"<tr><td>{_thumbnail(path, array)}</td><td class=l>{name}</td><td class=l>{bars}</td></tr>")
    more = f"<p>... and {len(top) - limit} more</p>" if len(top) > limit else ""
    style = "<style>.bar{display:inline-block;height:9px;background:#4a8}</style>"
    return f"{style}<div><b>{len(predictions)} predictions</b><table>{''.join(rows)}</table>{more}</div>"
