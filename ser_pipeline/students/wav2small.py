"""Wav2Small: a VGG7-style CNN on a conv-DFT log-mel front end (the paper's student).

Structure, following the public description (GUIDE §5):

* raw 16 kHz waveform, normalised per utterance (zero mean, unit variance);
* frozen conv DFT (64 points, Hann, hop 32 -> 500 frames/s) -> power -> 26 mel filters
  (up to 8 kHz) -> ``10 * log10``;
* seven ``Conv2d(3x3) + BatchNorm + ReLU`` blocks of ``C`` channels, with a 3x3 max-pool of
  stride 2 after the third (26 mel bands -> 13);
* attention pooling over time: ``sum_t lin(x) * softmax_t(sof(x))`` with two 1x1 convs;
* the pooled ``[C, 13]`` map concatenated with its ``[C, C]`` Gram matrix -> ``Linear(., 3)``.

With ``C = 13`` the head is ``Linear(338, 3)`` and the model has 10,897 trainable
parameters (the public "about 11K"). Trainable parameters are ``sum(p.numel() for p in
model.parameters() if p.requires_grad)``; BatchNorm running statistics and the frozen
DFT/mel buffers are not parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ser_pipeline.students.frontend import LogMelFrontEnd

#: The public configuration's width. The catalog's ``wav2small-72k`` (students/families.py)
#: uses 34, the width closest to the paper's 72K without exceeding it:
#: ``params(C) = 59 C^2 + 71 C + 3`` gives 70,621 at C = 34 and 74,763 at C = 35.
PUBLIC_CHANNELS = 13


def wav2small_params(channels: int, *, n_mels: int = 26) -> int:
    """Closed-form trainable-parameter count of :class:`Wav2Small` (used to pick widths)."""
    c, freq = channels, _pooled_bands(n_mels)
    convs = (9 * c + c) + 6 * (9 * c * c + c)
    batch_norms = 7 * 2 * c
    attention = 2 * (c * c + c)
    head = 3 * (c * freq + c * c) + 3
    return convs + batch_norms + attention + head


def width_for_budget(budget: int, *, n_mels: int = 26) -> int:
    """The largest channel width whose parameter count does not exceed ``budget``."""
    channels = 1
    while wav2small_params(channels + 1, n_mels=n_mels) <= budget:
        channels += 1
    return channels


def _pooled_bands(n_mels: int) -> int:
    # MaxPool2d(3, stride=2, padding=1): floor((n + 2 - 3) / 2) + 1
    return math.floor((n_mels - 1) / 2) + 1


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class Wav2Small(nn.Module):
    """Waveform ``[batch, samples]`` (16 kHz) -> ``[batch, 3]`` (arousal, dominance, valence).

    Args:
        channels: Width ``C`` of every conv block (13 public, 34 ~ the paper's 72K).
        n_mels: Mel bands of the front end.
        n_fft: DFT size of the front end.
        hop: Hop of the front end in samples.

    Examples:
        >>> model = Wav2Small()
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
        10897
        >>> model.eval()(torch.zeros(2, 16000)).shape
        torch.Size([2, 3])
    """

    def __init__(self, *, channels: int = PUBLIC_CHANNELS, n_mels: int = 26, n_fft: int = 64,
                 hop: int = 32) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = channels
        self.front = LogMelFrontEnd(n_fft=n_fft, hop=hop, n_mels=n_mels)
        self.blocks = nn.Sequential(
            _block(1, channels), _block(channels, channels), _block(channels, channels),
            nn.MaxPool2d(3, stride=2, padding=1),
            *[_block(channels, channels) for _ in range(4)],
        )
        self.lin = nn.Conv2d(channels, channels, 1)
        self.sof = nn.Conv2d(channels, channels, 1)
        self.bands = _pooled_bands(n_mels)
        self.head = nn.Linear(channels * self.bands + channels * channels, 3)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.front(waveform))  # [batch, C, bands, frames]
        x = (self.lin(x) * torch.softmax(self.sof(x), dim=-1)).sum(dim=-1)  # [batch, C, bands]
        # Channel Gram matrix, averaged over bands so its scale does not grow with n_mels.
        gram = torch.bmm(x, x.transpose(1, 2)) / self.bands  # [batch, C, C]
        return self.head(torch.cat([x.flatten(1), gram.flatten(1)], dim=1))
