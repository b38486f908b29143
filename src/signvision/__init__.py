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
The package is folders by concern that form layers; each imports only from the ones above it in this list:

    errors, files, config, progress, logs   shared: the exception tree, safe writes, the settings, progress bars,
                                            where progress lines go (Python logging)
    data/       files -> tables -> decoded images -> batches
    models/     LeNet and timm backbones, the task (loss, probabilities), augmentation, MixUp/CutMix
    grouping/   near copies and clips, splits that keep them on one side, the leak check
    training/   a config -> trained, calibrated weights (the loop, the trainer, the run folder, checkpoints)
    reports/    pages and pictures of the scores computed beneath them
    inference/  a trained run's models: scoring (validation, out of fold, labelled sets), predictions, export, serve
    auditing/   sv.audit
    runs/       Run: the one orchestrator of a run, in memory or in a folder; folds, ablations
    cli/        the `signvision` command, a thin layer over the API
"""

from __future__ import annotations

import importlib

__version__ = "0.4.0"

# public name -> (module, name in that module)
_EXPORTS = {
    # data
    "read_data": ("data.tables", "read_data"),
    "DataTable": ("data.tables", "DataTable"),
    "read_image": ("data.images", "read_image"),
    "ImageDataset": ("data.dataset", "ImageDataset"),
    "make_loader": ("data.dataset", "make_loader"),
    # what is wrong with it
    "audit": ("auditing.audit", "audit"),
    "Audit": ("auditing.audit", "Audit"),
    "AuditConfig": ("config", "AuditConfig"),
    "near_copy_groups": ("grouping.nearcopies", "near_copy_groups"),
    "split": ("grouping.splits", "split"),
    "Split": ("grouping.splits", "Split"),
    "SplitInfo": ("grouping.splits", "SplitInfo"),
    # models and augmentation
    "LeNet": ("models.lenet", "LeNet"),
    "build_model": ("models.factory", "build_model"),
    "list_models": ("models.factory", "available_models"),
    "load_weights": ("models.factory", "load_weights"),
    "build_augment": ("models.augment", "build_augment"),
    "AugmentPreset": ("models.augment", "AugmentPreset"),
    "Mixer": ("models.mix", "Mixer"),
    "mixup": ("models.mix", "mixup"),
    "cutmix": ("models.mix", "cutmix"),
    "TTA": ("models.augment", "TTA"),
    # training
    "TrainConfig": ("config", "TrainConfig"),
    "train": ("runs.api", "train"),
    "ensemble": ("runs.api", "ensemble"),
    "distill": ("runs.api", "distill"),
    "submit": ("runs.submit", "submit"),
    "lr_find": ("runs.api", "lr_find"),
    "Run": ("runs.run", "Run"),
    "load_run": ("runs.run", "load_run"),
    "Task": ("models.task", "Task"),
    "Runtime": ("training.runtime", "Runtime"),
    "train_one_epoch": ("training.loop", "train_one_epoch"),
    "evaluate_loader": ("training.loop", "evaluate_loader"),
    "predict_batches": ("training.loop", "predict_batches"),
    # figures, calibration, predictions
    "compute_metrics": ("training.metrics", "compute_metrics"),
    "group_bootstrap": ("training.metrics", "group_bootstrap"),
    "fit_temperature": ("training.calibrate", "fit_temperature"),
    "scaled_probs": ("models.probs", "scaled_probs"),
    "evaluate_labelled": ("runs.api", "evaluate_labelled"),
    "Predictions": ("inference.predict", "Predictions"),
    "pseudo_labels": ("inference.pseudo", "pseudo_labels"),
    "compare_runs": ("reports.compare", "compare_runs"),
    # errors
    "SignvisionError": ("errors", "SignvisionError"),
    "OptionError": ("errors", "OptionError"),
    "DataError": ("errors", "DataError"),
    "BadImage": ("errors", "BadImage"),
    "MissingError": ("errors", "MissingError"),
    "RunError": ("errors", "RunError"),
}

# names of earlier versions, still answered (not listed): the loop's `evaluate` is now `evaluate_loader`, named
# apart from `Run.evaluate`
_ALIASES = {"evaluate": "evaluate_loader"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import a public name from its module on first use (so that `import signvision` answers at once)."""
    if name in _EXPORTS or name in _ALIASES:
        module, attribute = _EXPORTS[_ALIASES.get(name, name)]
        value = getattr(importlib.import_module(f"signvision.{module}"), attribute)
        globals()[name] = value  # later uses skip this function
        return value
    raise AttributeError(f"module 'signvision' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
