"""signvision: audit a folder of labelled images, then train, compare and ship CNN classifiers with PyTorch.

The whole job in Python (every name below has a docstring with its arguments and an example):

    import signvision as sv
    data = sv.read_data("../shared/data/sign-digits")            # Zindi, class folders, split folders, CSV, DataFrame
    found = sv.audit(data.root, skip_label_issues=True)           # copies, clips, conflicts, mislabels, leaks
    split, info = sv.split(data, val_fraction=0.33)               # near copies kept on one side; info.leak
    run = sv.train(data, model="lenet", epochs=10, image_size=32) # in memory; out="runs/x" writes a run folder
    run.history, run.summary                                      # per-epoch figures; calibrated, with intervals
    run.evaluate(tta="hflip"); run.evaluate(data="data/test")     # validation, or a labelled test set
    run.predict(data.root).to_csv("submission.csv")               # calibrated probabilities, Zindi's format
    run.save("runs/lenet"); sv.load_run("runs/lenet")

and its pieces, for the course: `ImageDataset` and `make_loader`, `LeNet` and `build_model`, `build_augment`,
`Mixer`/`mixup`/`cutmix`, `TTA`, `train_one_epoch` and `evaluate` (the loop), `fit_temperature`.

Importing signvision loads nothing heavy: each name is imported from its module the first time it is used.
Modules, one concern each (in the order a run meets them): tables, images, cache, dataset, nearcopies,
splits, rundata, task, models, augment, mix, runtime, loop, engine, checkpoint, runfolder, training, run,
crossval, jobs, calibrate, metrics, inference, evaluation, predictions, audit_copies, audit_labels,
audit_page, auditing, report, plots, pages, ablate, export, serve, demo, progress, errors, config, cli.
"""

from __future__ import annotations

import importlib

__version__ = "0.3.0"

# public name -> (module, name in that module)
_EXPORTS = {
    # data
    "read_data": ("tables", "read_data"),
    "DataTable": ("tables", "DataTable"),
    "read_image": ("images", "read_image"),
    "ImageDataset": ("dataset", "ImageDataset"),
    "make_loader": ("dataset", "make_loader"),
    # what is wrong with it
    "audit": ("auditing", "audit"),
    "Audit": ("auditing", "Audit"),
    "AuditConfig": ("config", "AuditConfig"),
    "near_copy_groups": ("nearcopies", "near_copy_groups"),
    "split": ("rundata", "split_data"),
    "SplitInfo": ("splits", "SplitInfo"),
    # models and augmentation
    "LeNet": ("models", "LeNet"),
    "build_model": ("models", "build_model"),
    "list_models": ("models", "available_models"),
    "load_weights": ("models", "load_weights"),
    "build_augment": ("augment", "build_augment"),
    "AugmentPreset": ("augment", "AugmentPreset"),
    "Mixer": ("mix", "Mixer"),
    "mixup": ("mix", "mixup"),
    "cutmix": ("mix", "cutmix"),
    "TTA": ("augment", "TTA"),
    # training
    "TrainConfig": ("config", "TrainConfig"),
    "train": ("run", "train"),
    "Run": ("run", "Run"),
    "load_run": ("run", "load_run"),
    "Task": ("task", "Task"),
    "Runtime": ("runtime", "Runtime"),
    "train_one_epoch": ("loop", "train_one_epoch"),
    "evaluate": ("loop", "evaluate"),
    # figures, calibration, predictions
    "compute_metrics": ("metrics", "compute_metrics"),
    "group_bootstrap": ("metrics", "group_bootstrap"),
    "fit_temperature": ("calibrate", "fit_temperature"),
    "scaled_probs": ("calibrate", "scaled_probs"),
    "evaluate_labelled": ("evaluation", "evaluate_labelled"),
    "Predictions": ("predictions", "Predictions"),
    "compare_runs": ("report", "compare_runs"),
    # errors
    "SignvisionError": ("errors", "SignvisionError"),
    "OptionError": ("errors", "OptionError"),
    "DataError": ("errors", "DataError"),
    "BadImage": ("errors", "BadImage"),
    "MissingError": ("errors", "MissingError"),
    "RunError": ("errors", "RunError"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import a public name from its module on first use (so that `import signvision` answers at once)."""
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(f"signvision.{module}"), attribute)
        globals()[name] = value  # later uses skip this function
        return value
    raise AttributeError(f"module 'signvision' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
