"""Runs for export/registry/predict tests: a real Wav2Small whose head is fitted.

Training a student takes minutes; fitting the last ``Linear(., 3)`` by ridge regression
on the synthetic labels takes one forward pass and gives a model whose outputs follow the
labels, as a trained model's do (a random head gives near-constant outputs, on which no
quantised model can reach CCC 0.98: the parity-failure tests use exactly that).
"""

from __future__ import annotations

import pytest
import torch
from fitted import fit_head
from lakes import make_audio_lake

from ser_pipeline.export import export_run
from ser_pipeline.lake import Lake, content_key
from ser_pipeline.runs import save_checkpoint, write_run_meta
from ser_pipeline.students import build_student, count_parameters

TEACHER = "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"
SPLIT_NAME = "test-split"
#: Share of the synthetic labels' range the fitted head reproduces (see make_run).
LABEL_SPREAD = 0.4
#: The lake snapshot the fake run records (run.json's part files per table).
SNAPSHOT = {"audio": ["audio/part-snapshot-test.parquet"]}


def make_run(lake_url: str, *, run_id: str = "wav2small-test-run", fitted: bool = True,
             outlier: float = 0.0, n: int = 32, n_dev: int = 12,
             lake: Lake | None = None, records: list | None = None,
             head_scale: float = 1.0) -> tuple[Lake, str, list]:
    """A lake with clips, a dev/train split and one wav2small run with a best checkpoint.

    ``outlier`` adds that bias to one channel of the first conv (a tampered weight): fp32
    is unaffected, but a per-tensor int8 activation range stretched by one channel
    flattens the others, the classic way int8 breaks. ``head_scale`` multiplies the fitted
    head's weights: -1 gives a deliberately worse model whose outputs still vary (its
    predictions run against the labels), as a bad training run's would.
    """
    torch.manual_seed(0)
    fresh = lake is None
    if fresh:
        lake, records = make_audio_lake(lake_url, n=n, seconds=(1.0, 2.5))
    if fresh:
        rows = [{"audio_id": r["audio_id"], "corpus": "toy",
                 "split": "dev" if i < n_dev else "train", "split_name": SPLIT_NAME}
                for i, r in enumerate(records)]
        lake.write_part("splits", rows, key=content_key("splits", SPLIT_NAME, n))
    model = build_student("wav2small")
    if outlier:
        with torch.no_grad():
            model.blocks[0][0].bias[0] += outlier
    if fitted:
        train = records[n_dev:]
        # Real A/D/V labels, and a teacher's outputs, sit around the middle of the scale
        # with a spread (std) of ~0.1-0.15; the synthetic ones are uniform on 0..1 (std
        # 0.29). The head follows them squeezed to LABEL_SPREAD of their range, so the
        # outputs live on the scale the exporter's absolute int8 bound (0.02) is set for.
        fit_head(model, [r["signal"] for r in train],
                 [[0.5 + LABEL_SPREAD * (v - 0.5) for v in r["labels"]] for r in train])
    if head_scale != 1.0:
        head = [m for m in model.modules()
                if isinstance(m, torch.nn.Linear) and m.out_features == 3][-1]
        with torch.no_grad():
            head.weight.mul_(head_scale)
    checkpoint = save_checkpoint(lake, run_id, 100, model.state_dict())
    write_run_meta(lake, run_id, {
        "student": "wav2small", "student_options": {}, "teacher_id": TEACHER,
        "teacher_sha256": "ab" * 32, "lake_snapshot": SNAPSHOT, "seed": 0,
        "git_sha": "0123abc", "hyperparams": {"lr": 0.003}, "params": count_parameters(model),
        "best_checkpoint": checkpoint, "best_step": 100,
        "best_dev_ccc": {"arousal": 0.71, "dominance": 0.62, "valence": 0.43, "mean": 0.587},
        "corpora": ["toy"], "split_name": SPLIT_NAME,
    })
    return lake, run_id, records


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One fitted run exported once per session (without timing), shared by the modules:
    ``{lake, run_id, records, result, out_dir}``."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("exported")
    lake, run_id, records = make_run(str(base / "lake"))
    result = export_run(lake, run_id, out_dir=base / "export", calibration_clips=8,
                        measure_performance=False)
    return {"lake": lake, "run_id": run_id, "records": records, "result": result,
            "out_dir": base / "export"}
