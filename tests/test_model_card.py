"""Model cards: front matter, the table row, usage, and the card a publish writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from onnx_runs import exported, make_run  # noqa: F401
from pydantic import ValidationError

from ser_pipeline.config import Settings
from ser_pipeline.export.result import CccRow, License
from ser_pipeline.model_card import CARD_FILE, model_card, table_rows
from ser_pipeline.registry import Manifest, Registry, Serving, read_manifest
from ser_pipeline.registry.manifest import (
    Figures,
    FileEntry,
    ManifestPerformance,
    ManifestTraining,
)
from ser_pipeline.schemas import LABELS

BASE = read_manifest((Path(__file__).parent / "data/registry-v1/models/toy-w2s/1/"
                      "manifest.json").read_text())


def _manifest(**changes) -> Manifest:
    """The schema-1 fixture's manifest with ``changes`` (validated again)."""
    data = BASE.model_copy(deep=True, update=changes).model_dump(by_alias=True)
    data.pop("uri")
    return Manifest.model_validate(data)


MANIFEST = _manifest(
    name="ser-wav2small", version=3, params=10897, min_samples=1024, warnings=[],
    files={"model.onnx": FileEntry(sha256="0" * 64, bytes=301_000),
           "model.int8.onnx": FileEntry(sha256="1" * 64, bytes=120_500)},
    serving=Serving(default_file="model.int8.onnx",
                    reason="int8 is faster: 4.2 ms vs fp32 6.0 ms per 5 s clip"),
    license=License(id="cc-by-nc-sa-4.0", source="teacher t", restricts_use=True,
                    warning=None),
    provenance=BASE.provenance.model_copy(update={
        "teacher_id": "w2v2-tiny-ft", "student": "wav2small", "run_id": "wav2small-r1"}),
    ccc=[
        CccRow(reference="teacher", corpus="demo-pool", split="dev", n=300, source="metrics",
               arousal=0.931, dominance=0.912, valence=0.954),
        CccRow(reference="human", corpus="demo-pool", split="dev", n=290, source="metrics",
               arousal=0.51, dominance=0.32, valence=0.43),
        CccRow(reference="teacher", corpus="demo", split="dev", n=40, source="metrics",
               arousal=0.8, dominance=0.7, valence=0.6),
    ],
    performance=ManifestPerformance(
        gflop_per_clip=None, cpu_peak=None, int8_speedup_vs_fp32=None,
        int8=Figures(latency_ms=4.25, peak_rss_increase_mb=7.5),
        fp32=Figures(latency_ms=6.0, peak_rss_increase_mb=9.0)),
    training=ManifestTraining(corpora=["demo-pool"]),
)


def _front(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_front_matter_carries_licence_teacher_corpora_and_metrics():
    front = _front(model_card(MANIFEST))
    assert front["license"] == "cc-by-nc-sa-4.0" and front["teacher"] == "w2v2-tiny-ft"
    assert front["datasets"] == ["demo", "demo-pool"]
    results = {(r["dataset"]["name"], r["dataset"]["split"]): {m["name"]: m["value"]
                                                               for m in r["metrics"]}
               for r in front["model-index"][0]["results"]}
    assert results[("demo-pool", "dev")]["CCC dominance vs teacher"] == 0.912
    assert results[("demo-pool", "dev")]["CCC valence vs human"] == 0.43
    assert "CCC arousal vs human" not in results[("demo", "dev")]  # no human row there


def test_table_row_joins_references_and_costs():
    rows = {(r["corpus"], r["split"]): r for r in table_rows(MANIFEST)}
    pool = rows[("demo-pool", "dev")]
    assert (pool["teacher_arousal"], pool["human_arousal"], pool["n"]) == (0.931, 0.51, 300)
    assert (pool["int8_kb"], pool["ms_per_5s"], pool["peak_rss_mb"]) == (120.5, 4.25, 7.5)
    assert rows[("demo", "dev")]["human_valence"] is None
    card = model_card(MANIFEST)
    assert "| demo-pool | dev | 300 | 0.510 | 0.320 | 0.430 | 0.931 | 0.912 | 0.954 | " \
           "10,897 | 120.5 | 4.2 | 7.5 |" in card
    assert 'ort.InferenceSession("model.int8.onnx"' in card and "audonnx.load" in card
    assert "serves `model.int8.onnx`: int8 is faster" in card


def test_fp32_only_and_unknown_licence():
    manifest = _manifest(
        **{k: getattr(MANIFEST, k) for k in ("ccc", "performance", "provenance", "training")},
        files={"model.onnx": MANIFEST.files["model.onnx"]},
        serving=Serving(default_file="model.onnx", reason="no int8 file (int8 parity A 0.9)"),
        license=License(id="unknown", source="teacher x", restricts_use=None, warning=None))
    row = table_rows(manifest)[0]
    assert row["int8_kb"] is None and row["ms_per_5s"] == 6.0  # the fp32 figures
    card = model_card(manifest)
    front = _front(card)
    assert (front["license"], front["license_name"]) == ("other", "unknown")
    assert 'ort.InferenceSession("model.onnx"' in card
    assert "serves `model.onnx`: no int8 file (int8 parity A 0.9)." in card
    assert "#int8` serves it" not in card  # there is no int8 file to point at
    with pytest.raises(ValidationError, match="not among the files"):
        _manifest(files=manifest.files, serving=MANIFEST.serving)  # serves a missing file


def test_card_states_the_served_file_and_its_costs():
    manifest = _manifest(**{k: getattr(MANIFEST, k) for k in (
        "files", "ccc", "performance", "provenance", "training", "params", "license")},
        serving=Serving(default_file="model.onnx",
                        reason="fp32 is faster: 6.0 ms vs int8 9.0 ms per 5 s clip"))
    row = table_rows(manifest)[0]
    assert (row["int8_kb"], row["ms_per_5s"], row["peak_rss_mb"]) == (120.5, 6.0, 9.0)
    card = model_card(manifest)
    assert "serves `model.onnx`: fp32 is faster: 6.0 ms vs int8 9.0 ms per 5 s clip." in card
    assert "`registry://toy-w2s@1#int8` serves it" in card
    assert 'ort.InferenceSession("model.onnx"' in card


def test_publish_writes_the_card_and_its_snippet_runs(exported, tmp_path):  # noqa: F811
    url = str(tmp_path / "registry")
    registry = Registry(url, settings=Settings(registry=url, db=str(tmp_path / "ser.duckdb")))
    manifest = registry.publish(exported["result"], name="card-w2s")
    folder = tmp_path / "registry" / "models" / "card-w2s" / "1"
    card = (folder / CARD_FILE).read_text()
    assert card == model_card(manifest)
    front = _front(card)
    assert front["license"] == manifest.license.id
    assert front["model-index"][0]["name"] == "card-w2s"
    assert f"serves `{manifest.serving.default_file}`: {manifest.serving.reason}" in card
    # the card's ONNX Runtime recipe, run as written on a one-second signal
    session = ort.InferenceSession(str(folder / manifest.serving.default_file),
                                   providers=["CPUExecutionProvider"])
    signal = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    (logits,) = session.run(["logits"], {"signal": signal[None, :].astype(np.float32)})
    assert logits.shape == (1, 3) and np.isfinite(logits).all()


@pytest.mark.parametrize("missing", ["ccc", "performance"])
def test_card_without_metrics_or_timings_still_renders(missing):
    manifest = MANIFEST.model_copy(update={missing: [] if missing == "ccc" else None})
    card = model_card(manifest)
    assert "## Results" in card and "–" in card


def _section(file: str = "model.int8.onnx"):
    from ser_pipeline.registry.manifest import (
        RobustnessCheck,
        RobustnessFigure,
        RobustnessSection,
    )

    def figure(dimension: str, drop: float, unchanged: float) -> RobustnessFigure:
        return RobustnessFigure(
            dimension=dimension, clean_ccc=0.931, clean_ccc_lo=0.912, clean_ccc_hi=0.947,
            perturbed_ccc=0.931 - drop, ccc_drop=drop, ccc_drop_lo=drop - 0.011,
            ccc_drop_hi=drop + 0.013, unchanged_share=unchanged,
            passed_drop=drop <= 0.05, passed_unchanged=unchanged >= 0.9,
            passed=drop <= 0.05 and unchanged >= 0.9)

    return RobustnessSection(
        file=file, corpus="demo-pool", split="dev", reference="teacher",
        teacher_id="w2v2-tiny-ft", n_clips=215, max_ccc_drop=0.05, min_unchanged_share=0.9,
        ci_level=0.95, ci_method="percentile", ci_unit="speaker", ci_units=54,
        ci_resamples=1000, perturbation_seed=0, perturbations=[
            RobustnessCheck(perturbation="gain_minus20db", description="x0.1", passed=True,
                            dimensions=[figure(d, 0.0, 1.0) for d in LABELS]),
            RobustnessCheck(perturbation="noise_snr5db", description="white noise, 5 dB SNR",
                            passed=False,
                            dimensions=[figure(d, 0.412, 0.2) for d in LABELS])])


def test_card_shows_robustness_beside_the_ser_tests_thresholds():
    manifest = MANIFEST.model_copy(update={"robustness": [_section()]})
    card = model_card(manifest)
    section = card[card.index("## Robustness"):card.index("## Which file to run")]
    assert "`model.int8.onnx` on seeded perturbations" in section
    assert "ser-wav2small@3 · demo-pool · dev · vs teacher · 215 clips" in section
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| perturbation | drop A | drop D | drop V |")
    assert lines[1] == ("| gain -20 dB | 0.000 [-0.011, 0.013] | 0.000 [-0.011, 0.013] | "
                        "0.000 [-0.011, 0.013] | 100/100/100% | pass |")
    assert lines[2].startswith("| noise 5 dB | 0.412 [0.401, 0.425] |")
    assert lines[2].endswith("| 20/20/20% | FAIL |")
    assert "CCC drop <= 0.05, unchanged >= 90%" in section
    assert "clean CCC: A 0.931 [0.912, 0.947]" in section
    assert "- `noise_snr5db`: white noise, 5 dB SNR" in section
    without = model_card(MANIFEST)
    assert "No robustness results were recorded at publish. `ser robustness --model " \
           "registry://ser-wav2small@3`" in without


def test_manifest_warns_when_robustness_ran_on_another_file(exported):  # noqa: F811
    from ser_pipeline.registry.manifest import FileEntry as Entry
    from ser_pipeline.registry.manifest import build_manifest

    result = exported["result"]
    files = {n: Entry(sha256=f.sha256, bytes=f.bytes) for n, f in result.files.items()}
    serving = Serving(default_file="model.onnx", reason="fp32 is faster")
    tested_other = build_manifest(result, name="w", version=1, files=files, serving=serving,
                                  robustness=[_section("model.int8.onnx")])
    assert "robustness was measured on model.int8.onnx; model.onnx is served" in (
        tested_other.warnings)
    tested_served = build_manifest(result, name="w", version=1, files=files, serving=serving,
                                   robustness=[_section("model.onnx")])
    assert not any("robustness" in w for w in tested_served.warnings)
    assert read_manifest(tested_served.to_json()).robustness == tested_served.robustness
