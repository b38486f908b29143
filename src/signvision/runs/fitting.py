"""The fit sequence of a `Run`, once: claim the folder (if any), prepare the data and model
(`training/setup.py`), train the remaining epochs (`training/trainer.py`), score and calibrate the best epoch,
summarise, and leave what a finished run leaves (runs/record.py). `Run.fit` calls `fit_once`; a run in memory
and a run in a folder differ only in their recorder (`Recorder` keeps the epochs in memory, `FolderRecorder`
also writes them).

    Session              what fit trains with, kept between calls (so that fit() after Ctrl-C continues)
    fit_once             the whole sequence: "finished" or "interrupted"
    start_session        the data, model and state (from last.pt when resuming), the record started
    train_and_validate   the remaining epochs, then the best epoch scored and calibrated
    finish               the summary, the temperature, the run's model, its report and pictures
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from signvision.errors import OptionError
from signvision.logs import get_logger
from signvision.runs.record import board_pictures, write_run_report

logger = get_logger(__name__)


@dataclass
class Session:
    """What `fit` trains with, kept between calls (so that `fit()` after Ctrl-C continues): the prepared run
    (training/setup.Prepared), its recorder, this process's rank and the number of processes."""

    prepared: object
    recorder: object
    rank: int = 0
    world: int = 1


def fit_once(run, report: bool) -> str:
    """Claim the folder (if any), train and validate, finish; "finished" or "interrupted"."""
    import torch.distributed as dist

    from signvision.files import claim_folder, release_folder
    from signvision.training.folder import check_out_folder
    from signvision.training.runtime import dist_setup, pick_device, sharing_cores
    from signvision.training.trainer import own_random_state

    folder, device = run.folder, pick_device(run.cfg.device)
    rank, world = dist_setup(device)
    created = folder is not None and not folder.exists()
    if folder is not None and rank == 0:
        check_out_folder(folder, resume=run._resume)
        claim_folder(folder, "resume" if run._resume else "out")
    try:
        if world > 1:
            dist.barrier()  # every rank waits for the check before rank 0 writes into the folder
        with own_random_state(), sharing_cores():
            if run._session is None:
                run._session = start_session(run, device, rank, world)
            elif rank == 0:  # fit() again after Ctrl-C: the record holds exactly the finished epochs
                run._session.recorder.start(run._session.prepared.state)
            status, figures = train_and_validate(run)
        finish(run, status, figures, report)
    finally:
        if folder is not None and rank == 0:
            release_folder(folder)
            if created and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # a run that failed before writing anything leaves no empty folder
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return status


def start_session(run, device, rank: int, world: int) -> Session:
    """Prepare the data, model and state (from last.pt when resuming), start the record, say what runs."""
    from signvision.files import read_json
    from signvision.grouping.splits import SplitInfo
    from signvision.training.checkpoint import load_checkpoint
    from signvision.training.folder import FolderRecorder, write_data_csv, write_run_start
    from signvision.training.setup import describe_run, few_steps_note, prepare_training
    from signvision.training.trainer import Recorder

    cfg, folder = run.cfg, run.folder
    last = load_checkpoint(folder / "last.pt") if run._resume and (folder / "last.pt").is_file() else None
    if last is not None and cfg.epochs < int(last["epoch"]):
        raise OptionError(
            f"the run has already trained {last['epoch']} epochs; give at least as many",
            option="epochs",
            value=cfg.epochs,
        )
    started = run._resume and (folder / "split.csv").is_file()
    if folder is not None and run.table is not None and not run._resume and rank == 0:
        run.cfg = cfg = replace(cfg, data=str(write_data_csv(run.table, folder)))
    prepared = prepare_training(
        cfg,
        split_file=folder / "split.csv" if started else cfg.split,
        classes=list(last["classes"]) if last is not None else None,
        leak_check=not started,
        device=device,
        rank=rank,
        world=world,
        table=run.table,
    )
    if started and (folder / "split.json").is_file():
        prepared.data.info = SplitInfo(**read_json(folder / "split.json"))
    if last is not None:
        prepared.state.restore(last, folder / "last.pt")
    recorder = FolderRecorder(folder) if folder is not None and rank == 0 else Recorder()
    if rank == 0:
        if folder is not None:
            write_run_start(folder, cfg, prepared.data, resume=started)
        recorder.start(prepared.state)
        logger.info(describe_run(cfg, prepared.data, prepared.model, device, world, prepared.weights_report))
        note = few_steps_note(cfg, len(prepared.train_loader)) if not started else None
        if note:
            logger.info(note)
        if not started and prepared.data.info is not None:
            logger.info(prepared.data.info.describe())
    run._resume = folder is not None  # from now on the folder holds this run
    return Session(prepared, recorder, rank, world)


def train_and_validate(run) -> tuple[str, dict | None]:
    """The remaining epochs, then the best epoch scored and calibrated: (status, validation figures)."""
    import torch.distributed as dist

    from signvision.training.checkpoint import load_checkpoint
    from signvision.training.trainer import train_epochs, validate_best

    s, p = run._session, run._session.prepared
    status = train_epochs(
        p.state,
        p.train_loader,
        p.val_loader,
        p.runtime,
        p.data.task,
        recorder=s.recorder,
        sampler=p.sampler,
        transform=p.transform,
        world=s.world,
    )
    if status != "finished":
        return status, None
    if s.world > 1:
        dist.barrier()  # best.pt is written
    best = s.recorder.best_weights() if s.rank == 0 else load_checkpoint(run.folder / "best.pt")
    try:
        figures, run._scores = validate_best(
            p.model, best, p.val_loader, p.runtime, p.data.task, p.data.groups("val"), world=s.world,
            calibrate=run.cfg.calibrate,
        )  # fmt: skip
    except KeyboardInterrupt:  # training is done; fitting again only calibrates
        again = f"signvision train --resume {run.folder}" if run.folder is not None else "run.fit()"
        logger.info(f"interrupted while calibrating; finish with: {again}")
        return "interrupted", None
    return "finished", figures


def finish(run, status: str, figures: dict | None, report: bool) -> None:
    """Summarise; record the summary (and the temperature, once); the run's model; its report."""
    from signvision.training.summary import memory_warning, summarise
    from signvision.training.trainer import describe_validation

    s = run._session
    if s.rank != 0:
        return
    data, recorder = s.prepared.data, s.recorder
    if figures is not None:
        logger.info(describe_validation(figures, len(data.rows("val"))))
    best = recorder.best_weights()
    summary = summarise(
        run.cfg,
        data,
        recorder.history,
        best["epoch"] if best is not None else None,
        figures,
        status=status,
        seconds=s.prepared.state.train_seconds,
    )
    if run.folder is not None:
        recorder.finish(summary, figures["temperature"] if figures else None)
    if status != "finished":
        return
    run.summary = summary
    if summary.get("measures_memory"):
        logger.info(memory_warning(summary))
    run.members = [best_member(run, recorder.best_weights(), figures["temperature"])]
    if report and run.folder is not None:
        write_run_report(run)
    if getattr(recorder, "board", None) is not None:
        board_pictures(run, recorder.board)


def best_member(run, best: dict, temperature):
    """The trained model for inference: the best epoch's weights, with the temperature."""
    from signvision.inference.members import RunModel
    from signvision.training.checkpoint import model_from_checkpoint

    ckpt = {**best, "temperature": temperature}
    model, task, cfg = model_from_checkpoint(ckpt, "the best epoch")
    return RunModel(model.eval(), task, cfg, ckpt, temperature, run.folder)
