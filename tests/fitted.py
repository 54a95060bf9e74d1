"""A student whose outputs follow the synthetic labels, without training it.

Training a student takes minutes; fitting its last ``Linear(., 3)`` by ridge regression on
the synthetic labels (:mod:`lakes`) takes one forward pass per clip and gives a model whose
outputs follow the labels, as a trained model's do. The ONNX tests (:mod:`onnx_runs`) and
``bench/onnx.py`` (CCC of the exported models) both use it.
"""

from __future__ import annotations

import numpy as np
import torch


def fit_head(model: torch.nn.Module, signals: list[np.ndarray], labels: list, *,
             ridge: float = 10.0) -> torch.nn.Module:
    """Fit ``model``'s last ``Linear(., 3)`` to ``labels`` (``[n, 3]``) of ``signals`` by
    ridge regression on its standardised inputs; returns ``model`` (in eval mode)."""
    head = [m for m in model.modules()
            if isinstance(m, torch.nn.Linear) and m.out_features == 3][-1]
    features: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, args, _o: features.append(args[0].detach()))
    model.eval()
    with torch.inference_mode():
        for signal in signals:
            model(torch.from_numpy(np.asarray(signal, np.float32))[None])
    hook.remove()
    x = torch.cat(features).double()
    y = torch.tensor(np.asarray(labels), dtype=torch.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w = torch.linalg.solve(z.T @ z + ridge * len(z) * torch.eye(z.shape[1], dtype=z.dtype),
                           z.T @ (y - y.mean(0)))
    with torch.no_grad():
        head.weight.copy_((w / std[:, None]).T.float())
        head.bias.copy_((y.mean(0) - (mean / std) @ w).float())
    return model
