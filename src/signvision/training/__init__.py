"""A config -> trained, calibrated weights (no HTML here).

    setup       prepare_training: the data, the model, the loaders, the state; describe_run
    summary     summary.json of a run, a cross-validated run or an ensemble: one builder
    rundata     a run's images: the table, the audit, the cache, the split, the leak check (and `sv.split`)
    trainer     TrainingState, the Recorder, train_epochs, validate_best
    loop        train_one_epoch and evaluate_loader: one pass over a loader
    folder      the run folder on disk: its files, one writer at a time, FolderRecorder
    checkpoint  best.pt / last.pt as plain dicts, written atomically, read safely
    runtime     device, AMP, DDP
    calibrate   temperature scaling, reliability
    metrics     ROC AUC, log loss, accuracy, ECE; the bootstrap over groups

Imports only from `grouping`, `models`, `data` and the shared modules.
"""
