"""The page and the lines of a labelled set a run was scored on (`evaluate --data`): evaluation.html beside its
evaluation.json, and the few lines `evaluate` prints, with the leak warning when near copies carry their label.
"""

from __future__ import annotations

from pathlib import Path

from signvision.files import write_json
from signvision.reports.html import escape, write_page
from signvision.reports.run_report import ScoredSet, scored_sections

COPIES_AGREE = 0.9  # near copies whose labels agree this often are copies (memory), not look-alikes


def write_evaluation(out: Path, result: dict, scored: ScoredSet) -> Path:
    """evaluation.json, the figures and evaluation.html of a scored set, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    sections, _ = scored_sections(out, scored, what="scored images")
    write_json(out / "evaluation.json", result)
    title = f"signvision: {Path(result['run']).name} on {Path(result['data']).name}"
    return write_page(out / "evaluation.html", title, page_head(result) + "".join(sections))


def describe_labelled(result: dict) -> str:
    """The figures of a scored set in a few lines."""

    def ci(key):
        interval = result.get(f"{key}_ci")
        return f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""

    lines = [
        f"{result['images']} labelled images of {result['data']} ({result['groups']} groups of near copies)"
        + (f", TTA {result['tta']}" if result["tta"] != "none" else ""),
        f"accuracy {result['accuracy']:.4f}{ci('accuracy')}  log loss {result['log_loss']:.4f}{ci('log_loss')}  "
        f"ROC AUC {result['roc_auc']:.4f}  ECE {result['ece']:.4f}   (95% intervals over groups)",
    ]
    share, agree = result.get("near_copy_share"), result.get("copy_label_agreement")
    if share:
        memory = f"; memory baseline (the nearest training image's label) {result['memory_accuracy']:.3f}"
        if agree is not None and agree >= COPIES_AGREE:
            lines.append(
                f"warning: {share:.1%} of these images have a near copy among the run's training images, and those "
                f"copies carry the same label {agree:.0%} of the time: their score partly measures memory{memory}"
            )
        else:
            lines.append(
                f"{share:.1%} of these images look like a training image at 16x16, but those share their label only "
                f"{agree:.0%} of the time: look-alikes, not copies{memory}"
            )
    return "\n".join(lines)


def page_head(result: dict) -> str:
    """The opening paragraph of evaluation.html."""
    share = result.get("near_copy_share")
    leak = f" {share:.1%} of them have a near copy among the run's training images." if share is not None else ""
    return (
        f"<p>{result['images']} labelled images ({escape(result['layout'])} layout), "
        f"{result['groups']} groups of near copies; 95% intervals are taken over groups.{escape(leak)}</p>"
        f"<pre>{escape(describe_labelled(result))}</pre>"
    )
