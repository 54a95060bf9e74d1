"""Corpus recipes, Lhotse style: one module per corpus, each ``prepare_<name>()``.

A recipe reads a corpus' own layout and label files and returns a list of
:class:`Entry`: which audio files to ingest (paths relative to the corpus root), their
human labels normalised to 0..1 in the order arousal, dominance, valence, and speaker
and split where the corpus has them. Recipes never decode audio; ingest does.

Problems with one file (label out of range, audio missing, duplicate label rows, a
directory named ``x.wav``...) become an entry with ``problem`` set, which ingest turns
into a quarantine row. Problems with the corpus as a whole (label file missing,
unparseable, a required column absent) raise :class:`RecipeError` before any work starts,
with a message naming the file and how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable

from ser_pipeline.recipes import audformat, csv, folder, iemocap, msp_podcast
from ser_pipeline.recipes.core import (
    AUDIO_EXTENSIONS,
    Entry,
    LabelValueError,
    Recipe,
    RecipeError,
    Scale,
    clean_relpath,
    labelled_entry,
    normalise_gender,
    read_text,
)
from ser_pipeline.recipes.folder import merge_with_audio

#: Every recipe by its CLI name, in the order ``ser ingest --help`` lists them. A new
#: recipe is a module with a ``RECIPE`` record, added to this line.
REGISTRY: dict[str, Recipe] = {module.RECIPE.name: module.RECIPE for module in (
    folder, csv, audformat, msp_podcast, iemocap)}
RECIPES: tuple[str, ...] = tuple(REGISTRY)


def get_recipe(name: str) -> Callable[..., list[Entry]]:
    """The ``prepare_*`` function registered under a CLI name.

    Raises:
        RecipeError: no recipe has that name.

    Examples:
        >>> get_recipe("folder").__name__
        'prepare_folder'
    """
    if name not in REGISTRY:
        raise RecipeError(f"unknown recipe {name!r}: use one of {', '.join(RECIPES)}")
    return REGISTRY[name].prepare


__all__ = ["AUDIO_EXTENSIONS", "Entry", "LabelValueError", "RECIPES", "REGISTRY", "Recipe",
           "RecipeError", "Scale", "clean_relpath", "get_recipe", "labelled_entry",
           "merge_with_audio", "normalise_gender", "read_text"]
