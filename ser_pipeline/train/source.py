"""Decoded training audio from the lake's Parquet: cached whole, or streamed by row group.

When the train split is small (``cache_limit_s``) every decoded signal is kept in memory.
Above that, clips stream from Parquet row groups, shuffled block-wise (row groups in random
order, clips shuffled inside a window of about ``shuffle_clips`` clips), so memory stays
flat on lakes larger than RAM. The epoch order is a pure function of ``(seed, epoch)``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
import pyarrow.parquet as pq

from ser_pipeline.audio import decode_flac
from ser_pipeline.lake import Lake
from ser_pipeline.storage import Storage


class ClipSource:
    """Decoded signals of a set of clips, cached whole or streamed by Parquet row group."""

    def __init__(self, lake: Lake, parts: list[str], ids: Iterable[str], *, cache: bool,
                 shuffle_clips: int = 2048) -> None:
        self.lake, self.cache, self.shuffle_clips = lake, cache, shuffle_clips
        self.pid = os.getpid()
        wanted = set(ids)
        self.block_of: dict[str, tuple[str, int]] = {}
        self.blocks: dict[tuple[str, int], list[str]] = {}
        for part in parts:
            with lake.storage.open(part) as handle:
                reader = pq.ParquetFile(handle)
                for group in range(reader.num_row_groups):
                    column = reader.read_row_group(group, columns=["audio_id"]).column(0)
                    members = [i for i in column.to_pylist()
                               if i in wanted and i not in self.block_of]
                    for audio_id in members:
                        self.block_of[audio_id] = (part, group)
                    if members:
                        self.blocks[(part, group)] = members
        self.loaded: OrderedDict[tuple[str, int], dict[str, np.ndarray]] = OrderedDict()
        self.max_loaded_clips = 2 * shuffle_clips
        if cache:
            for block in self.blocks:
                self._load(block)

    def _load(self, block: tuple[str, int]) -> dict[str, np.ndarray]:
        if block in self.loaded:
            self.loaded.move_to_end(block)
            return self.loaded[block]
        part, group = block
        members = set(self.blocks[block])
        if self.pid != os.getpid():
            # A forked data worker: an s3fs client is not fork-safe, so open our own.
            storage = self.lake.storage
            self.lake, self.pid = Lake(Storage(storage.url, settings=storage.settings)), os.getpid()
        with self.lake.storage.open(part) as handle:
            table = pq.ParquetFile(handle).read_row_group(group, columns=["audio_id", "audio"])
        signals = {}
        for audio_id, audio in zip(table.column("audio_id").to_pylist(),
                                   table.column("audio").to_pylist(), strict=True):
            if audio_id in members and audio_id not in signals:
                signals[audio_id] = decode_flac(audio["bytes"])
        self.loaded[block] = signals
        if not self.cache:
            while (sum(len(v) for v in self.loaded.values()) > self.max_loaded_clips
                   and len(self.loaded) > 1):
                self.loaded.popitem(last=False)
        return signals

    def get(self, audio_id: str) -> np.ndarray:
        return self._load(self.block_of[audio_id])[audio_id]

    def epoch_order(self, seed: int, epoch: int) -> list[str]:
        """The clip order of an epoch: a pure function of ``(seed, epoch)``."""
        rng = np.random.default_rng([seed, epoch, 1])
        blocks = sorted(self.blocks)
        if self.cache:
            ids = sorted(self.block_of)
            return [ids[i] for i in rng.permutation(len(ids))]
        order: list[str] = []
        window: list[str] = []
        for index in rng.permutation(len(blocks)):
            window.extend(self.blocks[blocks[index]])
            if len(window) >= self.shuffle_clips:
                order.extend(window[i] for i in rng.permutation(len(window)))
                window = []
        order.extend(window[i] for i in rng.permutation(len(window)))
        return order
