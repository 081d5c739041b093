"""``neuralgraph train``: check, validate data, build, fit with Lightning, write an archive.

A run lives in ``EXP_DIR/NAME/VERSION/``: ``graph.yaml`` (the resolved graph), TensorBoard events,
``checkpoints/`` (``last.ckpt`` and the best ones) and ``NAME.ngm`` at the end.

``--resume`` continues the latest run that has a ``last.ckpt``. Lightning restores the step,
the optimizer and the schedulers; the loaders' position in the epoch and the random generators
are restored as well, so a run killed mid-epoch continues exactly (docs/faults.md).
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralgraph.checker import folder_name_problem
from neuralgraph.errors import UserError
from neuralgraph.graph import Graph
from neuralgraph.registry import Registry, get_registry

__all__ = ["train"]


def _next_version(root: Path) -> str:
    numbers = [int(m.group(1)) for p in root.glob("version_*")
               if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return f"version_{max(numbers, default=-1) + 1}"


def _latest_version(root: Path) -> str | None:
    runs = [p for p in root.glob("*") if (p / "checkpoints" / "last.ckpt").is_file()]
    if not runs:
        return None
    return max(runs, key=lambda p: (p / "checkpoints" / "last.ckpt").stat().st_mtime).name


def _is_child_process() -> bool:
    """Whether this is a non-zero rank started by Lightning's launcher or torchrun."""
    return any(os.environ.get(var, "0") != "0" for var in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def run_dir(graph: Graph, exp_dir: str | Path, version: str | None, resume: bool) -> Path:
    """The folder of this run: a new version, or the latest one with a checkpoint to resume.

    The graph's ``name`` and ``version`` are single folder names (a shared graph file must not
    choose where files land): anything else is a UserError.
    """
    if why := folder_name_problem(graph.name):
        raise UserError(f"{graph.source or '<graph>'}: 'name' must be a single folder name; "
                        f"{why} (found {graph.name!r})")
    root = Path(exp_dir) / graph.name
    child = _is_child_process()
    if version is None and child:
        version = os.environ.get("NEURALGRAPH_RUN_VERSION")  # chosen by the launching rank 0
    if version is None:
        version = (_latest_version(root) if resume else None) or _next_version(root)
    elif why := folder_name_problem(version):
        raise UserError(f"--version must be a single folder name under {root}; {why} "
                        f"(found {version!r})")
    os.environ["NEURALGRAPH_RUN_VERSION"] = version  # inherited by processes Lightning spawns
    return root / version


def validate_data(graph: Graph) -> None:
    """Find missing or unreadable data before training starts (policy per data source)."""
    plan = graph.plan()
    if plan.data is None:
        raise UserError("the graph has no 'data' section: nothing to train on")
    if "train" not in plan.data.splits:
        raise UserError("the graph has no data.train split: nothing to train on")
    source = plan.data.cls(**plan.data.params)
    problems: list[str] = []
    for split, params in plan.data.splits.items():
        problems.extend(source.validate(split, **params))
    if problems:
        shown = problems[:20]
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise UserError("the data has problems:\n" + "\n".join(shown) + more)


def train(graph_path: str | Path, overrides: Sequence[str] = (), *, resume: bool = False,
          exp_dir: str | Path = "ng_experiments", version: str | None = None) -> Path:
    """Train a graph file; returns the path of the written ``.ngm`` archive."""
    graph = Graph.from_yaml(graph_path, overrides)
    warnings_found = graph.check()
    if not _is_child_process():  # processes Lightning or torchrun start print nothing twice
        for warning in warnings_found:
            print(warning, file=sys.stderr)
    validate_data(graph)
    directory = run_dir(graph, exp_dir, version, resume)
    ckpt = directory / "checkpoints" / "last.ckpt"
    if resume and not ckpt.is_file():
        raise UserError(f"--resume: no checkpoint to resume from under "
                        f"{Path(exp_dir) / graph.name}")
    if resume:
        _check_resumable(ckpt)
    if not _is_child_process():  # rank 0 writes the run's files
        _writable_run_folder(directory, exp_dir)
    return fit(graph, directory, ckpt if resume else None)


def _writable_run_folder(directory: Path, exp_dir: str | Path) -> None:
    """Create the run folder and its ``checkpoints/``, and make sure files can be written in
    both, so that a file in the way or a read-only folder is reported before training."""
    for folder in (directory, directory / "checkpoints"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise UserError(f"--exp-dir {exp_dir}: the run's files cannot be written into "
                            f"{folder}: {_why_unwritable(folder, exc)}") from None


def _why_unwritable(folder: Path, exc: OSError) -> str:
    """What stands in the way of writing into ``folder``: a file where a folder must be, or the
    system's reason (permission denied, read-only file system...)."""
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a folder"
    return f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")


def _check_resumable(ckpt: Path) -> None:
    """Refuse a ``last.ckpt`` that is damaged, not a Lightning checkpoint, or that only loads by
    unpickling code (it is read as Lightning will read it: ``torch.load(weights_only=True)``);
    remove temporary files of saves a kill interrupted."""
    import pickle
    import zipfile

    import torch

    for stale in ckpt.parent.glob(".*.tmp"):  # AtomicCheckpointIO's, never renamed into place
        stale.unlink(missing_ok=True)
    others = sorted(p.name for p in ckpt.parent.glob("*.ckpt") if p != ckpt)
    also = f"other checkpoints there: {', '.join(others) or 'none'}"
    if not zipfile.is_zipfile(ckpt):
        raise UserError(f"--resume: {ckpt} is not a complete checkpoint (damaged or truncated); "
                        f"{also}")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:  # torch's reason is one line of a long message
        reason = re.search(r"WeightsUnpickler error: (.*?)(?:\. |\.?$)", str(exc), re.MULTILINE)
        raise UserError(f"--resume: {ckpt} holds more than tensors and plain data, and loading "
                        f"it would run code from the file (refused: "
                        f"{reason.group(1) if reason else type(exc).__name__}); {also}") from None
    except (RuntimeError, ValueError, KeyError, EOFError, OSError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = re.sub(r"^\[enforce fail at [^\]]*\][ .]*", "", first)  # torch's C++ location
        raise UserError(f"--resume: {ckpt} is not a complete checkpoint (damaged, or a zip "
                        f"file that is not a checkpoint: {first}); {also}") from None
    if not isinstance(state, dict) or not {"state_dict", "global_step"} <= state.keys():
        raise UserError(f"--resume: {ckpt} is not a Lightning checkpoint (it has no "
                        f"state_dict and global_step); {also}")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")


def _trainer_kwargs(graph: Graph, directory: Path) -> dict[str, Any]:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import TensorBoardLogger

    from neuralgraph.callbacks import AtomicCheckpointIO, LogLines, RankAgreement, RunFolder
    from neuralgraph.resume import ExactResume

    cfg = dict(graph.plan().trainer)
    interactive = sys.stderr.isatty() and not os.environ.get("CI")
    ckpt_cfg = dict(graph.config.get("checkpoint") or {})
    checkpoint = ModelCheckpoint(
        dirpath=directory / "checkpoints",
        filename="{epoch}-{step}",
        save_last=True,
        save_top_k=int(ckpt_cfg.get("save_top_k", 1)),
        monitor=ckpt_cfg.get("monitor"),
        mode=ckpt_cfg.get("mode", "min"),
        every_n_train_steps=ckpt_cfg.get("every_n_train_steps"),
    )
    callbacks: list[pl.Callback] = [
        RunFolder(directory, {"graph.yaml": graph.to_yaml()}),  # rank 0's folder for all ranks
        checkpoint, LearningRateMonitor(logging_interval="step"), RankAgreement(),
        ExactResume()]  # a resumed run draws the random numbers the killed run would have
    if not interactive:
        callbacks.append(LogLines())
    callbacks.extend(plugin_callbacks(graph))
    logger = TensorBoardLogger(save_dir=str(directory.parent.parent), name=graph.name,
                               version=directory.name, default_hp_metric=False)
    kwargs: dict[str, Any] = {
        "default_root_dir": str(directory),
        "logger": logger,
        "callbacks": callbacks,
        "enable_progress_bar": interactive,
        "plugins": [AtomicCheckpointIO()],
    }
    kwargs.update(cfg)
    if "callbacks" in cfg:
        raise UserError("trainer.callbacks cannot be set in a graph file")
    return kwargs


def plugin_callbacks(graph: Graph, registry: Registry | None = None) -> list[Any]:
    """The Lightning callbacks that plugins contribute to this run (``register_callbacks``).

    Each factory is called with the graph; None means "not for this run". A factory that raises
    or returns something else than a Callback is reported as that plugin's error.
    """
    import pytorch_lightning as pl

    callbacks = []
    for entry in (registry or get_registry()).entries("callback"):
        where = f"plugin '{entry.plugin}' (callback '{entry.name}')"
        try:
            callback = entry.obj(graph)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from exc
        except Exception as exc:  # a plugin's bug: name the plugin, not a Lightning traceback
            raise UserError(f"{where} failed for the graph '{graph.name}': "
                            f"{type(exc).__name__}: {exc}") from exc
        if callback is None:
            continue
        if not isinstance(callback, pl.Callback):
            raise UserError(f"{where}: the factory must return a pytorch_lightning.Callback or "
                            f"None (got {callback!r} that is a {type(callback).__name__})")
        callbacks.append(callback)
    return callbacks


class _NoAdverts(logging.Filter):
    """Lightning logs advertisements for its cloud products; they are not our users' news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


def quiet_lightning() -> None:
    """Drop Lightning's adverts and its own deprecation noise from the run's log."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).addFilter(_NoAdverts())
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(_NoAdverts())
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    # a skipped non-finite step returns None; GraphModel prints its own line about it
    warnings.filterwarnings("ignore", message=".*`training_step` returned `None`.*")


def fit(graph: Graph, directory: Path, ckpt: Path | None) -> Path:
    """Build the model and run Lightning's fit; write the archive on rank 0.

    Only global rank 0 writes files (the folder, graph.yaml, logs, checkpoints, the archive),
    into its own choice of ``directory``, which every rank adopts once connected.
    """
    import pytorch_lightning as pl

    quiet_lightning()

    from neuralgraph.callbacks import RunFolder
    from neuralgraph.model import GraphModel
    from neuralgraph.resume import resumable

    if graph.config.get("seed") is not None:
        pl.seed_everything(int(graph.config["seed"]), workers=True, verbose=False)
    model = GraphModel(graph)
    trainer = pl.Trainer(**_trainer_kwargs(graph, directory))
    # resumable loaders: their position is saved in checkpoints, their order is a function of
    # (seed, epoch) and iterating them leaves torch's global generator alone
    seed = graph.config.get("seed")
    seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
    train_loader = resumable(model.dataloader("train"), seed)
    val_loader = resumable(model.dataloader("validation"), seed) \
        if "validation" in model.plan.data.splits else None  # type: ignore[union-attr]
    trainer.fit(model, train_dataloaders=train_loader, val_dataloaders=val_loader,
                ckpt_path=str(ckpt) if ckpt else None, weights_only=True)  # never unpickle code
    directory = next(c for c in trainer.callbacks if isinstance(c, RunFolder)).directory
    archive = directory / f"{graph.name}.ngm"  # the same path on every rank
    try:
        if trainer.is_global_zero:
            model.save_to(archive)
            print(f"saved {archive}", file=sys.stderr)
    finally:  # rank 0 meets the others even when writing fails, so none waits for it in vain
        _leave_together(trainer)
    return archive


def _leave_together(trainer: Any) -> None:
    """In a multi-process run, wait until rank 0 has written the archive, then tear the process
    group down on every rank together. Left to interpreter exit (Lightning's atexit hook), a rank
    that is gone while another still holds the group can leave torchrun waiting at shutdown."""
    import torch.distributed as dist

    if trainer.world_size < 2 or not dist.is_available() or not dist.is_initialized():
        return
    trainer.strategy.barrier("neuralgraph.archive_written")
    dist.destroy_process_group()
