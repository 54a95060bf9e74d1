"""Who speaks, what, and how: the demo's synthesis parameters and its "human" labels.

The labels are documented functions of what a listener hears (:func:`labels_for`), so a
teacher can learn them from the audio. The pool's dev clips use voice variants
(:data:`DEV_VARIANTS`) and sentences (:func:`pool_sentences`) that no training clip uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Voice -> its contribution to valence (0..1). Female variants and lively accents read as
# more positive; the mapping is arbitrary but fixed, which is all the demo needs.
VOICES: dict[str, float] = {
    "en-us": 0.4, "en-gb": 0.3, "en-gb-scotland": 0.2, "en-029": 0.7, "en-us+f3": 0.9,
    "en-gb+f4": 0.8, "en-gb-x-rp": 0.1, "de": 0.3, "es": 0.6, "fr": 0.5,
}
SENTENCES: tuple[str, ...] = (
    "The train leaves at seven tomorrow morning.",
    "Please put the blue box on the top shelf.",
    "I never expected to see you here today.",
    "We walked along the river until it got dark.",
    "Nobody told me the meeting had been moved.",
    "This is the best soup I have had all year.",
    "Could you call me back after lunch?",
    "The results will be ready by Friday.",
    "She painted the whole fence in one afternoon.",
    "Turn left at the bakery and keep going.",
    "I can't believe we finally won the match.",
    "The library closes early on Sundays.",
    "He forgot his keys again this morning.",
    "Let's try the new place around the corner.",
    "The storm knocked out the power for hours.",
    "Thank you so much for coming tonight.",
    "Where did you put the spare batteries?",
    "Our flight was delayed by three hours.",
    "That was a wonderful surprise.",
    "Keep the door closed, the cat is out.",
    "We need two more chairs for the table.",
    "The garden looks lovely in the spring.",
    "I told you this would happen.",
    "Everything is going to be fine.",
)


#: Pool languages -> their contribution to a voice's valence (see :func:`voice_valence`).
POOL_LANGUAGES: dict[str, float] = {
    "en-us": 0.4, "en-gb": 0.3, "en-gb-scotland": 0.2, "en-029": 0.7, "en-gb-x-rp": 0.1,
    "en-us-nyc": 0.5, "de": 0.3, "es": 0.6, "fr-fr": 0.5, "it": 0.65, "nl": 0.35,
}
#: espeak-ng voice variants -> their contribution to valence. The dev voices use only
#: :data:`DEV_VARIANTS`, which no training voice uses, so every dev voice is unseen.
POOL_VARIANTS: dict[str, float] = {
    "m1": 0.3, "m2": 0.35, "m3": 0.25, "m4": 0.4, "m5": 0.3, "f1": 0.8, "f2": 0.85,
    "f3": 0.75, "klatt": 0.5, "klatt2": 0.45, "croak": 0.1, "m6": 0.3, "m7": 0.2,
    "f4": 0.8, "f5": 0.9, "klatt3": 0.5,
}
DEV_VARIANTS: tuple[str, ...] = ("m6", "m7", "f4", "f5", "klatt3")
TRAIN_VARIANTS: tuple[str, ...] = tuple(v for v in POOL_VARIANTS if v not in DEV_VARIANTS)
# Sentences are built from these parts (16 x 16 x 12 = 3,072 of them); a fixed share of
# the whole sentences is held out for dev, so no dev sentence is ever trained on.
_SUBJECTS = ("The old man", "My sister", "Our teacher", "The driver", "A small child",
             "The new doctor", "Your neighbour", "The manager", "His friend", "The pilot",
             "Every student", "The baker", "Her brother", "The guard", "A tall woman",
             "The farmer")
_PREDICATES = ("found the letter", "painted the kitchen", "missed the last bus",
               "opened the window", "sold the red car", "cooked a large dinner",
               "lost the map", "fixed the old clock", "read the whole book",
               "called the office", "cleaned the garage", "carried the boxes",
               "forgot the tickets", "watched the game", "planted three trees",
               "wrote a long email")
_TAILS = ("this morning", "before the storm", "after lunch", "on Sunday",
          "in the garden", "without a word", "near the station", "last winter",
          "at midnight", "during the party", "by the river", "once again")
DEV_SENTENCE_FRACTION = 0.2
POOL_NOISES: tuple[str, ...] = ("none", "white", "pink", "brown", "hum")


def pool_sentences() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train sentences, dev sentences): disjoint, deterministic."""
    import itertools

    every = [f"{s} {p} {t}." for s, p, t in itertools.product(_SUBJECTS, _PREDICATES, _TAILS)]
    order = np.random.default_rng(12345).permutation(len(every))
    n_dev = int(round(DEV_SENTENCE_FRACTION * len(every)))
    dev = tuple(every[i] for i in sorted(order[:n_dev]))
    train = tuple(every[i] for i in sorted(order[n_dev:]))
    return train, dev


@dataclass(frozen=True)
class ClipParams:
    voice: str
    rate: int  # espeak -s, words per minute (110..260)
    pitch: int  # espeak -p, 0..99 (we use 20..80)
    amplitude: int  # espeak -a, 0..200 (we use 60..180)
    gap: int  # espeak -g, extra pause between words in 10 ms units (0..8)
    sentence: str


def clip_params(index: int, *, seed: int) -> ClipParams:
    """The synthesis parameters of clip ``index`` (deterministic in ``seed``)."""
    rng = np.random.default_rng([seed, index])
    voices = sorted(VOICES)
    return ClipParams(
        voice=voices[int(rng.integers(len(voices)))],
        rate=int(rng.integers(110, 261)),
        pitch=int(rng.integers(20, 81)),
        amplitude=int(rng.integers(60, 181)),
        gap=int(rng.integers(0, 9)),
        sentence=SENTENCES[int(rng.integers(len(SENTENCES)))],
    )


def labels_for(params: ClipParams, *, index: int, seed: int) -> tuple[float, float, float]:
    """The "human" arousal, dominance, valence (0..1) of a clip.

    With ``r``, ``p``, ``a``, ``g`` the rate, pitch, amplitude and word gap scaled to 0..1
    over their ranges and ``v`` the voice's entry in :data:`VOICES`::

        arousal   = 0.1 + 0.8 * (0.75 r + 0.25 a)
        dominance = 0.1 + 0.8 * (0.6 (1 - p) + 0.2 a + 0.2 (1 - g))
        valence   = 0.1 + 0.8 * (0.5 p + 0.5 v)

    plus Gaussian rater noise (sd 0.03), clipped to 0..1. Amplitude has a small weight
    because models normalise loudness per utterance; rate, pitch, pauses and voice are
    audible after normalisation.
    """
    # Clipped to 0..1 so the pool's wider ranges (rates up to 280 wpm) stay on the scale.
    r = min(1.0, max(0.0, (params.rate - 110) / 150))
    p = min(1.0, max(0.0, (params.pitch - 20) / 60))
    a = min(1.0, max(0.0, (params.amplitude - 60) / 120))
    g = min(1.0, max(0.0, params.gap / 8))
    v = voice_valence(params.voice)
    clean = np.array([0.1 + 0.8 * (0.75 * r + 0.25 * a),
                      0.1 + 0.8 * (0.6 * (1 - p) + 0.2 * a + 0.2 * (1 - g)),
                      0.1 + 0.8 * (0.5 * p + 0.5 * v)])
    noise = np.random.default_rng([seed, index, 7]).normal(0.0, 0.03, size=3)
    return tuple(float(x) for x in np.clip(clean + noise, 0.0, 1.0))  # type: ignore[return-value]


def voice_valence(voice: str) -> float:
    """A voice's contribution to valence (0..1): :data:`VOICES`, else language + variant.

    Pool voices are ``<language>+<variant>``; their value averages the language's entry in
    :data:`POOL_LANGUAGES` and the variant's in :data:`POOL_VARIANTS` (female variants read
    as more positive, croaky ones as less), so unseen voices get values of the same kind.
    """
    if voice in VOICES:
        return VOICES[voice]
    language, _, variant = voice.partition("+")
    return 0.5 * POOL_LANGUAGES.get(language, 0.5) + 0.5 * POOL_VARIANTS.get(variant, 0.5)


@dataclass(frozen=True)
class PoolClipParams(ClipParams):
    split: str = "train"  # train: training voices and sentences; dev: unseen ones
    noise: str = "none"  # background noise kind (POOL_NOISES)
    snr_db: float = 0.0  # speech-to-noise ratio when noise != "none"
    lead_s: float = 0.0  # silence before the speech
    tail_s: float = 0.0  # silence after it


def pool_clip_params(index: int, *, seed: int, dev_fraction: float = 0.2,
                     stream: int = 31) -> PoolClipParams:
    """The synthesis parameters of pool clip ``index`` (deterministic in ``seed``).

    A ``dev_fraction`` share of clips (by a seeded draw) is dev: an unseen voice variant
    (:data:`DEV_VARIANTS`) speaking an unseen sentence; the rest use training variants and
    sentences only.
    """
    rng = np.random.default_rng([seed, index, stream])
    dev = bool(rng.random() < dev_fraction)
    train_sentences, dev_sentences = pool_sentences()
    sentences = dev_sentences if dev else train_sentences
    variants = DEV_VARIANTS if dev else TRAIN_VARIANTS
    languages = sorted(POOL_LANGUAGES)
    noise = POOL_NOISES[int(rng.integers(len(POOL_NOISES)))]
    return PoolClipParams(
        voice=f"{languages[int(rng.integers(len(languages)))]}+"
              f"{variants[int(rng.integers(len(variants)))]}",
        rate=int(rng.integers(100, 281)),
        pitch=int(rng.integers(10, 91)),
        amplitude=int(rng.integers(60, 181)),
        gap=int(rng.integers(0, 11)),
        sentence=sentences[int(rng.integers(len(sentences)))],
        split="dev" if dev else "train",
        noise=noise,
        snr_db=round(float(rng.uniform(5.0, 30.0)), 1) if noise != "none" else 0.0,
        lead_s=round(float(rng.uniform(0.0, 0.4)), 3),
        tail_s=round(float(rng.uniform(0.0, 0.4)), 3),
    )


#: Variants whose voice is not clearly one gender (espeak-ng's Klatt synthesisers): their
#: clips get no gender, so the fairness slices show how unknown metadata is handled.
UNGENDERED_VARIANTS = ("klatt", "klatt2", "klatt3")


def gender_of(voice: str) -> str:
    """The speaker gender a listener would give a voice: ``female``, ``male`` or ``""``.

    espeak-ng's ``f*`` variants are female; ``m*``, ``croak`` and a language's default
    voice are male; the Klatt variants are left unknown.

    Examples:
        >>> gender_of("en-us+f3"), gender_of("de+m7"), gender_of("es"), gender_of("it+klatt3")
        ('female', 'male', 'male', '')
    """
    variant = voice.partition("+")[2]
    if variant in UNGENDERED_VARIANTS:
        return ""
    return "female" if variant.startswith("f") else "male"


def human_clip_params(index: int, *, seed: int) -> PoolClipParams:
    """The synthesis parameters of human-labeled clip ``index``: drawn like the pool's
    training clips (training voices and sentences only, background noise, pauses) from a
    random stream of their own, so the human-labeled corpus is as varied as the audio the
    teacher will label, and never uses a pool dev voice or sentence.

    Examples:
        >>> params = human_clip_params(3, seed=0)
        >>> params.split, params.voice.partition("+")[2] in TRAIN_VARIANTS
        ('train', True)
    """
    return pool_clip_params(index, seed=seed, dev_fraction=0.0, stream=41)
