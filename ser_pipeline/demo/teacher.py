"""The demo's teacher: a tiny wav2vec2 fully fine-tuned on the demo corpus's human labels.

Full fine-tuning (every weight, the convolutional feature encoder included) is what turns
a random-weight backbone into a judge of the demo's emotions; tuning the head alone judged
nothing (docs/stages/teacher.md has the routes, their CCC and their time). On 2 cores it
takes longer than ``make demo`` can spend, so the teacher it gives ships with the package
(:data:`SHIPPED`, 650 KB: ``model.safetensors`` and ``config.json``, whose
``ser_provenance`` records the recipe) and ``make demo`` installs it in seconds.
``make demo-teacher`` rebuilds it from scratch with :func:`rebuild_demo_teacher`: the
demo corpus synthesised by espeak-ng, ingested into a fresh lake, a random teacher
(``init_teacher``, seed 0) and :data:`RECIPE`. No weights come from anywhere else.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ser_pipeline.lake import Lake

#: The shipped demo teacher (a ``hf:`` folder).
SHIPPED = Path(__file__).parent / "teacher_weights"
TEACHER_FILES = ("config.json", "model.safetensors")


@dataclass(frozen=True)
class TeacherRecipe:
    """How the demo teacher is fine-tuned (``finetune_teacher``'s options)."""

    steps: int = 300
    views: int = 8
    lr: float = 1e-3
    batch_size: int = 32
    max_clip_s: float = 4.0
    train_all: bool = True
    seed: int = 0

    def matches(self, provenance: dict[str, Any], *, corpus: str) -> bool:
        """Whether a teacher's recorded ``ser_provenance`` is this recipe on ``corpus``.

        Examples:
            >>> TeacherRecipe().matches({**asdict(TeacherRecipe()), "corpus": ["demo"]},
            ...                         corpus="demo")
            True
            >>> TeacherRecipe(steps=60).matches({**asdict(TeacherRecipe()),
            ...                                  "corpus": ["demo"]}, corpus="demo")
            False
        """
        wanted = {**asdict(self), "corpus": [corpus]}
        return all(provenance.get(key) == value for key, value in wanted.items())


RECIPE = TeacherRecipe()


def provenance_of(folder: Path) -> dict[str, Any]:
    """A teacher folder's ``ser_provenance`` (``{}`` when it has none or no config)."""
    config = folder / "config.json"
    if not config.exists():
        return {}
    return json.loads(config.read_text()).get("ser_provenance") or {}


def install_shipped(target: Path, *, recipe: TeacherRecipe = RECIPE,
                    corpus: str = "demo") -> bool:
    """Copy the shipped teacher to ``target`` when it was built by ``recipe`` on
    ``corpus``; returns whether it did (False: it must be fine-tuned here)."""
    if not recipe.matches(provenance_of(SHIPPED), corpus=corpus):
        return False
    target.mkdir(parents=True, exist_ok=True)
    for name in TEACHER_FILES:
        shutil.copyfile(SHIPPED / name, target / name)
    return True


def build_demo_teacher(lake: Lake, *, workdir: Path, out: Path, corpus: str = "demo",
                       recipe: TeacherRecipe = RECIPE) -> dict[str, Any]:
    """Fine-tune a random tiny wav2vec2 (seed ``recipe.seed``) by ``recipe`` on the human
    labels of ``corpus`` in ``lake``; returns ``finetune_teacher``'s summary."""
    from ser_pipeline.teacher import finetune_teacher, init_teacher

    base = workdir / "teacher-base"
    if not (base / "config.json").exists():
        init_teacher(base, arch="wav2vec2", size="tiny", seed=recipe.seed)
    return finetune_teacher(lake, teacher=f"hf:{base}", corpus=corpus, out=out,
                            overwrite=True, **asdict(recipe))


def rebuild_demo_teacher(*, workdir: Path, out: Path = SHIPPED, n: int | None = None,
                         seed: int = 0, recipe: TeacherRecipe = RECIPE) -> dict[str, Any]:
    """The shipped teacher from scratch: the demo corpus (``n`` clips, ``seed``; the
    demo's own size), a fresh lake under ``workdir``, a random teacher and ``recipe``."""
    from ser_pipeline.distill import DEMO_HUMAN_CLIPS, prepare_demo_corpus
    from ser_pipeline.ingest import ingest

    corpus_dir = prepare_demo_corpus(workdir, n=n or DEMO_HUMAN_CLIPS, seed=seed)
    lake = Lake.open(str(workdir / "teacher-lake"))
    ingest(lake, corpus_dir, corpus="demo", recipe="csv")
    summary = build_demo_teacher(lake, workdir=workdir, out=workdir / "teacher-new",
                                 recipe=recipe)
    out.mkdir(parents=True, exist_ok=True)
    for name in TEACHER_FILES:
        shutil.copyfile(workdir / "teacher-new" / name, out / name)
    return summary
