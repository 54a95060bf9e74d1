"""The audEERING A/D/V regression model on a wav2vec2 or WavLM backbone.

The Hub model "w2v2-L-robust-12" is a ``Wav2Vec2Model`` whose hidden states are
mean-pooled over time and fed to a regression head (dropout -> Linear(H, H) -> tanh ->
dropout -> Linear(H, 3)); outputs are arousal, dominance, valence. Its weights sit under
``wav2vec2.*`` and ``classifier.dense|out_proj``; the WavLM variant uses ``wavlm.*``.

Two departures from the Hub code, both output-preserving for a single unpadded clip:

* ``forward`` normalises each utterance (zero mean, unit variance over its valid samples)
  exactly like ``Wav2Vec2FeatureExtractor(do_normalize=True)``. Normalising twice is a
  no-op, so callers that already ran the processor get the same result, and an exported
  ONNX graph is self-contained (raw 16 kHz signal in, logits out).
* mean pooling runs over *valid* frames only, so a clip padded into a batch (with an
  attention mask) gets the same output as the clip alone.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2Model,
    Wav2Vec2PreTrainedModel,
    WavLMConfig,
    WavLMModel,
    WavLMPreTrainedModel,
)

ARCHS = ("wav2vec2", "wavlm")
SIZES = ("tiny", "large")
LABEL_NAMES = {0: "arousal", 1: "dominance", 2: "valence"}
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


class RegressionHead(nn.Module):
    """dropout -> dense -> tanh -> dropout -> out_proj (audEERING's head, same key names)."""

    def __init__(self, config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.dropout(features)
        x = torch.tanh(self.dense(x))
        return self.out_proj(self.dropout(x))


def normalize(signal: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero mean, unit variance per row over the valid samples; padding stays 0."""
    if mask is None:
        mean = signal.mean(dim=1, keepdim=True)
        var = ((signal - mean) ** 2).mean(dim=1, keepdim=True)
        return (signal - mean) / torch.sqrt(var + NORM_EPS)
    maskf = mask.to(signal.dtype)
    count = maskf.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (signal * maskf).sum(dim=1, keepdim=True) / count
    var = (((signal - mean) * maskf) ** 2).sum(dim=1, keepdim=True) / count
    return (signal - mean) / torch.sqrt(var + NORM_EPS) * maskf


class _PooledRegression:
    """Shared forward: normalise, backbone, masked mean pool, head."""

    backbone_attr: str

    def pooled(self, input_values: torch.Tensor,
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        backbone = getattr(self, self.backbone_attr)
        values = normalize(input_values, attention_mask)
        hidden = backbone(values, attention_mask=attention_mask).last_hidden_state
        if attention_mask is None:
            return hidden.mean(dim=1)
        frames = self._get_feature_vector_attention_mask(hidden.shape[1], attention_mask)
        frames = frames.to(hidden.dtype).unsqueeze(-1)
        return (hidden * frames).sum(dim=1) / frames.sum(dim=1).clamp(min=1.0)

    def forward(self, input_values: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Raw 16 kHz signal ``[batch, samples]`` (+ optional 0/1 mask) -> ``[batch, 3]``."""
        return self.classifier(self.pooled(input_values, attention_mask))


class Wav2Vec2ForADV(_PooledRegression, Wav2Vec2PreTrainedModel):
    """audEERING's ``EmotionModel``: wav2vec2 backbone + A/D/V regression head."""

    backbone_attr = "wav2vec2"

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config)
        self.classifier = RegressionHead(config)
        self.post_init()


class WavLMForADV(_PooledRegression, WavLMPreTrainedModel):
    """The same head on a WavLM backbone (the second member of the paper's ensemble)."""

    backbone_attr = "wavlm"

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__(config)
        self.wavlm = WavLMModel(config)
        self.classifier = RegressionHead(config)
        self.post_init()


MODEL_CLASSES = {"wav2vec2": Wav2Vec2ForADV, "wavlm": WavLMForADV}


def build_config(arch: str, size: str) -> Wav2Vec2Config | WavLMConfig:
    """The configuration of a ``tiny`` (tests, demo) or ``large`` (audEERING shape) model."""
    if arch not in ARCHS:
        raise ValueError(f"unknown teacher arch {arch!r}: use one of {', '.join(ARCHS)}")
    if size not in SIZES:
        raise ValueError(f"unknown teacher size {size!r}: use one of {', '.join(SIZES)}")
    common = dict(
        num_labels=3, id2label=LABEL_NAMES, label2id={v: k for k, v in LABEL_NAMES.items()},
        do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True,
        feat_extract_activation="gelu", final_dropout=0.1, hidden_dropout=0.1,
        activation_dropout=0.0, attention_dropout=0.1, feat_proj_dropout=0.0,
        layerdrop=0.0, mask_time_prob=0.05, vocab_size=32,
    )
    if size == "large":  # w2v2-L-robust pruned to 12 layers, as audEERING published it
        shape = dict(hidden_size=1024, num_hidden_layers=12, num_attention_heads=16,
                     intermediate_size=4096)
    else:  # same frame rate (conv kernels/strides), narrow and shallow: fast on 2 cores
        shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, conv_dim=(64,) * 7, num_conv_pos_embeddings=16,
                     num_conv_pos_embedding_groups=4)
    if arch == "wavlm" and size == "tiny":
        shape["num_buckets"] = 32
        shape["max_bucket_distance"] = 200
    config_class = Wav2Vec2Config if arch == "wav2vec2" else WavLMConfig
    return config_class(**common, **shape)
