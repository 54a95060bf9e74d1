"""The distillation objective: MSE plus ``1 - CCC``, and the reported CCC metric."""

from __future__ import annotations

import math

import numpy as np
import torch

from ser_pipeline.schemas import LABELS


def ccc_torch(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Differentiable CCC per column: ``2 cov / (var_p + var_t + (mean_p - mean_t)^2)``.

    Population statistics (divide by n), the same definition as ``audmetric.concordance_cc``.
    """
    mean_p, mean_t = prediction.mean(0), target.mean(0)
    var_p = (prediction - mean_p).pow(2).mean(0)
    var_t = (target - mean_t).pow(2).mean(0)
    cov = ((prediction - mean_p) * (target - mean_t)).mean(0)
    return 2 * cov / (var_p + var_t + (mean_p - mean_t).pow(2) + 1e-8)


def distillation_loss(prediction: torch.Tensor, target: torch.Tensor, *,
                      ccc_weight: float) -> torch.Tensor:
    """MSE plus ``ccc_weight * (1 - mean CCC over A/D/V)``."""
    loss = torch.nn.functional.mse_loss(prediction, target)
    if ccc_weight:
        loss = loss + ccc_weight * (1 - ccc_torch(prediction, target).mean())
    return loss


def ccc_report(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """audmetric CCC per dimension and their mean (the reported metric)."""
    import audmetric

    result = {label: float(audmetric.concordance_cc(truth[:, i], prediction[:, i]))
              for i, label in enumerate(LABELS)}
    result = {k: (0.0 if math.isnan(v) else v) for k, v in result.items()}
    result["mean"] = float(np.mean([result[label] for label in LABELS]))
    return result
