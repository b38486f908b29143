"""`augment_grid`: what an augmentation preset does to a few training images, as one picture
(`signvision show-augment`)."""

from __future__ import annotations

from pathlib import Path

from signvision.errors import OptionError
from signvision.files import refuse_overwrite


def augment_grid(
    data: str | Path,
    augment: str,
    out: str | Path,
    *,
    image_size: int = 96,
    rows: int = 4,
    cols: int = 6,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Each row: one training image, then cols-1 augmented draws of it; `out` a .png file."""
    from signvision.data.images import load_resized
    from signvision.data.tables import read_data
    from signvision.models.augment import build_augment
    from signvision.reports.plots import plot_gallery

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise OptionError("the picture is a PNG file: give a name ending in .png", option="out", value=out)
    refuse_overwrite(out, overwrite)
    transform = build_augment(augment, image_size=image_size, seed=seed)
    table = read_data(data)
    picks = table.train.sample(n=min(rows, len(table.train)), random_state=seed)
    images, captions = [], []
    for _, r in picks.iterrows():
        img = load_resized(r["path"], image_size)
        images.append(img)
        captions.append(f"{r['Label']} (original)")
        for k in range(cols - 1):
            images.append(transform(image=img)["image"] if transform is not None else img)
            captions.append(f"{augment} #{k + 1}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return plot_gallery(images, captions, out, cols=cols, title=f"--augment {augment}")
