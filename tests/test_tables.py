"""Reading data sets: the layouts (Zindi, class folders, split folders, any CSV, a DataFrame), and what is
not data (hidden files, signvision's own outputs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import CLASSES, make_zindi, write_images

from signvision.data.dataset import ImageDataset
from signvision.data.tables import read_data, read_labelled, read_unlabelled
from signvision.errors import SignvisionError


def test_zindi_layout(tiny_zindi):
    table = read_data(tiny_zindi)
    assert table.layout == "zindi"
    assert len(table.train) == 36 and len(table.test) == 6
    assert table.classes == sorted(CLASSES)  # slash, space and non-ASCII kept as written
    assert all(Path(p).is_file() for p in table.train["path"])


def test_zindi_extension_any_case(tmp_path):
    root = make_zindi(tmp_path / "z", n_per_class=3)
    first = root / "Images" / "ImageID_0000.jpg"
    first.rename(root / "Images" / "ImageID_0000.JPEG")
    table = read_data(root)
    assert table.train["path"].iloc[0].endswith("ImageID_0000.JPEG")


def test_folder_layout(tmp_path):
    for c in ["cat", "dog house"]:
        write_images(tmp_path / "f" / c, [c] * 4, ["cat", "dog house"])
    table = read_data(tmp_path / "f")
    assert table.layout == "folder"
    assert table.classes == ["cat", "dog house"]
    assert len(table.train) == 8 and table.test is None


def test_csv_layout(tmp_path):
    ids = write_images(tmp_path / "pics", ["a", "b", "a"], ["a", "b"], ext=".png")
    pd.DataFrame({"file": [i + ".png" for i in ids], "y": ["a", "b", "a"]}).to_csv(tmp_path / "any.csv", index=False)
    table = read_data(csv=tmp_path / "any.csv", image_col="file", label_col="y", image_dir=tmp_path / "pics")
    assert table.layout == "csv" and table.classes == ["a", "b"] and len(table.train) == 3


def test_missing_train_csv(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SignvisionError, match="no Train.csv"):
        read_data(tmp_path / "empty")


def test_row_without_image_names_the_row(tiny_zindi):
    (tiny_zindi / "Images" / "ImageID_0004.jpg").unlink()
    with pytest.raises(SignvisionError, match=r"Train.csv row 6: no image for img_IDS='ImageID_0004'"):
        read_data(tiny_zindi)
    dropped: list[str] = []
    table = read_data(tiny_zindi, skip_missing=True, dropped=dropped)
    assert len(table.train) == 35 and "ImageID_0004" in dropped[0]


def test_empty_csv(tiny_zindi):
    (tiny_zindi / "Train.csv").write_text("")
    with pytest.raises(SignvisionError, match="Train.csv: the file is empty"):
        read_data(tiny_zindi)


def test_missing_label_column(tiny_zindi):
    pd.read_csv(tiny_zindi / "Train.csv").rename(columns={"Label": "Class"}).to_csv(
        tiny_zindi / "Train.csv", index=False
    )
    with pytest.raises(SignvisionError, match="no column 'Label'"):
        read_data(tiny_zindi)


def test_unlabelled_returns_ids(tiny_zindi, tmp_path):
    test = read_unlabelled(tiny_zindi)
    ds = ImageDataset(test["path"], 16, ids=test["img_IDS"])
    img, img_id = ds[0]
    assert img.shape == (3, 16, 16) and img_id == test["img_IDS"].iloc[0]
    folder = tmp_path / "flat"
    (folder / "sub").mkdir(parents=True)
    for p in test["path"][:2]:
        shutil.copy(p, folder)
    shutil.copy(test["path"].iloc[0], folder / "sub" / "a.jpg")
    cv2.imwrite(str(folder / "sub" / "a.png"), cv2.imread(test["path"].iloc[0]))  # same stem, another file
    (folder / ".ipynb_checkpoints").mkdir()
    shutil.copy(test["path"].iloc[0], folder / ".ipynb_checkpoints" / "hidden.jpg")
    (folder / "._x.jpg").write_bytes(b"AppleDouble")
    names = [f"{i}.jpg" for i in test["img_IDS"][:2]]
    # found in sub-folders too, each named by its path in the folder; hidden files are not images
    assert list(read_unlabelled(folder)["img_IDS"]) == sorted(names) + ["sub/a.jpg", "sub/a.png"]


def split_folders(root: Path, test_labelled: bool = True) -> Path:
    """DIR/train/<class>/, DIR/valid/<class>/ and DIR/test/ (labelled in class folders, or flat)."""
    for side, n in (("train", 6), ("valid", 3)):
        for c in ("cat", "dog"):
            write_images(root / side / c, [c] * n, ["cat", "dog"], seed=len(side) + n)
    if test_labelled:
        for c in ("cat", "dog"):
            write_images(root / "test" / c, [c] * 2, ["cat", "dog"], seed=9)
    else:
        write_images(root / "test", ["cat", "dog"], ["cat", "dog"], seed=9)
    return root


def test_split_folders_layout_names_its_parts(tmp_path):
    table = read_data(split_folders(tmp_path / "sf"))
    assert table.layout == "split folders" and table.classes == ["cat", "dog"]
    assert len(table.train) == 12 and len(table.val) == 6 and len(table.test) == 4
    assert table.train["img_IDS"].iloc[0] == "train/cat/ImageID_0000.jpg"  # the path in the data folder
    assert set(table.test["Label"]) == {"cat", "dog"}
    assert len(read_labelled(tmp_path / "sf").train) == 4  # the labelled test set
    flat = read_data(split_folders(tmp_path / "flat", test_labelled=False))
    assert "Label" not in flat.test.columns and len(flat.test) == 2
    with pytest.raises(SignvisionError, match="test/ folder holds images without class sub-folders"):
        read_labelled(tmp_path / "flat")
    assert list(read_unlabelled(tmp_path / "flat")["img_IDS"]) == ["ImageID_0000.jpg", "ImageID_0001.jpg"]


def test_a_given_validation_folder_is_the_validation_set(tmp_path):
    from helpers import tiny_config

    from signvision.training.rundata import prepare_run_data

    data = prepare_run_data(tiny_config(split_folders(tmp_path / "sf"), None), leak_check=True)
    val_ids = data.table.train["img_IDS"].iloc[data.rows("val")]
    assert len(val_ids) == 6 and val_ids.str.startswith("valid/").all() and data.info.split_by == "folders"
    assert data.info.leak["val_images"] == 6


def test_hidden_files_and_signvision_outputs_are_not_data(tmp_path):
    root = tmp_path / "f"
    for c in ("cat", "dog"):
        write_images(root / c, [c] * 3, ["cat", "dog"])
    write_images(root / ".ipynb_checkpoints", ["cat"], ["cat"])  # a notebook user's hidden folder
    (root / "cat" / "._ImageID_0000.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (root / "run").mkdir()
    cv2.imwrite(str(root / "run" / "curves.png"), np.zeros((8, 8, 3), np.uint8))  # a run written inside
    (root / "run" / "config.json").write_text("{}")
    table = read_data(root)
    assert table.classes == ["cat", "dog"] and len(table.train) == 6


def test_x_jpg_and_x_png_is_refused_by_name(tmp_path):
    root = make_zindi(tmp_path / "z", n_per_class=3)
    cv2.imwrite(str(root / "Images" / "ImageID_0001.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(
        SignvisionError, match=r"row 3: img_IDS='ImageID_0001' could be any of ImageID_0001.jpg, ImageID_0001.png"
    ):
        read_data(root)


def test_a_folder_or_fifo_named_like_an_image_is_no_image(tmp_path):
    root = make_zindi(tmp_path / "z", n_per_class=3)
    (root / "Images" / "ImageID_0001.jpg").unlink()
    (root / "Images" / "ImageID_0001.jpg").mkdir()
    with pytest.raises(SignvisionError, match="row 3: no image for img_IDS='ImageID_0001'"):
        read_data(root)
    dropped = []
    assert len(read_data(root, skip_missing=True, dropped=dropped).train) == 8 and len(dropped) == 1


def test_a_dataframe_of_paths_and_labels(tmp_path):
    ids = write_images(tmp_path / "pics", ["a", "b", "a"], ["a", "b"])
    frame = pd.DataFrame({"path": [str(tmp_path / "pics" / f"{i}.jpg") for i in ids], "Label": ["a", "b", "a"]})
    table = read_data(frame)
    assert table.layout == "frame" and table.classes == ["a", "b"] and len(table.train) == 3
    with pytest.raises(SignvisionError, match="file not found"):
        read_data(frame.assign(path=frame["path"] + ".gone"))


def test_labelled_data_that_is_not(tmp_path):
    folder = tmp_path / "flat"
    write_images(folder, ["a", "b"], ["a", "b"])
    with pytest.raises(SignvisionError, match="holds images but no labels"):
        read_labelled(folder)


def test_a_class_folder_whose_images_are_elsewhere_is_named(tmp_path):
    from signvision.errors import DataError

    for k, name in enumerate(["five", "six", "seven"]):
        write_images(tmp_path / "data" / name, [name] * 3, ["five", "six", "seven"], seed=k)
    nested = tmp_path / "data" / "five" / "2024-05"
    nested.mkdir()
    for f in list((tmp_path / "data" / "five").glob("*.jpg")):
        f.rename(nested / f.name)
    with pytest.raises(DataError, match="five: its 3 images are in sub-folders"):
        read_data(tmp_path / "data")
    for f in nested.glob("*.jpg"):
        f.rename(tmp_path / "data" / "five" / f.with_suffix(".heic").name)
    with pytest.raises(DataError, match=r"five: no image signvision reads \(\.heic files"):
        read_data(tmp_path / "data")


def test_split_folder_mistakes_name_their_folder(tmp_path):
    import signvision as sv
    from signvision.errors import DataError

    data = split_folders(tmp_path / "sf")
    write_images(data / "test", ["cat"], ["cat", "dog"], seed=20)  # a loose image beside test/'s class folders
    with pytest.raises(DataError, match="lie beside its class folders"):
        read_data(data)
    data = split_folders(tmp_path / "sf2")
    shutil.rmtree(data / "valid" / "dog")  # val/ with one class: its folder is the remedy, not --val-fraction
    with pytest.raises(DataError, match="the val/ folder needs images of two classes") as error:
        sv.train(data, model="lenet", epochs=1, image_size=16, device="cpu", log=lambda *_: None)
    assert "val_fraction" not in str(error.value)
    data = split_folders(tmp_path / "sf3")
    for f in (data / "test").rglob("*.jpg"):
        f.unlink()
    with pytest.raises(DataError, match="test/ folder holds no images"):
        read_labelled(data)
