"""What a run killed mid-epoch needs to continue exactly, beyond what Lightning saves.

* The training loader's position in its epoch: :func:`resumable` makes a loader a
  :class:`ResumableDataLoader`, whose position Lightning saves in checkpoints and which leaves
  out the batches already consumed on resume.
* A shuffle that can be replayed: :class:`EpochRandomSampler` draws its order from the seed and
  the epoch instead of torch's global generator.
* The random generators (torch, CUDA, NumPy, Python): :class:`ExactResume` saves and restores
  them, and restores the loader's position where Lightning drops it.
"""

from __future__ import annotations

import itertools
import random
import warnings
from collections.abc import Iterable, Iterator, Sized
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler

__all__ = ["EpochRandomSampler", "ExactResume", "ResumableDataLoader", "resumable"]


class EpochRandomSampler(RandomSampler):
    """A random order of ``range(len(data_source))`` that is a function of ``seed`` and the epoch.

    ``RandomSampler`` draws its order from torch's global generator, so a resumed run cannot
    replay it; this one draws ``randperm`` from a generator seeded with ``seed + epoch``, as
    ``DistributedSampler`` does. Lightning calls :meth:`set_epoch` before every epoch. It is a
    ``RandomSampler`` so that Lightning still knows the loader shuffles (and keeps shuffling when
    it swaps in a ``DistributedSampler`` for multi-process training).
    """

    def __init__(self, data_source: Sized, seed: int) -> None:
        super().__init__(data_source)  # type: ignore[arg-type]
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration yields."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class _SkipFirst:
    """An index sampler that leaves out its first ``count`` items during one iteration of
    ``loader`` (torch iterates it twice when it makes an iterator; persistent workers keep it for
    the next epochs, which must not skip)."""

    def __init__(self, sampler: Iterable[Any], count: int, loader: ResumableDataLoader) -> None:
        self.sampler, self.count, self.loader = sampler, count, loader
        self.iteration = loader._iteration

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        count = self.count if self.loader._iteration == self.iteration else 0
        return itertools.islice(iter(self.sampler), count, None)


class _Counting:
    """Iterator over a loader's batches that counts them on the loader."""

    def __init__(self, loader: ResumableDataLoader, iterator: Iterator[Any]) -> None:
        self.loader, self.iterator = loader, iterator

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> Any:
        batch = next(self.iterator)
        self.loader._yielded += 1
        return batch

    def __len__(self) -> int:
        return len(self.iterator)  # type: ignore[arg-type]


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` whose position in an epoch is saved in checkpoints and restored.

    Lightning (2.2+) calls ``state_dict`` on a training loader that has one when it writes a
    checkpoint and ``load_state_dict`` before iterating it again on resume. The state is the
    epoch, the number of batches yielded in it, the loader's length and the seed of an
    :class:`EpochRandomSampler`; on resume the first iteration leaves out the batches already
    consumed without loading them. The order must therefore be a function of (seed, epoch): a
    sequential sampler, an :class:`EpochRandomSampler`, a ``DistributedSampler``, or a batch
    sampler built on one of those that is itself deterministic.

    The loader has its own generator for the workers' base seed, reseeded each epoch, so that
    iterating it never draws from torch's global generator (which the model's dropout uses).
    """

    _yielded: int = 0  # batches yielded by the current iteration, skipped ones included
    _epoch: int | None = None  # epoch of the current iteration
    _resume_skip: int = 0  # batches the next iteration leaves out
    _skipping: int = 0
    _iteration: int = 0  # how many times the loader was iterated

    @property
    def _index_sampler(self) -> Any:  # torch's DataLoader draws indices from this
        base = super()._index_sampler
        return _SkipFirst(base, self._skipping, self) if self._skipping else base

    def _samplers(self) -> list[Any]:
        found: list[Any] = []
        for obj in (self.sampler, self.batch_sampler, getattr(self.batch_sampler, "sampler", None)):
            if obj is not None and all(obj is not f for f in found):
                found.append(obj)
        return found

    def _sampler_epoch(self) -> int | None:
        for sampler in self._samplers():
            if isinstance(getattr(sampler, "epoch", None), int):
                return int(sampler.epoch)
        return None

    def _base_seed(self) -> int | None:
        for sampler in self._samplers():
            if isinstance(getattr(sampler, "seed", None), int):
                return int(sampler.seed)
        return None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        self._epoch = self._sampler_epoch()
        seed = self._base_seed()
        if self.generator is not None and seed is not None:
            self.generator.manual_seed(seed * 1_000_003 + (self._epoch or 0))
        self._iteration += 1
        self._skipping, self._resume_skip = self._resume_skip, 0
        self._yielded = self._skipping
        try:
            iterator = super().__iter__()
        finally:
            self._skipping = 0
        return _Counting(self, iterator)

    def state_dict(self) -> dict[str, Any]:
        """Where the current epoch is: ``{"epoch", "batches", "length", "seed"}``."""
        return {"epoch": self._epoch, "batches": self._yielded, "length": _length(self),
                "seed": self._base_seed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after the batches ``state`` counts (or at the next epoch if it ended)."""
        batches, length = int(state.get("batches", 0)), state.get("length")
        epoch = state.get("epoch")
        if length is not None and length != _length(self):
            warnings.warn(f"the training data has {_length(self)} batches per epoch, the "
                          f"checkpoint's had {length}: the epoch restarts from its first batch",
                          stacklevel=2)
            batches = 0
        elif length is not None and batches >= length:
            batches, epoch = 0, None if epoch is None else epoch + 1
        for sampler in self._samplers():
            if state.get("seed") is not None and isinstance(sampler, EpochRandomSampler):
                sampler.seed = int(state["seed"])
            if epoch is not None and callable(getattr(sampler, "set_epoch", None)):
                sampler.set_epoch(epoch)
        self._resume_skip = batches


def _length(loader: DataLoader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def resumable(loader: Any, seed: int) -> Any:
    """``loader`` as a :class:`ResumableDataLoader` (other iterables are returned as they are).

    A plain shuffling ``RandomSampler`` (the one ``shuffle=True`` makes), also inside a custom
    batch sampler, is replaced by an :class:`EpochRandomSampler` seeded with ``seed``; every
    other setting is kept.
    """
    if not isinstance(loader, DataLoader) or isinstance(loader, ResumableDataLoader) or \
            isinstance(loader.dataset, IterableDataset):
        return loader
    kwargs: dict[str, Any] = {
        "num_workers": loader.num_workers, "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory, "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": torch.Generator().manual_seed(seed),
        "persistent_workers": loader.persistent_workers,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    batch_sampler = loader.batch_sampler
    if batch_sampler is not None and type(batch_sampler) is BatchSampler:
        sampler = _seeded(batch_sampler.sampler, loader.dataset, seed)
        return ResumableDataLoader(loader.dataset, batch_size=batch_sampler.batch_size,
                                   drop_last=batch_sampler.drop_last, sampler=sampler, **kwargs)
    if batch_sampler is not None:
        if hasattr(batch_sampler, "sampler"):
            batch_sampler.sampler = _seeded(batch_sampler.sampler, loader.dataset, seed)
        return ResumableDataLoader(loader.dataset, batch_sampler=batch_sampler, **kwargs)
    return ResumableDataLoader(loader.dataset, batch_size=None,
                               sampler=_seeded(loader.sampler, loader.dataset, seed), **kwargs)


def _seeded(sampler: Any, dataset: Any, seed: int) -> Any:
    """An :class:`EpochRandomSampler` for a plain ``RandomSampler``; others are kept."""
    if type(sampler) is RandomSampler and not sampler.replacement and \
            sampler._num_samples is None and sampler.generator is None:
        return EpochRandomSampler(dataset, seed)
    return sampler


class ExactResume(pl.Callback):
    """What Lightning leaves out of resuming: the random generators and, sometimes, the loader.

    * The states of torch's (and CUDA's), NumPy's and Python's generators are saved in
      checkpoints and put back when training starts, after the loaders' iterators are made, so a
      resumed run draws the dropout masks, SpecAugment masks and dither noise that the killed
      run would have drawn next.
    * Lightning 2.6 drops the training loader's saved position when ``configure_optimizers``
      asked for ``trainer.estimated_stepping_batches`` (a scheduler's ``max_steps``): the loader
      is set up before the checkpoint is read and is not set up again (Lightning issue #20550).
      The saved position is loaded here and the iterator made again, as Lightning's own fix
      proposes (pull request #21765).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
        version, internal, gauss = random.getstate()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(np.array(keys, dtype=np.int64)), pos, has_gauss,
                      cached],
            "python": [version, list(internal), gauss],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loop = trainer.fit_loop
        if loop.restarting and getattr(loop, "_combined_loader_states_to_load", None):
            loop._load_combined_loader_states()
            iter(loop._data_fetcher)  # type: ignore[call-overload]
        state, self._pending = self._pending, None
        if state:
            _set_random_state(state)


def _set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
