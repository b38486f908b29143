"""A run, in memory or in a folder: the one orchestrator under the Python API and the command line.

    run       Run, train, load_run: train, calibrate, score, report; record in memory or into a folder
    save      the run folder of a run trained in memory
    crossval  --folds: one run per fold and the out-of-fold ensemble
    jobs      resumable multi-run folders (folds, ablations)
    ablate    settings x seeds, paired intervals

Imports from every layer beneath it (inference, auditing, reports, training, ...), never from `cli`.
"""
