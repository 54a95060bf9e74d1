"""MobileNet students: timm backbones (1 input channel, 3 outputs) on a log-mel front end.

The front end is the Wav2Small conv-DFT log-mel computed inside the model, at a finer
frequency resolution (256-point DFT, 64 mel bands) and the same hop of 32 samples
(500 frames/s). Every timm MobileNet here has a total stride of 32, so the time axis
leaves the backbone at 500 / 32 = 15.6 tokens per second: the paper's "about 16 output
tokens per second" for MobileNetV4-S. 64 mel bands leave 2 frequency tokens.

Which timm architecture each student name uses is in the catalog, students/families.py.
"""

from __future__ import annotations

import torch
from torch import nn

from ser_pipeline.students.frontend import LogMelFrontEnd

#: Front-end resolution: hop 32 at 16 kHz = 500 frames/s; stride 32 -> 15.6 tokens/s.
FRONT_END = {"n_fft": 256, "hop": 32, "n_mels": 64}


class MobileNetStudent(nn.Module):
    """Waveform ``[batch, samples]`` -> ``[batch, 3]`` through log-mel and a timm MobileNet.

    Args:
        arch: timm architecture name (``mobilenetv4_conv_small``, ...).
        n_fft: DFT size of the front end.
        hop: Hop of the front end in samples.
        n_mels: Mel bands (the image height).
        drop_rate: Dropout before the classifier (timm's ``drop_rate``).
    """

    def __init__(self, *, arch: str, n_fft: int = FRONT_END["n_fft"],
                 hop: int = FRONT_END["hop"], n_mels: int = FRONT_END["n_mels"],
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        import timm

        self.arch = arch
        self.front = LogMelFrontEnd(n_fft=n_fft, hop=hop, n_mels=n_mels)
        self.backbone = timm.create_model(arch, pretrained=False, in_chans=1, num_classes=3,
                                          drop_rate=drop_rate)
        # Start at the middle of the 0..1 label range: timm's default head gave outputs of
        # std 1 (V3-S) to 10 (V4-S) at initialisation, against targets of std ~0.25, so the
        # first few hundred steps went into undoing the output scale (ours, not the paper's).
        head = self.backbone.get_classifier()
        nn.init.normal_(head.weight, std=1e-3)
        nn.init.constant_(head.bias, 0.5)

    @property
    def tokens_per_second(self) -> float:
        return self.front.frames_per_second / self.backbone.feature_info[-1]["reduction"]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.front(waveform))
