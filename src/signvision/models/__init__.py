"""What is trained: the networks, the task they solve, and what their inputs go through.

    lenet     LeNet, written out layer by layer for the course
    factory   build_model (LeNet or any timm backbone with a new head), list_models, load_weights
    task      Task: classes, targets, the loss and the probabilities (bce or ce)
    augment   albumentations presets and test-time augmentation (TTA)
    mix       MixUp and CutMix

Imports only from `data` and the shared modules at the top.
"""
