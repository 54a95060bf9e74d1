"""``ser compare``: paired ΔCCC of two models on the same clips, stored and reported."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_lake import write_splits
from lakes import add_teacher_labels, make_audio_lake
from typer.testing import CliRunner

from ser_pipeline.audio import decode_flac, encode_flac
from ser_pipeline.evaluate import EvaluateError, ModelIdentity, compare
from ser_pipeline.lake import content_key
from ser_pipeline.metrics import ccc
from ser_pipeline.schemas import LABELS
from ser_pipeline.students import MIN_SAMPLES

torch.set_num_threads(1)


def _key(signal: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(signal, np.float32).tobytes()).hexdigest()


class Oracle:
    """A real Predictor that knows each clip's labels (by the stored audio) and adds its
    own seeded noise: ``noise`` sets how good it is."""

    min_samples = MIN_SAMPLES
    batch_size = 16

    def __init__(self, name: str, records: list[dict], *, noise: float, seed: int = 0,
                 teacher_id: str = "toy-teacher") -> None:
        self.labels = {_key(decode_flac(encode_flac(r["signal"]))): r["labels"]
                       for r in records}
        self.noise, self.seed = noise, seed
        self.identity = ModelIdentity(model=name, model_key=content_key("oracle", noise, seed),
                                      model_format="onnx", student=name,
                                      teacher_id=teacher_id, corpora=["toy"])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        out = []
        for signal in batch:
            key = _key(signal)
            rng = np.random.default_rng([self.seed, int(key[:8], 16)])
            out.append(np.asarray(self.labels[key]) + rng.normal(scale=self.noise, size=3))
        return np.array(out)


@pytest.fixture()
def toy(lake_url: str):
    lake, records = make_audio_lake(lake_url, n=60, seconds=(0.3, 0.5), speakers=10)
    add_teacher_labels(lake, records, noise=0.02)
    by_split = write_splits(lake, records)
    return lake, records, by_split


def plain_paired_bootstrap(a: np.ndarray, b: np.ndarray, ref: np.ndarray, speakers: list,
                           d: int, *, resamples: int = 1000) -> tuple[float, float]:
    """ΔCCC by the book: draw speakers (sorted), gather their clips, score both models on
    the very same clips, take percentiles of the differences."""
    names = sorted(set(speakers))
    groups = [np.flatnonzero(np.array(speakers) == name) for name in names]
    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(resamples):
        clips = np.concatenate([groups[u] for u in rng.integers(0, len(names), len(names))])
        deltas.append(ccc(a[clips, d], ref[clips, d]) - ccc(b[clips, d], ref[clips, d]))
    lo, hi = np.percentile(np.array(deltas), [2.5, 97.5])
    return float(lo), float(hi)


def test_a_clearly_better_model_is_better_and_matches_a_plain_paired_bootstrap(toy) -> None:
    lake, records, by_split = toy
    good, poor = Oracle("good", records, noise=0.03), Oracle("poor", records, noise=0.3)
    report = compare(lake, good, poor)  # corpora from the models, dev split, teacher
    (result,) = report.comparisons
    assert (result.corpus, result.split, result.reference) == ("toy", "dev", "teacher")
    assert result.comparison.verdict == "better" and result.written
    assert [d.verdict for d in result.comparison.dimensions] == ["better"] * 3
    assert result.comparison.resampling.unit == "speaker"
    # the interval is the plain paired bootstrap on the stored predictions and labels
    ids = sorted(by_split["dev"])
    stored = {(r["model_key"], r["audio_id"]): [r[d] for d in LABELS]
              for r in lake.read("predictions").to_pylist()}
    a = np.array([stored[(result.model_a.model_key, i)] for i in ids])
    b = np.array([stored[(result.model_b.model_key, i)] for i in ids])
    teacher = {r["audio_id"]: [r[d] for d in LABELS]
               for r in lake.read("teacher_labels").to_pylist()}
    ref = np.array([teacher[i] for i in ids])
    speaker = {r["audio_id"]: r["speaker"] for r in records}
    spk = [speaker[i] for i in ids]
    for d, entry in enumerate(result.comparison.dimensions):
        assert entry.delta.value == pytest.approx(ccc(a[:, d], ref[:, d])
                                                  - ccc(b[:, d], ref[:, d]), abs=1e-12)
        lo, hi = plain_paired_bootstrap(a, b, ref, spk, d)
        assert (entry.delta.lo, entry.delta.hi) == (pytest.approx(lo, abs=1e-9),
                                                    pytest.approx(hi, abs=1e-9))
    # stored once: comparing again predicts nothing and writes no rows
    rows = lake.read("comparisons").to_pylist()
    assert len(rows) == 4 and {r["dimension"] for r in rows} == {*LABELS, "mean"}
    mean = next(r for r in rows if r["dimension"] == "mean")
    assert (mean["model_a"], mean["model_b"], mean["verdict"]) == ("good", "poor", "better")
    assert mean["delta_lo"] > 0 and mean["ci_unit"] == "speaker" and mean["ci_units"] == 10
    again = compare(lake, Oracle("good", records, noise=0.03), Oracle("poor", records,
                                                                      noise=0.3))
    assert not again.comparisons[0].written and lake.count("comparisons") == 4
    # the other way round: worse
    reverse = compare(lake, Oracle("poor", records, noise=0.3),
                      Oracle("good", records, noise=0.03), reference="human")
    assert reverse.comparisons[0].comparison.verdict == "worse"


def test_identical_models_are_not_distinguishable(toy) -> None:
    lake, records, _ = toy
    report = compare(lake, Oracle("one", records, noise=0.1), Oracle("same", records,
                                                                     noise=0.1))
    result = report.comparisons[0].comparison
    assert result.verdict == "not distinguishable"
    for entry in (*result.dimensions, result.overall):
        assert (entry.delta.value, entry.delta.lo, entry.delta.hi) == (0.0, 0.0, 0.0)
        assert entry.verdict == "not distinguishable"
    # two equally noisy but different models: no verdict either
    other = compare(lake, Oracle("seed0", records, noise=0.1),
                    Oracle("seed1", records, noise=0.1, seed=1))
    assert other.comparisons[0].comparison.verdict == "not distinguishable"


def test_bad_requests_get_clear_errors(toy) -> None:
    lake, records, _ = toy
    good = Oracle("good", records, noise=0.03)
    with pytest.raises(EvaluateError, match="neither a training run"):
        compare(lake, good, "not-a-model")
    with pytest.raises(EvaluateError, match="unknown reference 'crowd'"):
        compare(lake, good, Oracle("poor", records, noise=0.3), reference="crowd")
    with pytest.raises(EvaluateError, match="is not in the lake"):
        compare(lake, good, Oracle("poor", records, noise=0.3), corpora=["nope"])
    nobody = Oracle("x", records, noise=0.1, teacher_id=None)
    with pytest.raises(EvaluateError, match="--teacher"):
        compare(lake, nobody, Oracle("y", records, noise=0.2, teacher_id=None))


class Tiny(torch.nn.Module):
    """Waveform features -> Linear(3, 3) -> sigmoid; ``scale`` makes another model."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 3)
        with torch.no_grad():
            self.lin.weight.mul_(scale)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        crossings = (signal[:, 1:] * signal[:, :-1] < 0).float().mean(1)
        features = torch.stack([signal.abs().mean(1) * 10, signal.std(1) * 10,
                                crossings * 20], 1)
        return torch.sigmoid(self.lin(features))


def _onnx(path: Path, scale: float) -> Path:
    import onnx

    torch.onnx.export(Tiny(scale).eval(), (torch.randn(2, 16000),), str(path),
                      input_names=["signal"], output_names=["logits"],
                      dynamic_axes={"signal": {0: "batch", 1: "samples"},
                                    "logits": {0: "batch"}},
                      dynamo=False, external_data=False)
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {"teacher_id": "toy-teacher", "student": "tiny"})
    onnx.save(proto, str(path))
    return path


def test_cli_compare_onnx_files_prints_a_verdict_and_json(toy, tmp_path: Path) -> None:
    from ser_pipeline.cli import app

    lake = toy[0]
    first, second = _onnx(tmp_path / "a.onnx", 1.0), _onnx(tmp_path / "b.onnx", -2.0)
    runner = CliRunner()
    base = ["compare", str(first), str(second), "--corpus", "toy", "--lake", lake.url]
    result = runner.invoke(app, [*base, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    (entry,) = out["comparisons"]
    assert (entry["model_a"], entry["model_b"], entry["split"]) == ("a.onnx", "b.onnx", "dev")
    assert entry["verdict"] in ("better", "worse", "not distinguishable")
    assert [d["dimension"] for d in entry["dimensions"]] == list(LABELS)
    result = runner.invoke(app, [*base, "--split", "test"])
    assert result.exit_code == 0, result.output
    verdict = [line for line in result.stdout.splitlines() if line.startswith("verdict:")]
    assert len(verdict) == 1 and "toy/test vs teacher" in verdict[0]
    assert "ΔCCC" in result.stdout and "paired bootstrap over 10 speakers" in verdict[0]
    result = runner.invoke(app, ["compare", str(first), "nothing-here", "--lake", lake.url])
    assert result.exit_code == 2 and "neither a training run" in result.output
    same = runner.invoke(app, [*base[:2], str(first), *base[3:]])
    assert same.exit_code == 0 and "are not distinguishable" in same.stdout
