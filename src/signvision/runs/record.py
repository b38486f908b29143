"""What a finished run leaves besides its weights, from the scores its training computed (no image is scored
again): report.html, and the end of its TensorBoard log (an augmented batch, the confusion matrix). A run in
memory saved later (`Run.save`) gets the TensorBoard log a run trained into a folder writes as it goes.

    write_run_report   report.html from the validation scores of `Run.fit`
    board_pictures     the last pictures of the TensorBoard log, then closes it
    write_board        the whole TensorBoard log of a run trained in memory, when it is saved
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np


def write_run_report(run) -> Path:
    """report.html from the validation scores this run's training computed (no image is scored again)."""
    from signvision.inference.explain import explainer
    from signvision.reports.run_report import ScoredSet, write_report

    images, v, m = run._session.prepared.val_loader.dataset, run._scores, run.members[0]
    groups = run._session.prepared.data.groups("val")

    def picture(i):
        return images.load(int(v.order[i]))

    scored = ScoredSet(
        y=v.y,
        probs=v.probs,
        raw=v.raw,
        names=m.task.names,
        picture=picture,
        caption=lambda i: images.ids[int(v.order[i])],
        groups=[groups[int(j)] for j in v.order],
        explain=explainer(run.members, picture, run.cfg.device),
    )
    return write_report(
        run.folder,
        scored,
        summary=run.summary,
        histories={"": run.history},
        config=asdict(run.cfg),
        temperature=m.temperature,
        best_epoch=m.ckpt["epoch"],
    )


def board_pictures(run, board) -> None:
    """The end of a run's TensorBoard log: a batch as the augmentation made it, and the confusion matrix."""
    import torch

    from signvision.training.board import batch_grid

    dataset = run._session.prepared.train_loader.dataset
    rng = np.random.default_rng(run.cfg.seed)
    picks = rng.choice(len(dataset), size=min(16, len(dataset)), replace=False)
    with torch.random.fork_rng():  # the pictures take nothing from the run's random streams
        batch = np.stack([np.asarray(dataset[int(i)][0]) for i in picks])
    board.image("train/augmented batch", batch_grid(batch))
    confusion = run.folder / "confusion.png"
    if confusion.is_file():
        from signvision.data.images import read_image

        board.image("val/confusion matrix", read_image(str(confusion)))
    board.close()


def write_board(run) -> None:
    """The TensorBoard log of a run trained in memory, written when it is saved: one row per epoch, as a run
    trained into a folder writes them while it trains, then its pictures."""
    from signvision.training.board import BoardLog

    board = BoardLog(run.folder)
    for row in run.history.to_dict("records"):
        board.epoch(row)
    board_pictures(run, board)
