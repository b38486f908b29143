"""signvision: audit a folder of labelled images, then train, compare and ship CNN classifiers.

Modules, one concern each:
    data     read the three layouts (Zindi, class folders, any CSV), decode images, Dataset, loaders
    split    the seeded, stratified (and group-aware) validation split
    models   LeNet written out, any timm backbone with a new head, loading local weights
    augment  albumentations presets and test-time augmentation
    mix      MixUp and CutMix, written here
    metrics  ROC AUC, log loss, accuracy
    engine   train_one_epoch / evaluate / fit, checkpoints, predict
    audit    duplicates, conflicting labels, likely mislabels, the HTML audit page
    report   run reports, comparing runs; ablate: grids of runs over seeds
    cli      the `signvision` command
"""

__version__ = "0.1.0"
