"""ser-pipeline: distil speech-emotion teachers into tiny, fast ONNX students."""

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.lake import Lake
from ser_pipeline.schemas import LABELS, SAMPLE_RATE
from ser_pipeline.storage import Storage

__all__ = ["LABELS", "SAMPLE_RATE", "Lake", "Settings", "Storage", "get_settings"]
__version__ = "0.1.0"
