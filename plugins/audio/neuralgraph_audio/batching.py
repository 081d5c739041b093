"""Batching variable-length utterances: zero-padding collation and duration bucketing.

:class:`PadCollate` turns a list of dicts of 1-D tensors into padded ``(B, max_len)`` tensors
with their ``(B,)`` lengths; :class:`DurationBucketBatchSampler` groups utterances of similar
duration so that batches carry little padding, and keeps working under Lightning's distributed
samplers and exact resume.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DistributedSampler, RandomSampler, Sampler

__all__ = ["DurationBucketBatchSampler", "PadCollate"]


class PadCollate:
    """Collate dicts of 1-D tensors into zero-padded ``(B, max_len)`` tensors plus lengths.

    ``lengths`` maps a key to the key of its ``(B,)`` int64 lengths (``audio_signal`` →
    ``audio_length``). 0-dim items are stacked to ``(B,)``; their lengths are ones.
    """

    def __init__(self, lengths: Mapping[str, str]) -> None:
        self.lengths = dict(lengths)

    def __call__(self, items: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key in items[0]:
            values = [item[key] for item in items]
            if values[0].dim() == 0:
                batch[key] = torch.stack(values)
                lengths = torch.ones(len(values), dtype=torch.int64)
            else:
                lengths = torch.tensor([v.shape[0] for v in values], dtype=torch.int64)
                padded = values[0].new_zeros((len(values), max(lengths.tolist(), default=0)))
                for row, v in enumerate(values):
                    padded[row, : v.shape[0]] = v
                batch[key] = padded
            if key in self.lengths:
                batch[self.lengths[key]] = lengths
        return batch


def _dataset_of(sampler: Any) -> Any:
    return getattr(sampler, "data_source", getattr(sampler, "dataset", None))


class DurationBucketBatchSampler(BatchSampler):
    """Batches of utterances of similar duration, to reduce padding.

    Indices come from ``sampler`` (shuffled or not) in pools of ``pool_batches`` batches; each
    pool is sorted by duration and cut into batches, and (when the sampler shuffles) the batches
    are shuffled. Without shuffling the whole split is sorted by duration. The number of batches
    is that of a ``BatchSampler`` with the same ``batch_size`` and ``drop_last``.

    Distributed training: a batch sampler is not replaced by Lightning's distributed sampler the
    usual way. Lightning re-creates this class with ``sampler`` set to its ``DistributedSampler``
    (the signature follows ``BatchSampler`` for that, and ``durations`` default to the sampler's
    dataset's ``durations``), so each rank buckets its own share. When ``torch.distributed`` is
    initialized and ``sampler`` is not a ``DistributedSampler`` (``use_distributed_sampler=False``,
    or a loop without Lightning), this class splits the indices by rank itself: a permutation
    seeded by ``seed + epoch`` (same on every rank), padded to a multiple of the world size, every
    ``world_size``-th index from ``rank``. ``set_epoch`` sets the epoch; otherwise it advances by
    one each pass.
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sequence[int],
        batch_size: int,
        drop_last: bool,
        durations: Sequence[float] | None = None,
        *,
        pool_batches: int = 50,
        shuffle: bool | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if durations is None:
            durations = getattr(_dataset_of(sampler), "durations", None)
        if durations is None:
            raise ValueError("DurationBucketBatchSampler needs durations (or a sampler whose "
                             "dataset has .durations)")
        if pool_batches < 1:
            raise ValueError(f"pool_batches must be >= 1 (got {pool_batches})")
        self.durations = np.asarray(durations, dtype=np.float64)
        self.pool_batches = pool_batches
        if shuffle is None:
            shuffle = isinstance(sampler, RandomSampler) or bool(getattr(sampler, "shuffle", False))
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch that seeds the rank split (called by distributed loops before each epoch)."""
        self.epoch = epoch

    def _split_by_rank(self) -> tuple[int, int] | None:
        """``(rank, world_size)`` when this sampler must split indices itself, else None."""
        if isinstance(self.sampler, DistributedSampler):
            return None
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        return dist.get_rank(), dist.get_world_size()

    def _indices(self) -> list[int]:
        split = self._split_by_rank()
        if split is None:
            return list(iter(self.sampler))
        rank, world = split
        n = len(self.durations)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        total = math.ceil(n / world) * world
        order = torch.cat([order, order[: total - n]]) if total > n else order
        return order[rank:total:world].tolist()

    def _num_indices(self) -> int:
        split = self._split_by_rank()
        if split is None:
            return len(self.sampler)  # type: ignore[arg-type]
        return math.ceil(len(self.durations) / split[1])

    def __len__(self) -> int:
        n = self._num_indices()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        indices = np.asarray(self._indices(), dtype=np.int64)
        self.epoch += 1
        pool = self.batch_size * self.pool_batches if self.shuffle else max(len(indices), 1)
        batches = []
        for start in range(0, len(indices), pool):
            chunk = indices[start : start + pool]
            chunk = chunk[np.argsort(self.durations[chunk], kind="stable")]
            for b in range(0, len(chunk), self.batch_size):
                batch = chunk[b : b + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch.tolist())
        if self.shuffle:
            order = torch.randperm(len(batches), generator=self._order_generator()).tolist()
            batches = [batches[i] for i in order]
        yield from batches

    def _order_generator(self) -> torch.Generator | None:
        """The generator of the batch order: seeded by the sampler's ``seed`` and ``epoch`` when
        it has them (the ``EpochRandomSampler`` of ``neuralgraph train``, a
        ``DistributedSampler``), so that a resumed run replays the epoch's order and skips
        exactly the batches already trained on; otherwise torch's global generator."""
        seed, epoch = getattr(self.sampler, "seed", None), getattr(self.sampler, "epoch", None)
        if not isinstance(seed, int) or not isinstance(epoch, int):
            return None
        return torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1)


