"""The espeak-ng demo corpus: real speech, mixed formats, labels from the parameters."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.demo import (
    DEV_VARIANTS,
    FORMATS,
    DemoCorpusError,
    background,
    clip_params,
    human_clip_params,
    labels_for,
    make_demo_corpus,
    make_demo_pool,
    pool_clip_params,
    render_pool_clip,
)
from ser_pipeline.ingest import ingest
from ser_pipeline.lake import Lake


def read_sheet(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("style", ["varied", "studio"])
def test_small_corpus_mixes_formats_and_leaves_an_unlabeled_pool(tmp_path, style):
    summary = make_demo_corpus(str(tmp_path), n=5, seed=3, unlabeled_fraction=0.4,
                               max_workers=2, style=style)
    params_of = human_clip_params if style == "varied" else clip_params
    assert (summary["clips"], summary["labelled"], summary["unlabeled"]) == (5, 3, 2)
    sheet = read_sheet(tmp_path / "labels.csv")
    assert len(sheet) == 5
    seen = set()
    for row in sheet:
        info = sf.info(tmp_path / row["path"])
        seen.add((info.format, info.samplerate, info.channels))
        assert 0.8 < info.duration < (10.0 if style == "varied" else 6.0)
        signal, _ = sf.read(tmp_path / row["path"])
        assert np.abs(signal).max() > 0.05  # speech, not silence
        labelled = row["arousal"] != ""
        assert labelled == (row["dominance"] != "") == (row["valence"] != "")
        if labelled:
            index = int(row["path"].rsplit("-", 1)[1].split(".")[0])
            expected = labels_for(params_of(index, seed=3), index=index, seed=3)
            assert [float(row[d]) for d in ("arousal", "dominance", "valence")] == (
                pytest.approx(expected, abs=1e-4))
    assert seen == {(f[1], f[3], f[4]) for f in FORMATS}
    assert sum(row["arousal"] == "" for row in sheet) == 2
    if style == "varied":  # like the pool's training clips: never a dev voice; no split
        assert "split" not in sheet[0] and {"noise", "snr_db"} <= set(sheet[0])
        assert not {r["voice"].partition("+")[2] for r in sheet} & set(DEV_VARIANTS)
    with pytest.raises(ValueError, match="style must be one of"):
        make_demo_corpus(str(tmp_path / "x"), n=1, style="loud")


def test_labels_follow_the_documented_directions():
    base = clip_params(0, seed=0)
    slow, fast = replace(base, rate=120), replace(base, rate=250)
    low, high = replace(base, pitch=25), replace(base, pitch=75)
    a = labels_for  # noise is per (seed, index), so equal for both sides of a comparison
    assert a(fast, index=0, seed=0)[0] > a(slow, index=0, seed=0)[0] + 0.5
    assert a(low, index=0, seed=0)[1] > a(high, index=0, seed=0)[1] + 0.3
    assert a(high, index=0, seed=0)[2] > a(low, index=0, seed=0)[2] + 0.3
    values = np.array([labels_for(clip_params(i, seed=1), index=i, seed=1) for i in range(200)])
    assert values.min() >= 0 and values.max() <= 1 and values.std(axis=0).min() > 0.08


def test_same_seed_same_audio_and_reruns_add_nothing(tmp_path, lake_url):
    make_demo_corpus(str(tmp_path / "a"), n=3, seed=7)
    make_demo_corpus(str(tmp_path / "b"), n=3, seed=7)
    sheet = read_sheet(tmp_path / "a" / "labels.csv")
    assert sheet == read_sheet(tmp_path / "b" / "labels.csv")
    assert any(row["path"].endswith(".ogg") for row in sheet)
    for row in sheet:
        left, _ = sf.read(tmp_path / "a" / row["path"])
        right, _ = sf.read(tmp_path / "b" / row["path"])
        assert np.array_equal(left, right)
        # byte for byte (Ogg too), so fresh runs give the same audio ids and demo teacher
        assert ((tmp_path / "a" / row["path"]).read_bytes()
                == (tmp_path / "b" / row["path"]).read_bytes())
    lake = Lake.open(lake_url)
    first = ingest(lake, str(tmp_path / "a"), corpus="demo", recipe="csv")
    assert first["ingested"] == 3 and first["quarantined_total"] == 0
    before = {row["path"]: (tmp_path / "a" / row["path"]).read_bytes() for row in sheet}
    make_demo_corpus(str(tmp_path / "a"), n=3, seed=7)  # regenerate in place
    assert before == {p: (tmp_path / "a" / p).read_bytes() for p in before}
    again = ingest(lake, str(tmp_path / "a"), corpus="demo", recipe="csv")
    assert again["ingested"] == 0 and again["skipped_existing"] == 3


def test_missing_espeak_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without espeak-ng
    with pytest.raises(DemoCorpusError, match="apt-get install espeak-ng"):
        make_demo_corpus(str(tmp_path / "out"), n=1)
    result = CliRunner().invoke(app, ["demo-corpus", str(tmp_path / "out"), "--n", "1"])
    assert result.exit_code == 2 and "espeak-ng is not installed" in result.output


def test_cli_demo_corpus_json(tmp_path):
    result = CliRunner().invoke(app, ["demo-corpus", str(tmp_path), "--n", "2", "--json",
                                      "--unlabeled-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["clips"], summary["labelled"], summary["unlabeled"]) == (2, 1, 1)
    assert (tmp_path / "labels.csv").exists()


def test_pool_dev_voices_and_sentences_are_never_trained_on(tmp_path):
    summary = make_demo_pool(str(tmp_path / "pool"), n=60, seed=2, max_workers=2)
    sheet = read_sheet(tmp_path / "pool" / "labels.csv")
    assert summary["clips"] == len(sheet) == 60 and summary["dev"] == sum(
        r["split"] == "dev" for r in sheet) > 0
    train = [r for r in sheet if r["split"] == "train"]
    dev = [r for r in sheet if r["split"] == "dev"]
    assert not {r["voice"] for r in train} & {r["voice"] for r in dev}
    assert not {r["sentence"] for r in train} & {r["sentence"] for r in dev}
    assert {r["voice"].partition("+")[2] for r in dev} <= set(DEV_VARIANTS)
    # only dev clips carry "human" labels: the training pool is unlabeled, as in the paper
    assert all(r["arousal"] == "" for r in train) and all(r["arousal"] != "" for r in dev)
    assert len({r["noise"] for r in sheet}) >= 3 and len({r["voice"] for r in sheet}) > 20
    # the speaker's gender feeds the fairness slices: f* variants female, m*/croak male,
    # Klatt voices unknown (empty)
    for row in sheet:
        variant = row["voice"].partition("+")[2]
        expected = ("" if variant.startswith("klatt") else
                    "female" if variant.startswith("f") else "male")
        assert row["gender"] == expected, row["voice"]
    assert {"female", "male"} <= {r["gender"] for r in dev}
    for row in sheet[:8]:
        info = sf.info(tmp_path / "pool" / row["path"])
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        assert info.duration == pytest.approx(float(row["seconds"]), abs=1e-3)
    # same seed, same bytes; a re-run keeps the files and ingest adds nothing new
    make_demo_pool(str(tmp_path / "again"), n=4, seed=2, max_workers=1)
    for row in sheet[:4]:
        assert (tmp_path / "pool" / row["path"]).read_bytes() == (
            tmp_path / "again" / row["path"]).read_bytes()


def test_pool_noise_sits_at_the_drawn_snr():
    params = replace(pool_clip_params(0, seed=0), noise="pink", snr_db=10.0, lead_s=0.0,
                     tail_s=0.0)
    clean = render_pool_clip(replace(params, noise="none"), index=0, seed=0)
    noisy = render_pool_clip(params, index=0, seed=0)
    noise = noisy - clean
    snr = 10 * np.log10(np.mean(clean ** 2) / np.mean(noise ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)
    for kind in ("white", "pink", "brown", "hum"):
        x = background(kind, 16000, rate=16000, rng=np.random.default_rng(0))
        assert np.sqrt(np.mean(x ** 2)) == pytest.approx(1.0, rel=1e-3)


def test_demo_teacher_rebuild_runs_the_whole_recipe_from_scratch(tmp_path):
    """What `make demo-teacher` runs, on a handful of clips and steps."""
    from ser_pipeline.demo.teacher import TeacherRecipe, provenance_of, rebuild_demo_teacher
    from ser_pipeline.teacher import load_teacher

    recipe = TeacherRecipe(steps=2, views=2, batch_size=4, max_clip_s=1.0)
    summary = rebuild_demo_teacher(workdir=tmp_path / "work", out=tmp_path / "out", n=10,
                                   recipe=recipe)
    assert summary["train_all"] is True and summary["n_train"] + summary["n_heldout"] >= 5
    assert recipe.matches(provenance_of(tmp_path / "out"), corpus="demo")
    teacher = load_teacher(f"hf:{tmp_path / 'out'}")
    assert not teacher.is_random and teacher.teacher_id == summary["teacher_id"]
