"""The HTML page's plots (matplotlib, imported when a page is written) as base64 PNGs."""

from __future__ import annotations

import base64
import io
from typing import Any

from ser_pipeline.schemas import LABELS


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bars(records: list[dict]) -> Any:
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r['student']}\n{r['corpus']}" for r in records]
    x = np.arange(len(records))
    width = 0.8 / len(LABELS)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.2 * len(records) + 2), 3.6))
    for index, dimension in enumerate(LABELS):
        values = [r[f"ccc_{dimension}"] if r[f"ccc_{dimension}"] is not None else np.nan
                  for r in records]
        axis.bar(x + (index - 1) * width, values, width, label=dimension)
    axis.set_xticks(x, labels, fontsize=8)
    axis.set_ylabel("CCC")
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_title("Best CCC per student and dimension")
    axis.legend(fontsize=8)
    return figure


def _scatter(records: list[dict], model: str) -> Any:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(LABELS), figsize=(10, 3.4), sharex=True, sharey=True)
    for axis, dimension in zip(axes, LABELS, strict=True):
        points = [(r["teacher"], r["student"]) for r in records if r["dimension"] == dimension]
        if points:
            teacher, student = zip(*points, strict=True)
            axis.scatter(teacher, student, s=10, alpha=0.6)
        axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        axis.set_title(dimension)
        axis.set_xlabel("teacher")
    axes[0].set_ylabel("student")
    figure.suptitle(f"Student vs teacher per clip: {model}")
    return figure


def _size(records: list[dict]) -> Any:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.6))
    for record in records:
        if record["model_params"] and record["ccc_mean"] is not None:
            axis.scatter(record["model_params"], record["ccc_mean"])
            axis.annotate(str(record["student"]), (record["model_params"], record["ccc_mean"]),
                          fontsize=8, xytext=(4, 4), textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel("parameters (log scale)")
    axis.set_ylabel("mean CCC (A, D, V)")
    axis.set_title("Model size vs CCC")
    return figure
