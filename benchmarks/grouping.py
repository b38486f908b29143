"""How fast is the default near-copy grouping that every split runs, and what does it find?

Times `signvision.split` (read every file, fingerprint it, find and join near copies, split,
check the split's leaks) on image folders, and prints the figures docs/benchmarks.md quotes:

    python benchmarks/sessions.py --out /tmp/sessions6k --photos 60 --frames 10     # 6,000 real frames
    python benchmarks/grouping.py /tmp/sessions6k signvision-demo/data-fashion-mnist

For a folder made by benchmarks/sessions.py it also says how many clips the grouping kept whole (every frame
of the clip in one group) and how many groups mix frames of different clips.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path


def clip_figures(split, table) -> dict:
    """For frames named <photo>_f<k>: clips kept whole, and groups that hold more than one clip."""
    ids = table.train["img_IDS"].str.rsplit("_f", n=1).str[0]
    groups = split["group"].where(split["group"] != "", "solo:" + split["img_IDS"])
    whole = (groups.groupby(ids.values).nunique() == 1).mean()
    mixed = (ids.groupby(groups.values).nunique() > 1).sum()
    return {"clips": int(ids.nunique()), "clips_whole": float(whole), "groups_mixing_clips": int(mixed)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", help="data folders (any layout signvision reads)")
    args = p.parse_args(argv)
    import os

    os.environ.setdefault("SIGNVISION_PROGRESS", "0")
    from signvision.data.tables import read_data
    from signvision.grouping.nearcopies import fingerprint_images, group_near_copies
    from signvision.grouping.splits import split as split_data

    print(
        "| data | images | read + fingerprint | group | whole split + leak check | grouped images | groups | largest "
        "| val with a near copy in train | clips kept whole |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in map(Path, args.folders):
        table = read_data(folder)
        started = time.perf_counter()
        fp = fingerprint_images(table.train["path"].tolist())
        fingerprinted = time.perf_counter()
        group_near_copies(fp)
        grouped = time.perf_counter()
        began = time.perf_counter()
        split, info = split_data(folder)
        total = time.perf_counter() - began
        clips = clip_figures(split, table) if (folder / "sessions.json").is_file() else None
        g = info.grouping
        print(
            f"| {folder.name} | {len(table.train):,} | {fingerprinted - started:.1f} s "
            f"| {grouped - fingerprinted:.1f} s "
            f"| {total:.1f} s | {g['grouped_images']:,} | {g['groups']:,} | {g['largest_group']} "
            f"| {info.leak['val_near_copy_share']:.1%} | "
            + (
                f"{clips['clips_whole']:.1%} of {clips['clips']} ({clips['groups_mixing_clips']} groups mix clips)"
                if clips
                else ""
            )
            + " |",
            flush=True,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\npeak memory of this process: {peak:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
