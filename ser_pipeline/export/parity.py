"""Parity, checked before anything can be published.

On held-out clips: CCC(ONNX fp32, torch) >= :data:`TORCH_PARITY_MIN` for every dimension
and the graph really has dynamic batch and length, otherwise :class:`ParityError`; and
CCC(int8, fp32) >= :data:`INT8_PARITY_MIN` for every dimension and no output further than
:data:`INT8_MAX_ABS_DIFF` from fp32, otherwise that int8 candidate is out (when none is
left the model ships as fp32 only). The absolute bound is there because CCC alone is
fragile where outputs vary little: on clips whose fp32 outputs have a std of 0.03-0.05, a
constant 0.014 offset scores a CCC of 0.90-0.96, while a wide spread can hide a large
error behind a high one (docs/stages/export.md). ONNX outputs come from the project's one
student runner, :class:`~ser_pipeline.onnx_model.OnnxModel`, so parity measures what
``ser predict`` and ``ser evaluate`` will run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_pipeline.export.result import Candidate, Parity
from ser_pipeline.onnx_model import OnnxModel
from ser_pipeline.schemas import LABELS, SAMPLE_RATE

TORCH_PARITY_MIN = 0.999
INT8_PARITY_MIN = 0.98
#: Largest |int8 - fp32| on the 0..1 scale over every parity clip and dimension: 0.12 of
#: a point on the corpora's 1..7 rating scales, an eighth of one rating step, so int8
#: never moves a prediction by an amount a rater would notice.
INT8_MAX_ABS_DIFF = 0.02


def int8_verdict(fp32: np.ndarray, int8: np.ndarray) -> tuple[dict[str, float], float, bool]:
    """CCC(int8, fp32) per dimension, the largest absolute difference, and whether both
    bounds hold.

    Examples:
        >>> fp32 = np.array([[0.1] * 3, [0.9] * 3, [0.5] * 3])
        >>> ccc, worst, ok = int8_verdict(fp32, fp32 + 0.025)  # CCC passes, the offset not
        >>> round(min(ccc.values()), 3), round(worst, 3), ok
        (0.997, 0.025, False)
    """
    ccc = ccc_per_dimension(fp32, int8)
    worst = float(np.abs(np.asarray(int8) - np.asarray(fp32)).max())
    return ccc, worst, bool(min(ccc.values()) >= INT8_PARITY_MIN and worst <= INT8_MAX_ABS_DIFF)


def ccc_per_dimension(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Concordance correlation (audmetric) per label; NaN (constant outputs) counts as 0.

    Examples:
        >>> truth = np.array([[0.1, 0.2, 0.3], [0.5, 0.4, 0.9], [0.9, 0.1, 0.6]])
        >>> ccc_per_dimension(truth, truth)
        {'arousal': 1.0, 'dominance': 1.0, 'valence': 1.0}
    """
    import audmetric

    out = {}
    for index, label in enumerate(LABELS):
        value = float(audmetric.concordance_cc(truth[:, index], prediction[:, index]))
        out[label] = value if np.isfinite(value) else 0.0
    return out


def torch_predict(model: Any, signals: Sequence[np.ndarray]) -> np.ndarray:
    """``[n, 3]`` float64: each clip alone through the torch model, zero-padded to the
    students' ``MIN_SAMPLES`` as the ONNX runner pads."""
    import torch

    from ser_pipeline.students import MIN_SAMPLES

    model = model.eval()
    rows = []
    with torch.inference_mode():
        for signal in signals:
            signal = np.asarray(signal, np.float32)
            if signal.size < MIN_SAMPLES:
                signal = np.pad(signal, (0, MIN_SAMPLES - signal.size))
            rows.append(model(torch.from_numpy(signal)[None, :]).numpy()[0])
    return np.stack(rows).astype(np.float64)


def onnx_predict(path: str | Path, signals: Sequence[np.ndarray]) -> np.ndarray:
    """``[n, 3]`` float64: each clip alone through the ONNX runner."""
    model = OnnxModel(path)
    return np.stack([model.run(np.asarray(s, np.float32)[None, :])[0] for s in signals]
                    ).astype(np.float64)


def shape_check(model: Any, fp32: Path, *, min_samples: int) -> bool:
    """The graph really has dynamic batch and length: two batch sizes, two lengths (one
    of them exactly ``min_samples``)."""
    rng = np.random.default_rng(1)
    session = OnnxModel(fp32)
    for shape in ((3, min_samples), (1, SAMPLE_RATE * 3 + 77)):
        batch = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        got = session.run(batch)
        expected = torch_predict(model, list(batch))
        if got.shape != (shape[0], len(LABELS)) or not np.allclose(got, expected, atol=1e-3,
                                                                   rtol=1e-3):
            return False
    return True


def parity_message(parity: Parity) -> str:
    """Why fp32 parity failed, with the numbers (what ``ser export`` prints)."""
    numbers = ", ".join(f"{k}={v:.4f}" for k, v in parity.torch_vs_fp32.items())
    return (
        f"parity failed on {parity.clips} clips: CCC(onnx fp32, torch) [{numbers}]"
        f" (need >= {TORCH_PARITY_MIN}); dynamic shapes ok: {parity.dynamic_shapes_ok}. "
        "Nothing was published."
    )


def most_faithful(candidates: Sequence[Candidate]) -> Candidate | None:
    """The candidate with the best worst-dimension CCC against fp32, the smaller absolute
    difference breaking ties (None: none tried)."""
    tried = [c for c in candidates if c.ccc_vs_fp32]
    return max(tried, key=lambda c: (min(c.ccc_vs_fp32.values()),  # type: ignore[union-attr]
                                     -(c.max_abs_diff_vs_fp32 or 0.0)), default=None)


def int8_withheld_reason(candidates: Sequence[Candidate]) -> str:
    """One line on why no int8 file ships, e.g. ``int8 parity A 0.970 < 0.98``.

    The numbers are the most faithful candidate's; candidates that could not be built or
    were rejected by the saturation rule are counted.

    Examples:
        >>> from ser_pipeline.export.result import RecipeRecord
        >>> recipe = RecipeRecord(name="u8u8", mode="static", quant_format="qdq",
        ...     activation_type="uint8", weight_type="uint8", reduce_range=False,
        ...     per_channel=True, op_types=["Conv"], nodes_excluded=[])
        >>> tried = Candidate(method="u8u8", preprocess="symbolic", recipe=recipe,
        ...     ccc_vs_fp32={"arousal": 0.97, "dominance": 0.99, "valence": 0.99})
        >>> int8_withheld_reason([tried])
        'int8 parity A 0.970 < 0.98 (u8u8)'
    """
    best = most_faithful(candidates)
    if best is None:
        errors = "; ".join(f"{c.method}: {c.error}" for c in candidates)
        return f"no int8 candidate could be used ({errors})"
    low = [f"{label[0].upper()} {value:.3f}" for label, value in best.ccc_vs_fp32.items()
           if value < INT8_PARITY_MIN]
    problems = [f"{', '.join(low)} < {INT8_PARITY_MIN}"] if low else []
    if (best.max_abs_diff_vs_fp32 or 0.0) > INT8_MAX_ABS_DIFF:
        problems.append(f"max |int8 - fp32| {best.max_abs_diff_vs_fp32:.3f} > "
                        f"{INT8_MAX_ABS_DIFF}")
    rejected = len(candidates) - sum(1 for c in candidates if c.ccc_vs_fp32)
    tail = f" ({best.method}; {rejected} more rejected)" if rejected else f" ({best.method})"
    return f"int8 parity {'; '.join(problems)}{tail}"
