"""The page of a `submit` job (WORK/submit.html): each stage, its time, the out-of-fold figures of the submission
it wrote with their intervals over groups, the paired gain of each ensemble over its best single stage, and a
picture of log loss against the time spent."""

from __future__ import annotations

import io
from pathlib import Path

from signvision.reports.html import escape, img_tag, write_page


def time_plot(stages: list[dict]) -> bytes:
    """Out-of-fold log loss (95% interval over groups) of each stage's submission against the minutes spent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes, spent = [], 0.0
    for row in stages:
        spent += row["seconds"] / 60
        minutes.append(spent)
    loss = [row["log_loss"] for row in stages]
    below = [row["log_loss"] - row["log_loss_ci"][0] for row in stages]
    above = [row["log_loss_ci"][1] - row["log_loss"] for row in stages]
    fig, ax = plt.subplots(figsize=(5.5, 3.2), dpi=100)
    ax.errorbar(minutes, loss, yerr=[below, above], marker="o", capsize=4)
    for x, y, row in zip(minutes, loss, stages):
        ax.annotate(row["stage"], (x, y), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel("minutes of the job")
    ax.set_ylabel("out-of-fold log loss")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def stage_table(stages: list[dict]) -> str:
    """One row per stage: what it trained, its time, and the figures of the submission it wrote."""
    rows = []
    for row in stages:
        gain = row.get("gain_over_best_stage")
        paired = (
            f"{gain['log_loss']:+.4f} [{gain['log_loss_ci'][0]:+.4f}, {gain['log_loss_ci'][1]:+.4f}]"
            if gain and gain.get("log_loss_ci")
            else ""
        )
        rows.append(
            f"<tr><td class=l>{escape(row['stage'])}</td><td class=l>{escape(row['model'])}</td>"
            f"<td>{escape(row.get('epochs') or '')}</td><td>{row['seconds'] / 60:.1f}</td>"
            f"<td class=l>{escape(row['predicts_with'])}</td>"
            f"<td>{row['log_loss']:.4f} [{row['log_loss_ci'][0]:.4f}, {row['log_loss_ci'][1]:.4f}]</td>"
            f"<td>{row['accuracy']:.4f} [{row['accuracy_ci'][0]:.4f}, {row['accuracy_ci'][1]:.4f}]</td>"
            f"<td>{escape(paired)}</td></tr>"
        )
    head = (
        "<tr><th>stage</th><th>model</th><th>epochs</th><th>minutes</th><th>submission from</th>"
        "<th>out-of-fold log loss [95%]</th><th>accuracy [95%]</th><th>paired gain over its best stage</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def test_images_fitted(stages: list[dict]) -> str:
    """What the job fitted on the test images, in words: nothing, or the second round's pseudo-labels."""
    second = [row for row in stages if "pseudo_labels" in row]
    if not second:
        return "Nothing was fitted on the test images."
    row = second[0]
    return (
        f"The second round ({row['stage']}) trained on {row['pseudo_labels']} of the {row['test_images']} test "
        "images, labelled with the guesses of the stages before it where they were sure (pseudo-labels; no test "
        "label was read); from then on it predicts in place of the stage it trained again. Its out-of-fold "
        "figures are still on images a person labelled, and a little optimistic: the first round saw those images "
        "when it made the guesses."
    )


def write_submit_page(path: Path, record: dict) -> Path:
    """WORK/submit.html: the job's stages, their figures and a picture, in one self-contained file."""
    stages = record["stages"]
    used = f"{record['seconds'] / 60:.1f} min of a {record['budget_seconds'] / 60:.1f} min budget"
    body = [f"<p>{escape(used)}; submission: <code>{escape(record.get('submission', '(none)'))}</code></p>"]
    if stages:
        body += [stage_table(stages), img_tag(time_plot(stages), "log loss against time")]
    distilled = record.get("distilled")
    if distilled:
        lo, hi = distilled["log_loss_ci"]
        body.append(
            f"<p>One network to serve and export: <code>{escape(distilled['folder'])}</code>, a LeNet trained on the "
            f"out-of-fold probabilities of <code>{escape(distilled['teacher'])}</code> in "
            f"{distilled['seconds'] / 60:.1f} min; validation (against the labels) log loss "
            f"{distilled['log_loss']:.4f} [{lo:.4f}, {hi:.4f}], accuracy {distilled['accuracy']:.4f}. The submission "
            "above stays the ensemble's.</p>"
        )
    body.append(
        "<p>Every figure is out of fold: each image scored by models that never trained on it, copies and clips "
        "kept in one fold; the intervals are over those groups. A paired gain is the ensemble's log loss minus "
        f"its best single stage's on the same images (negative: better). {test_images_fitted(stages)} "
        "A new capture session usually scores worse than out of fold.</p>"
    )
    return write_page(path, "signvision submit", "".join(body))
