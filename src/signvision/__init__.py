"""signvision: audit a folder of labelled images, then train, compare and ship CNN classifiers.

Modules, one concern each (in the order a run meets them):
    cli        the `signvision` command (imports nothing heavy; each sub-command imports what it uses)
    config     TrainConfig and AuditConfig: every setting with its default
    data       read the three layouts (Zindi, class folders, any CSV), decode images, Dataset, loaders
    split      the seeded, stratified (and group-aware) validation split
    rundata    a run's images: table + audit + decoded-image cache + split
    task       classes -> outputs, targets, the loss, logits -> probabilities
    models     LeNet written out, any timm backbone with a new head, loading local weights
    augment    albumentations presets and test-time augmentation
    mix        MixUp and CutMix, written here
    runtime    device, precision, processes, threads, progress bars
    loop       train_one_epoch / predict / evaluate
    checkpoint plain-dict checkpoints, written atomically, read safely
    train      fit: one run as named phases
    crossval   --folds K: k-fold runs, out-of-fold predictions, the fold ensemble
    calibrate  temperature scaling, expected calibration error
    metrics    ROC AUC, log loss, accuracy, ECE
    inference  load a finished run, evaluate it, predict new images
    audit      duplicates, conflicting labels, likely mislabels, the HTML audit page
    report     run reports, comparing runs; plots: every figure; pages: the HTML skeleton
    ablate     grids of runs over seeds: which change beats the noise
    export     ONNX export
    serve      a web page and an HTTP API over a trained run
"""

__version__ = "0.2.0"
