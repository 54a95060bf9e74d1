"""End-to-end distillation: demo defaults, pre-flight checks and the skip rules.

The distill flow chains the stages; this module holds the decisions the flow needs so the
flow stays wiring:

- ``prepare_demo_corpus`` / ``prepare_demo_pool`` / ``prepare_demo_teacher`` build the
  embedded demo: a small human-labeled espeak-ng corpus, a larger unlabeled pool, and a tiny
  teacher fine-tuned on the human labels (as the paper built its teacher).
- ``preflight`` fails a run early, in seconds, when a source or the teacher is missing,
  rather than after hours of work.
- ``find_completed_run`` and ``published_for_run`` make training and publishing incremental:
  a re-run with the same inputs reuses the finished run and the published version.
- ``quality_gate`` decides which students are published.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.demo.teacher import RECIPE, TeacherRecipe
from ser_pipeline.lake import Lake
from ser_pipeline.runs import list_runs, read_run_meta
from ser_pipeline.storage import Storage

DEMO = "demo"
# MobileNetV3-S rather than V4-S for the demo: measured ~1.4x faster per step here, so the
# demo stays within minutes on 2 cores (V4-S trains the same way with --student).
DEMO_STUDENTS = ("wav2small", "mobilenetv3-s")
#: The demo's shape: a small human-labeled set fine-tunes the teacher, a larger unlabeled
#: pool (its corpus is ``<corpus>-pool``) is labeled by it, and the students learn from the
#: pool's training clips only. Sized so ``make demo`` stays within 12 minutes on 2 cores
#: (measured 8 min 55 s).
DEMO_HUMAN_CLIPS = 400
DEMO_POOL_CLIPS = 1000
POOL_SUFFIX = "-pool"
#: Distill's training defaults: 200 steps of 2 s crops per student keep ``make demo``
#: within 12 minutes on an AVX2-only 2-core machine, where 300 steps of 3 s crops took
#: 16 minutes (wav2small 0.949 and mobilenetv3-s 0.904 mean dev CCC by step 200 of that run).
DEFAULT_MAX_STEPS = 200
DEFAULT_CROP_S = 2.0
FINISHED = ("completed", "early_stopped")


class DistillError(ValueError):
    """A distill run cannot start; the message says what to fix."""


def prepare_demo_corpus(workdir: str | Path = DEMO, *, n: int = DEMO_HUMAN_CLIPS,
                        seed: int = 0) -> str:
    """Synthesize the demo's human-labeled corpus under ``<workdir>/corpus`` unless it is
    already there; one of another size or style (an older release's) is replaced."""
    from ser_pipeline.demo import make_demo_corpus

    corpus = Path(workdir) / "corpus"
    sheet = corpus / "labels.csv"
    if sheet.exists():
        with sheet.open() as handle:
            header, rows = handle.readline(), sum(1 for _ in handle)
        if "noise" in header.split(",") and rows == n:
            return str(corpus)
        shutil.rmtree(corpus)
    make_demo_corpus(str(corpus), n=n, seed=seed)
    return str(corpus)


def prepare_demo_pool(workdir: str | Path = DEMO, *, n: int = DEMO_POOL_CLIPS,
                      seed: int = 0) -> str:
    """Synthesize the demo's unlabeled pool under ``<workdir>/pool`` unless it is there.

    The pool is what the teacher labels and the students learn from (the paper's shape):
    many clips in varied voices, sentences, rates, pitches, pauses and background noise;
    its dev clips use voices and sentences no training clip uses.
    """
    from ser_pipeline.demo import make_demo_pool

    pool = Path(workdir) / "pool"
    sheet = pool / "labels.csv"
    if not sheet.exists() or sum(1 for _ in sheet.open()) - 1 != n:
        make_demo_pool(str(pool), n=n, seed=seed)
    return str(pool)


def prepare_demo_teacher(
    lake: Lake, *, workdir: str | Path = DEMO, corpus: str = DEMO, seed: int = 0,
    recipe: TeacherRecipe | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """The demo teacher in ``<workdir>/teacher``: kept when it was built by the current
    recipe (:data:`ser_pipeline.demo.teacher.RECIPE`), else the shipped one installed, else
    (another seed or corpus) fully fine-tuned here on the demo corpus's human labels.

    A teacher built by another recipe (say, by an older release) is replaced, and the new
    teacher id makes the later stages relabel and retrain.

    ``recipe`` (default the shipped teacher's) has its seed replaced by ``seed``.
    Returns the ``hf:`` spec and the fine-tuning summary (``None`` when none ran).
    """
    from ser_pipeline.demo.teacher import build_demo_teacher, install_shipped, provenance_of

    tuned = Path(workdir) / "teacher"
    recipe = replace(recipe or RECIPE, seed=seed)
    if recipe.matches(provenance_of(tuned), corpus=corpus):
        return f"hf:{tuned}", None
    if install_shipped(tuned, recipe=recipe, corpus=corpus):
        return f"hf:{tuned}", None
    summary = build_demo_teacher(lake, workdir=Path(workdir), out=tuned, corpus=corpus,
                                 recipe=recipe)
    return f"hf:{tuned}", summary


def preflight(*, sources: list[str], teacher: str | None, settings: Settings | None = None,
              ) -> None:
    """Check that every source exists and the teacher loads, before any work starts."""
    from ser_pipeline.teacher import load_teacher

    settings = settings or get_settings()
    for source in sources:
        try:
            present = Storage(source, settings=settings).isdir("")
        except Exception as error:  # noqa: BLE001 - any backend failure is reported the same way
            raise DistillError(f"source {source!r} cannot be opened: {error}") from None
        if not present:
            raise DistillError(
                f"source {source!r} does not exist or is not a folder: fix the path, or omit "
                "sources to use the demo corpus"
            )
    if teacher and teacher != DEMO:
        load_teacher(teacher)  # raises TeacherError with a one-line fix


def find_completed_run(
    lake: Lake, *, student: str, teacher_id: str, seed: int, hyperparams: dict[str, Any],
) -> str | None:
    """A finished run of ``student`` on exactly the current data and settings, if any.

    "Exactly" means the same teacher, seed and requested hyper-parameters, and the same lake
    snapshot (audio, teacher label and split part files): new data means a new run.
    """
    snapshot = {table: lake.parts(table) for table in ("audio", "teacher_labels", "splits")}
    for run_id in reversed(list_runs(lake)):
        try:
            run = read_run_meta(lake, run_id)
        except Exception:  # noqa: BLE001 - a half-written run folder is simply not a match
            continue
        if (run.student != student or run.teacher_id != teacher_id or run.seed != seed
                or run.status not in FINISHED or not run.best_checkpoint):
            continue
        if any(run.hyperparams.get(key) != value for key, value in hyperparams.items()):
            continue
        if {k: sorted(v) for k, v in (run.lake_snapshot or {}).items()} != {
                k: sorted(v) for k, v in snapshot.items()}:
            continue
        return run_id
    return None


def published_for_run(registry_url: str | None, *, name: str, run_id: str,
                      settings: Settings | None = None) -> dict[str, Any] | None:
    """The registry entry already published from ``run_id`` under ``name``, if any."""
    from ser_pipeline.registry import ModelNotFoundError, Registry

    registry = Registry(registry_url, settings=settings)
    try:
        versions = registry.list_models(name)
    except ModelNotFoundError:
        return None
    return next((entry for entry in versions if entry.get("run_id") == run_id), None)


def quality_gate(results: list[dict[str, Any]], *, min_ccc: float,
                 corpora: list[str] | None = None) -> tuple[bool, str]:
    """Pass when the mean dev CCC against the teacher over A/D/V reaches ``min_ccc``.

    ``results`` are an evaluate summary's wide rows (``corpus``, ``reference``, ``split``,
    ``ccc_<dimension>``, ``ccc_mean``). With ``corpora`` (the corpora the student learned
    from) only their dev rows count; the weakest of them decides.
    """
    dev = [row for row in results if row.get("reference") == "teacher"
           and row.get("split") == "dev" and row.get("ccc_mean") is not None
           and (corpora is None or row.get("corpus") in corpora)]
    if not dev:
        return False, "no complete dev CCC against the teacher"
    weakest = min(dev, key=lambda row: row["ccc_mean"])
    mean = weakest["ccc_mean"]
    verdict = "passes" if mean >= min_ccc else "is below"
    where = f" ({weakest['corpus']})" if weakest.get("corpus") else ""
    return mean >= min_ccc, (f"mean dev CCC vs teacher {mean:.3f}{where} {verdict} the gate "
                             f"{min_ccc}")


def publish_outcome(outcome: dict) -> str:
    """``published v1``, ``published v1 (fp32 only: int8 parity A 0.970 < 0.98 ...)``, or
    ``published v2, not latest (held back: ...)`` when the no-regression gate held it."""
    version = f" v{outcome['version']}" if outcome.get("version") else ""
    withheld = outcome.get("int8_withheld")
    text = f"published{version}" + (f" (fp32 only: {withheld})" if withheld else "")
    if outcome.get("latest") is False:
        text += f", not latest ({outcome.get('gate')})"
    return text
