"""How a `submit` job plans its stages: each stage's recipe timed on this machine (a few training steps), its
time estimated from the images/s and the pace learnt on earlier stages of the same network, the folds chosen so
that the most valuable stages fit, and each stage cut or skipped against the time left. `runs/submit.py` runs
the plan.

    STAGES          the stages in order of expected value, each a set of training settings
    stages_of       a job's stages: STAGES, or with the second round (pseudo-labels) last where asked
    predicting      the finished stages that predict together (the second round replaces the stage it retrains)
    training_rate   images/s of a recipe here: a few steps on random images at its size
    choose_folds    the job's folds (5, 3 or 2): the most with which the most valuable stages fit
    plan_stage      one stage's settings and estimated seconds, or None: skipped
    stage_seconds   a stage's estimated seconds: its training, at its network's pace, and writing its submission
    writing_seconds a submission's writing: each member's network's cost, learnt when it joined (learn_writing)
    kept_for_second_round   the time a stage before the second round leaves it
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from signvision.config import PSEUDO_THRESHOLD
from signvision.logs import get_logger

logger = get_logger(__name__)

FOLDS = (5, 3, 2)  # the job's folds: the most with which every stage's full recipe fits (every stage has the same
# folds, so that they can be ensembled: a short budget gets fewer folds, not under-trained models)
PRETRAINED = {"weights": "imagenet", "lr": 2e-3, "epochs": 6, "image_size": 128}  # the README's Lite0 recipe
# the stages in order of expected value (docs/results.md, the session benchmark, 5 folds, 3 seeds each): name ->
# training settings. A stage that does not fit is skipped and the next one tried: Lite0 is where Lite1 is not.
STAGES = {
    # the defaults (64 px, 15 epochs), in bf16 where the processor has it natively (AVX512-BF16 or AMX; elsewhere
    # fp32): 1.7x faster there, the new session's log loss +0.012, +0.012, -0.004 over 3 seeds, each inside its
    # interval (docs/benchmarks.md)
    "lenet": {"model": "lenet", "amp": True},
    # EfficientNet-Lite1 from ImageNet weights (about 1.2x Lite0's time): beside LeNet 0.161 against Lite0's
    # 0.184, alone 0.186 against 0.226 (better beyond noise in two seeds of three, worse in none)
    "lite1": {"model": "tf_efficientnet_lite1", **PRETRAINED},
    # Lite0 the same way: a third member beside LeNet and Lite1 (0.149 against 0.161), or the second where
    # Lite1 does not fit
    "lite0": {"model": "tf_efficientnet_lite0", **PRETRAINED},
    "lenet30": {"model": "lenet", "amp": True, "epochs": 30},  # where Lite0 does not fit: alone 0.229 (LeNet 0.281)
}
# `--second-round` (off unless asked: it trains on the test images): LeNet again, on the labelled images and the
# test images the finished stages' ensemble is sure of (inference/pseudo.py), in the 30-epoch LeNet's place. The
# session benchmark's new session: in `submit --time 20m` -0.021 to -0.052 against the job's first round (6 seeds,
# 5 beyond noise); the nine commands' second round on a withheld real capture: +0.022 [-0.012, +0.062], not
# carried (docs/zindi.md)
SECOND_ROUND = "lenet-pl"
SECOND_ROUND_OF = "lenet"  # the stage whose recipe the second round trains again (sharing its probe and pace),
# and which it replaces in the ensemble once finished (predicting)
SURE = PSEUDO_THRESHOLD  # the second round keeps a test image predicted at least this surely (calibrated)
PSEUDO_LABELS = "pseudo-labels.csv"  # WORK/pseudo-labels.csv: the second round's test images and their guesses
DISTILLED = STAGES["lenet"]  # `distill`: the one network trained on the job's out-of-fold probabilities
OVERHEAD = 1.25  # a stage's time over its training steps' alone (validation, decoding, calibration, pages) ...
SHORTEST_EPOCHS = 4  # ... and the fewest epochs the first stage is cut to when the budget is short
SHORTEST_SHARE = 2 / 3  # a later stage runs with fewer epochs if at least this share of them fits, else is skipped
UNTIMED_MINIMUM = 60.0  # seconds: with less left, a later stage whose network is not yet timed is skipped untimed
PACE_MARGIN = 1.15  # with a second round to come, a stage at a pace learnt on another network is counted this much
# longer: Lite0 at Lite1's pace took 0.89 to 1.15 times its estimate in 10 jobs, and 1.14 (0.7 min over) left a
# `20m --second-round` job's second round 0.8 min short (docs/zindi.md)


@dataclass
class Job:
    """Where a submit job stands: its folders, its deadline and what each stage gave."""

    data: str
    work: Path
    out: Path
    deadline: float
    settings: dict  # settings every stage shares (seed, device, audit, ...)
    folds: int | None = None  # chosen before the first stage
    stages: dict = field(default_factory=lambda: dict(STAGES))  # name -> settings, in order (stages_of)
    train_images: int = 0  # the labelled images
    test_images: int = 0  # the images to predict: at most this many join the second round's training
    rates: dict = field(default_factory=dict)  # training images/s here of each network and size (probed)
    paces: dict = field(default_factory=dict)  # each network and size: a stage's time / its estimate (1.0 untried)
    writing: dict = field(default_factory=dict)  # each network and size: seconds a member adds to writing a
    # submission (predicting the test images with its folds); one figure for all put Lite0's at LeNet's, and the
    # second round's time, counting on it, came out 0.7 min short after Lite0

    @property
    def left(self) -> float:
        return self.deadline - time.monotonic()


def stages_of(second_round: bool = False) -> dict:
    """A job's stages in order: STAGES, or when `second_round` the second round (LeNet's stage's recipe again)
    last, in the 30-epoch LeNet's place. After it, the 30-epoch LeNet (trained on the labels alone) took 0.59 to
    0.86 of the weights fitted out of fold, where it looks best and the second round's edge, the test images it
    has seen, does not show, and on the session benchmark's new session it cost +0.010 [+0.006, +0.014] and
    +0.024 [+0.004, +0.042] (`30m` jobs with 5 folds), +0.011, +0.037 and +0.016 (`30m` and `5m` with 3 folds,
    inside noise), about nothing in `20m` (-0.001 in 3 seeds; docs/zindi.md). Without a second round it stays."""
    if not second_round:
        return dict(STAGES)
    names = [name for name in STAGES if name != "lenet30"] + [SECOND_ROUND]
    return {name: STAGES[name] if name in STAGES else STAGES[SECOND_ROUND_OF] for name in names}


def predicting(finished: list[str]) -> list[str]:
    """The finished stages whose ensemble predicts: all of them, except that a finished second round replaces
    the stage it trains again, as the nine commands' second round replaces their LeNet. Kept beside it, the
    first LeNet took 0.22-0.42 of the weights (fitted out of fold, where the two look alike, while only the
    second has seen the test images): in `submit --time 20m --second-round` the new session's log loss was 0.123,
    0.145, 0.140 with it and 0.115, 0.137, 0.129 without (3 seeds; where the fit gave it no weight, nothing
    changes; docs/zindi.md)."""
    if SECOND_ROUND in finished:
        return [name for name in finished if name != SECOND_ROUND_OF]
    return list(finished)


def training_rate(settings: dict, n_classes: int, device: str = "auto", steps: int = 4) -> float:
    """Training images/s of a recipe on this machine: a few steps on a batch of random images at its size."""
    import torch

    from signvision.config import TrainConfig
    from signvision.models.factory import build_model, freeze_first_blocks
    from signvision.training.runtime import amp_dtype, autocast, pick_device
    from signvision.training.trainer import adamw

    cfg = TrainConfig(**settings)
    dev = pick_device(device)
    model = build_model(cfg.model, n_classes, image_size=cfg.image_size)
    freeze_first_blocks(model, cfg.freeze_blocks)  # their backward pass skipped, as in training
    model = model.to(dev).train()
    optimizer = adamw(model.parameters(), dev, lr=1e-3)  # as training makes it
    # (B, 3, S, S) laid out as the loop's batches are: views of (B, S, S, 3) images (NHWC in memory), which
    # oneDNN keeps through the network; an NCHW probe made Lite0 look 1.5 times slower than it trains
    x = torch.randn(cfg.batch_size, cfg.image_size, cfg.image_size, 3, device=dev).permute(0, 3, 1, 2)
    y = torch.randint(0, n_classes, (cfg.batch_size,), device=dev)
    precision = amp_dtype(dev, cfg.amp)  # bf16 where the recipe asks for it and the processor has it
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()  # the first step warms up
        optimizer.zero_grad(set_to_none=True)
        with autocast(dev, precision):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return steps * cfg.batch_size / (time.perf_counter() - started)


def estimate_seconds(settings: dict, n_images: int, rate: float, folds: int) -> float:
    """A stage's time: every fold trains on (k-1)/k of the images for its epochs, plus the overhead."""
    from signvision.config import TrainConfig

    epochs = settings.get("epochs", TrainConfig.epochs)
    return OVERHEAD * epochs * n_images * (folds - 1) / rate


def stage_settings(job: Job, name: str) -> dict:
    """Stage `name`'s training settings in this job: the job's shared settings, then the stage's own."""
    return {**job.settings, **job.stages[name]}


def images_of(job: Job, name: str, n_images: int) -> int:
    """The images stage `name` trains on: the labelled ones, and for the second round at most every test image."""
    return n_images + (job.test_images if name == SECOND_ROUND else 0)


UNTIMED = ("epochs", "lr", "folds", "seed")  # settings that do not change a training step's time


def step_of(job: Job, name: str) -> str:
    """What sets the time of a training step of stage `name`: its network, size and the rest, not its epochs."""
    settings = stage_settings(job, name)
    return repr(sorted((k, str(v)) for k, v in settings.items() if k not in UNTIMED))


def rate_of(job: Job, name: str, n_classes: int) -> float:
    """Training images/s of stage `name`'s recipe here, measured once a job for each network and size (LeNet
    for 15 or 30 epochs is one measurement: two probes of one network read 375 and 481 images/s, and the
    pace learnt on one then misjudged the other by a quarter)."""
    step = step_of(job, name)
    if step not in job.rates:
        job.rates[step] = training_rate(stage_settings(job, name), n_classes, job.settings.get("device", "auto"))
    return job.rates[step]


def pace_of(job: Job, name: str) -> float:
    """How long stage `name` takes here against its estimate: learnt on an earlier stage of the same network
    and size, else on one of another network at the same size, else 1.0. One pace for all networks misjudged the
    next by up to 1.5x (LeNet's loader and calibration are a larger share of its stage than Lite0's: a pace of
    1.3 learnt on LeNet put Lite0 at 14 minutes where it took 11, then Lite0's pace put a 30-epoch LeNet at too
    few minutes, and the job overran). Lite1's and Lite0's, both 128 px, went together (0.64 and 0.64, 0.89 and
    0.79, 0.87 and 0.89 in three jobs): the probe's error is the job's, not the network's."""
    step = step_of(job, name)
    if step in job.paces:
        return job.paces[step]
    return next((job.paces[k] for k in kin_of(job, name) if k in job.paces), 1.0)


def kin_of(job: Job, name: str) -> list[str]:
    """The steps (step_of) of the job's stages at stage `name`'s image size, its own among them."""
    from signvision.config import TrainConfig

    def size(stage: str) -> int:
        return stage_settings(job, stage).get("image_size", TrainConfig.image_size)

    return [step_of(job, other) for other in job.stages if size(other) == size(name)]


def borrows_pace(job: Job, name: str) -> bool:
    """Whether stage `name` is planned at a pace learnt on another network (its own not yet learnt)."""
    return step_of(job, name) not in job.paces and any(k in job.paces for k in kin_of(job, name))


def member_seconds(job: Job, name: str) -> float:
    """Seconds stage `name` adds, as a member, to writing a submission: learnt when a stage of its network joined;
    else as one at its size (Lite0 as Lite1); else as the dearest learnt (nothing learnt: 0)."""
    known = [job.writing[k] for k in [step_of(job, name), *kin_of(job, name)] if k in job.writing]
    return known[0] if known else max(job.writing.values(), default=0.0)


def writing_seconds(job: Job, finished: list[str]) -> float:
    """Seconds to write the submission of the `finished` stages (or to label the test images with them): the sum
    of what predicts' members cost."""
    return sum(member_seconds(job, name) for name in predicting(finished))


def learn_writing(job: Job, finished: list[str], seconds: float) -> None:
    """The submission of the `finished` stages took `seconds` to write: the newest stage's network costs what the
    other members' learnt costs leave of it (shared among the members of its network)."""
    step = step_of(job, finished[-1])
    members = predicting(finished)
    same = [m for m in members if step_of(job, m) == step]
    others = sum(member_seconds(job, m) for m in members if step_of(job, m) != step)
    job.writing[step] = max(seconds - others, 0.0) / max(len(same), 1)


def choose_folds(job: Job, n_images: int, n_classes: int) -> int:
    """The job's folds: those of FOLDS with which the most valuable stages fit in the time left, tried in order
    as the job tries them (a stage that does not fit skipped; two or more only with 3 folds or more: models
    trained on half the images are not worth a second recipe). The stages are in order of expected value, so an
    earlier stage outweighs any number of later ones (counted alike, 5 folds of LeNet, its second round and the
    30-epoch LeNet outnumbered 3 folds of LeNet, Lite1 and the second round on a slow machine, and the job
    trained no pretrained network); among folds that fit the same stages, the most. If not even the first stage
    fits, the fewest (the first stage is then cut). A later stage's network is timed only with UNTIMED_MINIMUM
    left after the stages that fit before it: a short job does not spend its time probing a network it cannot
    reach."""
    left = max(job.left, 0.0)

    def stages_that_fit(k: int) -> tuple[bool, ...]:
        spent, fitted = 0.0, []
        for name in job.stages:
            if k < 3 and any(fitted):  # with 2 folds, the first stage alone
                break
            if any(fitted) and step_of(job, name) not in job.rates and left - spent < UNTIMED_MINIMUM:
                fitted.append(False)  # too little left to be worth timing this network
                continue
            rate = rate_of(job, name, n_classes)
            images = images_of(job, name, n_images)
            needed = estimate_seconds(stage_settings(job, name), images, rate, k) * pace_of(job, name)
            fitted.append(spent + needed <= left)
            spent += needed if fitted[-1] else 0.0
            if not any(fitted):
                break  # not even the first stage fits
        return tuple(fitted + [False] * (len(job.stages) - len(fitted)))

    fits = {k: stages_that_fit(k) for k in FOLDS}
    folds = max(FOLDS, key=lambda k: (fits[k], k)) if any(map(any, fits.values())) else FOLDS[-1]
    probed = {step_of(job, name): name for name in reversed(job.stages)}  # a network's first stage names its probe
    said = ", ".join(f"{probed[step]} {rate:.0f}" for step, rate in job.rates.items() if step in probed)
    fitting = ", ".join(name for name, fits_in in zip(job.stages, fits[folds]) if fits_in) or "none whole"
    logger.info(f"training images/s here: {said}; {folds} folds (stages that fit: {fitting})")
    return folds


def stage_seconds(job: Job, name: str, n_images: int, n_classes: int, done: list[str]) -> tuple[float, float, float]:
    """Stage `name` after the finished stages `done`: its seconds of training as estimated, the same at its
    network's pace, and the seconds of writing the submission with it (for the second round, which needs a
    finished stage, also of predicting the test images with the `done` before it: its pseudo-labels)."""
    rate = rate_of(job, name, n_classes)
    raw = estimate_seconds(stage_settings(job, name), images_of(job, name, n_images), rate, job.folds)
    labelling = writing_seconds(job, done) if name == SECOND_ROUND else 0.0
    return raw, raw * pace_of(job, name), writing_seconds(job, [*done, name]) + labelling


def kept_for_second_round(job: Job, name: str, n_images: int, n_classes: int, done: list[str]) -> float:
    """Seconds a stage before the second round leaves it (its training at LeNet's pace, the labelling and the
    submissions after it): asked for, it goes before a later first-round stage, which is cut or skipped instead
    (on a machine 1.2 times slower, the third stage took the time and the second round was skipped). Nothing is
    kept while the first stage is planned (it runs whatever the time) or where no second round is to come."""
    order = list(job.stages)
    if not done or SECOND_ROUND not in order or order.index(name) >= order.index(SECOND_ROUND):
        return 0.0
    _, training, writing = stage_seconds(job, SECOND_ROUND, n_images, n_classes, [*done, name])  # after this one
    return training + writing


def plan_stage(job: Job, name: str, n_images: int, n_classes: int, done: list[str]) -> tuple[dict, float] | None:
    """(the settings of stage `name`, folds included, and its estimated seconds of training before the learnt
    pace) if it fits in the time left, after the finished stages `done`; None: skip it. Its time is its training
    at its network's pace plus writing (stage_seconds), in the time left less what the second round keeps (and
    with a second round to come, a borrowed pace counted PACE_MARGIN longer). The first stage is cut to fewer
    epochs if it does not fit, and runs even so (the job must hold a submission); a later one is cut if at least
    SHORTEST_SHARE of its epochs fit, else skipped."""
    from signvision.config import TrainConfig

    if done and step_of(job, name) not in job.rates and job.left < UNTIMED_MINIMUM:  # its probe alone takes seconds
        logger.info(f"stage {name}: skipped ({max(job.left, 0.0):.0f} s left, too little to time its network)")
        return None
    if name == SECOND_ROUND and not done:
        logger.info(f"stage {name}: skipped (no first round to label the test images)")
        return None
    settings = {**stage_settings(job, name), "folds": job.folds}
    raw, training, writing = stage_seconds(job, name, n_images, n_classes, done)
    kept = kept_for_second_round(job, name, n_images, n_classes, done)
    spare = bool(kept) and borrows_pace(job, name)  # an overrun would cost the second round
    training *= PACE_MARGIN if spare else 1.0
    needed, left = training + writing, max(job.left - kept, 0.0)
    notes = []
    if kept:
        notes.append(f"{kept / 60:.1f} more kept for the second round")
    if spare:
        notes.append(f"counted {PACE_MARGIN - 1:.0%} longer at another network's pace")
    why = f" ({'; '.join(notes)})" if notes else ""
    if needed <= left:
        logger.info(f"stage {name}: {job.folds} folds, about {needed / 60:.1f} min of {left / 60:.1f}{why}")
        return settings, raw
    epochs = settings.get("epochs", TrainConfig.epochs)
    fitted = int(epochs * max(left - writing, 0.0) / training)  # the epochs that fit
    if not done:
        fitted = min(epochs, max(SHORTEST_EPOCHS, fitted))
    elif fitted < math.ceil(epochs * SHORTEST_SHARE):  # a later stage: cut a little, else skipped
        logger.info(f"stage {name}: skipped (about {needed / 60:.1f} min needed, {left / 60:.1f} left{why})")
        return None
    logger.info(
        f"stage {name}: {job.folds} folds of {epochs} epochs need about {needed / 60:.1f} min, "
        f"{left / 60:.1f} left{why}: {fitted} epochs"
        + (" (the fewest it runs: it will go over the budget)" if fitted * training / epochs + writing > left else "")
    )
    return {**settings, "epochs": fitted}, raw * fitted / epochs
