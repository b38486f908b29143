"""audit.html: one page, thumbnails embedded (it opens offline): the summary, class balance, image sizes,
broken files, each duplicate group side by side, each video-like sequence, and each suspect beside typical
images of its given and its suggested class. (`cards.audit_card` is the same findings in a notebook, shorter.)"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from signvision.grouping.verify import VIDEO_FRAMES
from signvision.reports.html import escape, thumbnail_tag, write_page

SUMMARY_KEYS = (
    "images",
    "train_images",
    "test_images",
    "broken_images",
    "exact_duplicate_groups",
    "near_duplicate_groups",
    "images_in_duplicate_groups",
    "largest_group",
    "groups_of_many_classes",
    "group_sizes",
    "video_like_sequences",
    "images_in_video_like_sequences",
    "largest_sequence",
    "sequences_of_many_classes",
    "conflicting_groups",
    "label_issues",
    "mislabel_model_accuracy",
    "leaked_test_images",
    "clean_images",
    "seconds",
)
STYLE = (
    ".bar{display:inline-block;height:10px;background:#4a8}"
    ".row{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}figure{margin:0;font-size:11px;"
    "width:100px;word-break:break-all}.group,.issue{border:1px solid #ccc;margin:8px 0;padding:6px}"
    ".group{display:inline-block;vertical-align:top;margin:4px}.conflict{border-color:#c33;background:#fff4f4}"
    ".sep{width:24px}.broken{width:96px;height:96px;background:#eee}"
)


def _figure(path: str, caption: str) -> str:
    return f"<figure>{thumbnail_tag(path, size=96, alt=Path(path).name)}<figcaption>{caption}</figcaption></figure>"


def _member_figures(members: pd.DataFrame, by_id: pd.DataFrame, limit: int | None = None) -> str:
    rows = members if limit is None else members.head(limit)
    return "".join(
        _figure(by_id.loc[r.img_IDS, "path"], f"{escape(r.img_IDS)}<br>{escape(r.Label) if r.Label else '(test)'}")
        for r in rows.itertuples()
    )


def summary_section(summary: dict, broken: list) -> str:
    """The summary table, class balance, image sizes and broken files."""
    parts = ["<h2>Summary</h2><table>"]
    parts += [
        f"<tr><th>{escape(k.replace('_', ' '))}</th><td>{escape(str(summary[k]))}</td></tr>" for k in SUMMARY_KEYS
    ]
    parts.append("</table><h2>Class balance (training images)</h2><table>")
    total = max(1, sum(summary["class_balance"].values()))
    for label, count in summary["class_balance"].items():
        bar = f'<span class="bar" style="width:{300 * count / total:.0f}px"></span>'
        parts.append(f"<tr><th>{escape(label)}</th><td>{count}</td><td class=l>{bar}</td></tr>")
    parts.append(f"</table><h2>Image sizes</h2><pre>{escape(json.dumps(summary['image_sizes'], indent=1))}</pre>")
    parts.append(f"<h2>Broken files ({len(broken)})</h2><ul>")
    parts += [f"<li>{escape(str(i))} ({escape(s)}): {escape(str(m))}</li>" for i, s, m in broken[:500]]
    return "".join(parts) + "</ul>"


def groups_section(dups: pd.DataFrame, by_id: pd.DataFrame, conflicts: set, leaks: set, max_groups: int) -> str:
    """Every duplicate group side by side, conflicts and leaks first."""
    groups = list(dups.dropna(subset=["group"]).groupby("group"))
    groups.sort(key=lambda t: (t[0] not in conflicts, t[0] not in leaks, t[0]))
    parts = [
        f"<h2>Duplicate groups ({len(groups)}; conflicts and leaks first)</h2><p>Every member of a group is a verified "
        "copy of its first image (same picture after re-encoding, resizing, brightness, a crop, or a zoom of up to "
        "1.3x with a shift; the subject must agree tile by tile, not just the background). A group whose images "
        "carry more than two labels is marked <b>MANY CLASSES: likely false</b>; look before you drop it.</p>"
    ]
    for g, members in groups[:max_groups]:
        many = members.loc[members["set"] == "train", "Label"].nunique() > 2
        tags = [members["kind"].iloc[0]] + (["CONFLICT"] if g in conflicts else []) + (["LEAK"] if g in leaks else [])
        tags += ["MANY CLASSES: likely false"] if many else []
        parts.append(
            f'<div class="{"group conflict" if g in conflicts else "group"}"><b>group {g}</b> ({len(members)} images) '
            f'{escape(", ".join(tags))}<div class="row">{_member_figures(members, by_id)}</div></div>'
        )
    return "".join(parts)


def sequences_section(dups: pd.DataFrame, by_id: pd.DataFrame, summary: dict) -> str:
    """Video-like sequences of near-identical frames, the largest first."""
    sequences = sorted(dups.groupby("sequence"), key=lambda t: -len(t[1]))
    video = [(k, m) for k, m in sequences if len(m) >= VIDEO_FRAMES]
    parts = [f"<h2>Sequences of near-identical frames ({len(video)} of {VIDEO_FRAMES} or more images)</h2>"]
    if video:
        parts.append(
            f'<p class="warn">{summary["images_in_video_like_sequences"]} images are frames of '
            f"{len(video)} video-like sequences (consecutive frames are near copies of each other; the largest "
            f"holds {summary['largest_sequence']}). A random split puts neighbouring frames on both sides and "
            "inflates validation scores: every split keeps near copies together by default, and "
            "<code>--audit</code> adds these sequences.</p>"
        )
    for k, members in video[:20]:
        labels = members.loc[members["set"] == "train", "Label"]
        tag = " <b>MANY CLASSES: likely false</b>" if labels.nunique() > 2 else ""
        more = f"<p>... and {len(members) - 12} more</p>" if len(members) > 12 else ""
        parts.append(
            f'<div class="issue"><b>sequence {k}</b>: {len(members)} images, labels '
            f'{escape(", ".join(sorted(labels.unique())))}{tag}<div class="row">{_member_figures(members, by_id, 12)}'
            f"</div>{more}</div>"
        )
    return "".join(parts)


def suspects_section(issues: pd.DataFrame, by_id: pd.DataFrame, summary: dict, max_issues: int) -> str:
    """Each likely mislabelled image beside typical images of its given and its suggested class."""
    suspects = issues[issues["is_issue"]] if len(issues) else issues
    parts = [f"<h2>Likely mislabelled ({len(suspects)}), most suspect first</h2>"]
    if summary.get("mislabel_model_accuracy") is not None:
        weak = summary.get("mislabel_model_weak")
        text = (
            f"The out-of-fold model that flags these is right on {summary['mislabel_model_accuracy']:.1%} of the "
            "training images."
            + (
                " That is too weak for its flags to be findings: most of them are images the model gets wrong, "
                "not wrong labels. Look at them; do not drop them with --drop-suspects."
                if weak
                else ""
            )
        )
        parts.append(f'<p class="{"warn" if weak else ""}">{text}</p>')
    typical = {}
    if len(issues):
        confident = issues[~issues["is_issue"]].sort_values("score")
        typical = {label: rows["img_IDS"].head(3).tolist() for label, rows in confident.groupby("Label")}
    for r in suspects.head(max_issues).itertuples():
        given = "".join(_figure(by_id.loc[i, "path"], f"typical {escape(r.Label)}") for i in typical.get(r.Label, []))
        sugg = "".join(
            _figure(by_id.loc[i, "path"], f"typical {escape(r.suggested)}") for i in typical.get(r.suggested, [])
        )
        suspect = _figure(by_id.loc[r.img_IDS, "path"], f"<b>{escape(r.img_IDS)}</b>")
        parts.append(
            f'<div class="issue"><div class="row">{suspect}'
            f"<div><p>given <b>{escape(r.Label)}</b>, suggested <b>{escape(r.suggested)}</b>, score {r.score:.3f}</p>"
            f'<div class="row">{given}<span class="sep"></span>{sugg}</div></div></div></div>'
        )
    return "".join(parts)


def write_html(path: Path, audit, max_groups: int = 200, max_issues: int = 100) -> Path:
    """audit.html of an Audit: summary, class balance, sizes, broken files, groups, sequences, suspects."""
    by_id = audit.images.set_index("img_IDS")
    body = (
        summary_section(audit.summary, audit.broken_list)
        + groups_section(audit.duplicates, by_id, audit.conflicts, audit.leaks, max_groups)
        + sequences_section(audit.duplicates, by_id, audit.summary)
        + suspects_section(audit.label_issues, by_id, audit.summary, max_issues)
    )
    return write_page(path, f"signvision audit of {audit.summary['data']}", body, STYLE)
