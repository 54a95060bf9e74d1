"""Regenerate the committed audio fixtures (run from the repo root; needs espeak-ng).

    .venv/bin/python tests/data/make_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_pipeline.demo import ClipParams, synthesize

HERE = Path(__file__).parent
# name, voice, text, rate Hz, channels, container, subtype
FIXTURES = [
    ("hello_22k_pcm16.wav", "en-us", "Hello there.", 22_050, 1, "WAV", "PCM_16"),
    ("morning_44k_stereo.flac", "en-gb+f4", "Good morning.", 44_100, 2, "FLAC", "PCM_16"),
    ("thanks_16k.ogg", "en-029", "Thank you.", 16_000, 1, "OGG", "VORBIS"),
    ("later_24k.mp3", "de", "See you later.", 24_000, 1, "MP3", "MPEG_LAYER_III"),
    ("yes_8k_pcm24.wav", "en-gb-scotland", "Yes, please.", 8_000, 1, "WAV", "PCM_24"),
    ("okay_16k.flac", "en-us+f3", "Okay.", 16_000, 1, "FLAC", "PCM_16"),
]

if __name__ == "__main__":
    for name, voice, text, rate, channels, container, subtype in FIXTURES:
        signal = synthesize(ClipParams(voice, 175, 50, 100, 0, text))
        audio = soxr.resample(signal, 22_050, rate) if rate != 22_050 else signal
        if channels == 2:
            audio = np.stack([audio, 0.7 * audio], axis=1)
        sf.write(HERE / name, np.clip(audio, -1, 1), rate, format=container, subtype=subtype)
        print(name, (HERE / name).stat().st_size, "bytes")
