"""How signvision's objects show themselves in a notebook (`_repr_html_`): a Run, Predictions and an Audit."""

from __future__ import annotations

from signvision.reports.audit_report import STYLE, _member_figures
from signvision.reports.html import escape, img_tag, thumbnail_tag


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
    rows = [_figure_row("model", f"{run.model_name}, {len(run.classes)} classes, {where}")]
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
        rows.append(f"<tr><td>{thumbnail_tag(path, array)}</td><td class=l>{name}</td><td class=l>{bars}</td></tr>")
    more = f"<p>... and {len(top) - limit} more</p>" if len(top) > limit else ""
    style = "<style>.bar{display:inline-block;height:9px;background:#4a8}</style>"
    return f"{style}<div><b>{len(predictions)} predictions</b><table>{''.join(rows)}</table>{more}</div>"


def audit_card(audit, max_groups: int = 12) -> str:
    """The audit in a notebook: its counts, and the largest groups of copies as thumbnails."""
    s = audit.summary
    rows = "".join(
        f"<tr><th class=l>{escape(k.replace('_', ' '))}</th><td>{escape(str(s[k]))}</td></tr>"
        for k in (
            "images",
            "broken_images",
            "images_in_duplicate_groups",
            "conflicting_groups",
            "video_like_sequences",
            "label_issues",
            "leaked_test_images",
            "clean_images",
        )
    )
    by_id = audit.images.set_index("img_IDS")
    groups = sorted(audit.duplicates.dropna(subset=["group"]).groupby("group"), key=lambda t: -len(t[1]))
    cards = "".join(
        f'<div class="group"><b>group {g}</b> ({len(m)}){" CONFLICT" if g in audit.conflicts else ""}'
        f'<div class="row">{_member_figures(m, by_id, 6)}</div></div>'
        for g, m in groups[:max_groups]
    )
    more = f"<p>... {len(groups) - max_groups} more groups in audit.html</p>" if len(groups) > max_groups else ""
    return f"<style>{STYLE}</style><div><b>signvision audit</b><table>{rows}</table>{cards}{more}</div>"
