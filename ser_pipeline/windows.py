"""Cutting long audio into overlapping windows and averaging their outputs.

Labeling and ``ser predict`` share this so that a long file gets the same treatment in
both: windows of ``window_s`` with ``overlap_s`` overlap, outputs averaged with weights
proportional to each window's duration (a short tail counts less).
"""

from __future__ import annotations

import numpy as np

from ser_pipeline.schemas import SAMPLE_RATE


def window_bounds(
    n_samples: int, *, window_s: float = 10.0, overlap_s: float = 2.0,
    sample_rate: int = SAMPLE_RATE,
) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` covering the signal; one window if it is short.

    Examples:
        >>> window_bounds(16000 * 25, window_s=10, overlap_s=2)
        [(0, 160000), (128000, 288000), (256000, 400000)]
    """
    if window_s <= 0 or overlap_s < 0 or overlap_s >= window_s:
        raise ValueError(
            f"need window_s > overlap_s >= 0, got window_s={window_s}, overlap_s={overlap_s}"
        )
    window = int(round(window_s * sample_rate))
    hop = window - int(round(overlap_s * sample_rate))
    if n_samples <= window:
        return [(0, n_samples)]
    bounds = []
    start = 0
    while True:
        end = min(start + window, n_samples)
        bounds.append((start, end))
        if end >= n_samples:
            return bounds
        start += hop


def weighted_average(outputs: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
    """Average window outputs ``[n_windows, dims]`` weighted by window duration."""
    weights = np.array([end - start for start, end in bounds], dtype=np.float64)
    return (np.asarray(outputs, dtype=np.float64) * weights[:, None]).sum(0) / weights.sum()
