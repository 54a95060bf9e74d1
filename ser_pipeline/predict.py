"""``ser predict``: A/D/V for audio files from a published (or local) ONNX model.

Any format the decoder reads works (wav, flac, ogg, mp3, ...); files are downmixed and
resampled to 16 kHz mono, and each file goes through the student runner's clip rule
(:meth:`ser_pipeline.onnx_model.OnnxModel.predict_clip`: the windows labeling uses,
averaged by duration), as in ``ser evaluate``. A registry model without ``#int8``/``#fp32``
serves the file its manifest chose at publish (the faster one that passed parity) and
says which and why in one line. A file that cannot be decoded yields a row with
``error`` naming the file and the reason; the other files are still predicted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ser_pipeline.audio import AudioError, decode
from ser_pipeline.config import Settings, get_settings
from ser_pipeline.onnx_model import DEFAULT_THREADS, OnnxModel
from ser_pipeline.progress import progress_bar
from ser_pipeline.schemas import LABELS, SAMPLE_RATE
from ser_pipeline.storage import filesystem_for

log = logging.getLogger(__name__)

#: Extensions picked up when a directory is given.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif",
                    ".au", ".w64", ".caf")


def expand_inputs(paths: list[str], *, settings: Settings | None = None) -> list[str]:
    """Files as given, and audio files (recursively, sorted) under given directories.

    A path that does not exist stays in the list, so it gets an error row of its own.
    """
    out: list[str] = []
    for path in paths:
        fs, root = filesystem_for(path, settings=settings)
        if fs.isdir(root):
            found = sorted(p for p in fs.find(root) if p.lower().endswith(AUDIO_EXTENSIONS))
            prefix = "s3://" if path.startswith("s3://") else ""
            out.extend(prefix + p for p in found)
        else:
            out.append(path)
    return out


def _read(path: str, settings: Settings) -> bytes:
    fs, target = filesystem_for(path, settings=settings)
    try:
        return fs.cat_file(target)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a directory") from None


def predict_files(
    model_uri: str,
    paths: list[str],
    *,
    settings: Settings | None = None,
    registry: str | None = None,
    window_s: float = 10.0,
    overlap_s: float = 2.0,
    threads: int = DEFAULT_THREADS,
    precision: str | None = None,
    cache_dir: str | Path | None = None,
) -> list[dict]:
    """Predict arousal, dominance and valence for every file.

    Args:
        model_uri: ``registry://name[@version|latest][#int8|#fp32]`` or a local path.
        paths: Audio files or directories (local or ``s3://``).
        settings: Settings (registry URL, credentials); default from env.
        registry: Registry URL overriding ``settings.registry``.
        window_s: Window length for long files (as in labeling).
        overlap_s: Overlap between windows.
        threads: ONNX Runtime intra-op threads (default 1: the paper's one-core setting).
        precision: ``"int8"`` or ``"fp32"`` to force a file; default the manifest's choice.
        cache_dir: Local model cache.

    Returns:
        One row per file: ``file``, ``arousal``, ``dominance``, ``valence``,
        ``duration_s``, ``n_windows``, ``error`` (``None`` when it worked).
    """
    from ser_pipeline.registry import resolve_model

    settings = settings or get_settings()
    model_path, notice = resolve_model(model_uri, settings=settings, registry=registry,
                                       cache_dir=cache_dir, precision=precision)
    if notice:
        log.warning(notice)
    model = OnnxModel(model_path, threads=threads)
    files = expand_inputs(paths, settings=settings)
    rows = []
    with progress_bar("predict", total=len(files)) as advance:
        for path in files:
            row: dict = {"file": path, **{label: None for label in LABELS},
                         "duration_s": None, "n_windows": None, "error": None}
            try:
                signal = decode(_read(path, settings)).signal
                values, n_windows = model.predict_clip(signal, window_s=window_s,
                                                       overlap_s=overlap_s)
                row.update({label: float(v) for label, v in zip(LABELS, values, strict=True)},
                           duration_s=signal.size / SAMPLE_RATE, n_windows=n_windows)
            except AudioError as error:
                row["error"] = f"{path}: {error.reason}: {error.message}"
            except (OSError, ValueError) as error:
                row["error"] = f"{path}: {error}"
            rows.append(row)
            advance(1)
    return rows
