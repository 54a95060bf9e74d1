"""Fixtures of the reliability suite: wav folders, a proxied S3 environment, checkers."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf
from onnx_runs import exported  # noqa: F401  (session fixture shared with the registry tests)

from ser_pipeline.config import Settings

REPO = Path(__file__).resolve().parents[2]
SER = [str(Path(sys.executable).with_name("ser"))]


def write_wavs(folder: Path, n: int, *, seed: int = 0, seconds: tuple[float, float] = (0.3, 0.8),
               rate: int = 16_000) -> list[Path]:
    """``n`` distinct short tone WAVs (PCM_16) in ``folder``; returns their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n):
        t = np.arange(int(rng.uniform(*seconds) * rate)) / rate
        signal = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t)
        signal += 0.01 * rng.standard_normal(t.size)
        path = folder / f"clip{index:04d}.wav"
        sf.write(path, signal.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def direct_settings(moto_url: str, **more) -> Settings:
    """Settings that talk to moto directly (no proxy): the checker's view of the truth."""
    return Settings(s3_endpoint_url=moto_url, aws_access_key_id="testing-key-id",
                    aws_secret_access_key="testing-secret-key", aws_region="us-east-1", **more)


def cli_env(**more: str) -> dict[str, str]:
    """Environment for CLI subprocesses: this venv, no progress bars, one torch thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SER_", "AWS_"))}
    env.update({"SER_PROGRESS": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "PYTHONPATH": str(REPO), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1"})
    env.update(more)
    return env


def check_registry(storage) -> dict:
    """Verify a registry tree: ``latest`` of every name points at a version whose files all
    exist and match the manifest's sha256 (and whose manifest matches the alias's hash).
    Returns ``{name: {"latest": v, "complete": [...], "incomplete": [...]}}``."""
    out = {}
    for name in storage.list_dirs("models"):
        complete, incomplete = [], []
        for version in sorted(int(v) for v in storage.list_dirs(f"models/{name}") if v.isdigit()):
            folder = f"models/{name}/{version}"
            if not storage.exists(f"{folder}/manifest.json"):
                incomplete.append(version)
                continue
            manifest = json.loads(storage.read_bytes(f"{folder}/manifest.json"))
            for file_name, info in manifest["files"].items():
                data = storage.read_bytes(f"{folder}/{file_name}")
                assert hashlib.sha256(data).hexdigest() == info["sha256"], f"{folder}/{file_name}"
            complete.append(version)
        latest = None
        if storage.exists(f"models/{name}/latest.json"):
            alias = json.loads(storage.read_bytes(f"models/{name}/latest.json"))
            latest = alias["version"]
            assert latest in complete, f"latest -> {latest}, complete versions {complete}"
            manifest_bytes = storage.read_bytes(f"models/{name}/{latest}/manifest.json")
            assert hashlib.sha256(manifest_bytes).hexdigest() == alias["manifest_sha256"]
            assert latest == max(complete), "latest must be the newest complete version"
        out[name] = {"latest": latest, "complete": complete, "incomplete": incomplete}
    return out


def check_lake_parts(lake) -> dict[str, int]:
    """Every part listed in every table reads fully; returns rows per table."""
    rows = {}
    for table in ("audio", "human_labels", "quarantine", "teacher_labels", "splits"):
        total = 0
        for part in lake.parts(table):
            with lake.storage.fs.open(lake.storage.path(part), "rb") as handle:
                data = pq.read_table(handle)
            total += data.num_rows
        rows[table] = total
        assert total == lake.count(table)
    return rows

