"""A demo corpus of real synthetic speech (espeak-ng) with learnable "human" labels.

Each clip draws a voice, a speaking rate, a pitch, an amplitude, a word gap and a sentence
(the human-labeled corpus also background noise and pauses, like the pool).
The labels are documented functions of those parameters (see :func:`labels_for`), so a
teacher fine-tuned on them can learn them from the audio. Files are written in a mix of
formats, sample rates and channel counts so ingest meets what real corpora hold:

=========  ==========  ========  ========
format     subtype     rate Hz   channels
=========  ==========  ========  ========
wav        PCM_16      22050     1
flac       PCM_16      16000     1
ogg        VORBIS      44100     1
wav        PCM_24      48000     2
mp3        LAYER III   24000     1
=========  ==========  ========  ========

``labels.csv`` follows the ``csv`` recipe (``path, arousal, dominance, valence, speaker,
gender``, labels on 0..1) plus the synthesis parameters; a fraction of rows has empty labels, the
unlabeled pool the teacher labels later.

The package's parts: :mod:`~ser_pipeline.demo.voices` (parameters and label formulas),
:mod:`~ser_pipeline.demo.audio` (espeak-ng, encoding, noise) and
:mod:`~ser_pipeline.demo.corpus` (the corpus and the pool).
"""

from ser_pipeline.demo.audio import (
    ESPEAK_RATE,
    FORMATS,
    DemoCorpusError,
    background,
    encode_clip,
    espeak_binary,
    render_pool_clip,
    synthesize,
    with_ogg_serial,
)
from ser_pipeline.demo.corpus import make_demo_corpus, make_demo_pool
from ser_pipeline.demo.voices import (
    DEV_VARIANTS,
    POOL_LANGUAGES,
    POOL_VARIANTS,
    SENTENCES,
    TRAIN_VARIANTS,
    VOICES,
    ClipParams,
    PoolClipParams,
    clip_params,
    gender_of,
    human_clip_params,
    labels_for,
    pool_clip_params,
    pool_sentences,
    voice_valence,
)

__all__ = [
    "DEV_VARIANTS", "ESPEAK_RATE", "FORMATS", "POOL_LANGUAGES", "POOL_VARIANTS", "SENTENCES",
    "TRAIN_VARIANTS", "VOICES", "ClipParams", "DemoCorpusError", "PoolClipParams",
    "background", "clip_params", "encode_clip", "espeak_binary", "gender_of",
    "human_clip_params", "labels_for",
    "make_demo_corpus", "make_demo_pool", "pool_clip_params", "pool_sentences",
    "render_pool_clip", "synthesize", "voice_valence", "with_ogg_serial",
]
