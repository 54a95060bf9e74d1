"""The batch stream of a run: in-process, or from ``workers`` processes with prefetch.

The batch of step ``s`` is a pure function of ``(seed, s)``: its clip ids come from the
epoch order ``rng(seed, epoch)`` (:meth:`ClipSource.epoch_order`) and its crops and
augmentation from ``rng(seed, s)`` (:func:`make_batch`). So a worker can build any step on
its own: a torch ``DataLoader`` hands steps to the workers round-robin and returns the
batches in step order, identical to the in-process stream for any number of workers.

Each worker holds its own :class:`ClipSource` and reads Parquet row groups itself (the
lake is reopened in the worker, so ``s3://`` lakes work; workers that stream from a
remote lake are spawned, not forked, because an s3fs client is not fork-safe); a
streaming source keeps at most two shuffle windows decoded per worker, so memory stays
flat on lakes larger than RAM. A cached source is loaded once by the parent and shared
with forked workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch.utils.data import DataLoader, Dataset

from ser_pipeline.train.augment import make_batch
from ser_pipeline.train.hparams import Hyperparams
from ser_pipeline.train.source import ClipSource

#: Batches each worker keeps ready ahead of the loop.
PREFETCH = 4


class StepBatches(Dataset):
    """Map-style dataset whose item ``s`` is the augmented batch ``(x, y)`` of step ``s``."""

    def __init__(self, source: ClipSource, targets: Mapping[str, tuple], *, hp: Hyperparams,
                 seed: int, batch_size: int, steps_per_epoch: int) -> None:
        self.source, self.targets, self.hp, self.seed = source, targets, hp, seed
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self._epoch, self._order = -1, []

    def ids(self, step: int) -> list[str]:
        """The clip ids of step ``step``."""
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._order, self._epoch = self.source.epoch_order(self.seed, epoch), epoch
        return self._order[index * self.batch_size:(index + 1) * self.batch_size]

    def __len__(self) -> int:  # steps are unbounded; the sampler picks them
        return 2**62

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return make_batch(self.source, self.ids(step), self.targets, hp=self.hp, seed=self.seed,
                          step=step)


def batch_stream(batches: StepBatches, *, start: int, total: int, workers: int = 0,
                 pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of steps ``start .. total - 1`` in order.

    Args:
        batches: The run's step dataset.
        start: First step (a resumed run's saved step).
        total: One past the last step.
        workers: Worker processes (0: build batches in this process, as before workers).
        pin_memory: Pin batches in page-locked memory (for asynchronous copies to a GPU).
    """
    if workers <= 0:
        for step in range(start, total):
            x, y = batches[step]
            yield (x.pin_memory(), y.pin_memory()) if pin_memory else (x, y)
        return
    source = batches.source
    # A forked child inherits the parent's s3fs/aiohttp threads and locks mid-use, and an
    # S3 read in it can wait forever (seen: a worker stuck in fsspec's sync()). Workers
    # that will read a remote lake are spawned instead; a cached source never reads, so
    # forked workers share its decoded audio for free.
    remote_reads = not source.cache and not source.lake.storage.is_local
    loader = DataLoader(batches, batch_size=None, sampler=range(start, total),
                        num_workers=workers, prefetch_factor=PREFETCH, pin_memory=pin_memory,
                        persistent_workers=False,
                        multiprocessing_context="spawn" if remote_reads else None)
    yield from loader
