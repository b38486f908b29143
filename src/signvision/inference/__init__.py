"""Using a trained run: its models, their predictions, their scores.

    members   RunModel, load_run_model, load_members (one model, or one per fold), ensemble_probs
    evaluate  one scoring engine: a run's validation images, a labelled test set, fold ensembles
    predict   predict_images, Predictions and the one submission writer
    export    ONNX with the calibration inside
    serve     the web page and HTTP API (batcher: the micro-batching behind it)

Imports only from `reports`, `training` and the layers beneath.
"""
