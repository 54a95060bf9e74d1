"""Speech-emotion teachers: the audEERING A/D/V model (wav2vec2 / WavLM), ensembles,
ONNX export, offline random teachers and fine-tuning on human labels.

Public API::

    load_teacher(spec, *, device="cpu", threads=None, precision="auto") -> Teacher
    cached_teacher(spec, ...)             # one load per worker process
    init_teacher(path, *, arch="wav2vec2", size="tiny", seed=0) -> Path
    finetune_teacher(lake, *, teacher, corpus, out, ...) -> dict
    export_teacher_onnx(spec_or_path, out) -> Path
"""

from ser_pipeline.teacher.core import AUDEERING_LICENSE, ClipError, Teacher, TeacherError
from ser_pipeline.teacher.ensemble import EnsembleTeacher, split_members
from ser_pipeline.teacher.finetune import finetune_teacher, init_teacher
from ser_pipeline.teacher.load import cached_teacher, load_teacher
from ser_pipeline.teacher.onnx import OnnxTeacher, export_teacher_onnx
from ser_pipeline.teacher.torch_teacher import TorchTeacher

__all__ = [
    "AUDEERING_LICENSE", "ClipError", "EnsembleTeacher", "OnnxTeacher", "Teacher",
    "TeacherError", "TorchTeacher", "cached_teacher", "export_teacher_onnx",
    "finetune_teacher", "init_teacher", "load_teacher", "split_members",
]
