"""Recipes on fixture trees that follow each corpus' published layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from corpora import (
    MSP_ROWS,
    build_audformat,
    build_iemocap,
    build_msp_podcast,
    write_clip,
)

from ser_pipeline.recipes import RECIPES, Entry, RecipeError, Scale, get_recipe
from ser_pipeline.recipes.csv import prepare_csv
from ser_pipeline.recipes.folder import prepare_folder
from ser_pipeline.recipes.iemocap import prepare_iemocap
from ser_pipeline.recipes.msp_podcast import prepare_msp_podcast


def by_path(entries: list[Entry]) -> dict[str, Entry]:
    return {e.source_path: e for e in entries}


def labels(entry: Entry) -> tuple:
    return tuple(None if v is None else round(v, 6)
                 for v in (entry.arousal, entry.dominance, entry.valence))


def test_registry_uses_the_cli_names():
    assert RECIPES == ("folder", "csv", "audformat", "msp-podcast", "iemocap")
    assert get_recipe("msp-podcast") is prepare_msp_podcast
    with pytest.raises(RecipeError, match="unknown recipe 'timit'"):
        get_recipe("timit")


def test_scale_normalises_linearly_and_rejects_bad_ranges():
    assert Scale(1, 7).normalise("4", where="x", dimension="arousal") == pytest.approx(0.5)
    assert Scale(1, 7).name == "1-7" and Scale(-1, 1).name == "-1..1"
    assert Scale(1, 5).normalise("", where="x", dimension="valence") is None
    with pytest.raises(RecipeError, match="greater than the minimum"):
        Scale(5, 1)


# -- folder -----------------------------------------------------------------------------
def test_folder_lists_audio_recursively_and_ignores_other_files(tmp_path):
    write_clip(tmp_path / "a.wav", 0)
    write_clip(tmp_path / "sub" / "b.FLAC", 1)
    (tmp_path / "notes.txt").write_text("not audio")
    entries = prepare_folder(str(tmp_path))
    assert [e.source_path for e in entries] == ["a.wav", "sub/b.FLAC"]
    assert all(e.problem is None and not e.has_labels and e.size > 0 for e in entries)


def test_folder_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        prepare_folder(str(tmp_path / "nope"))


def test_folder_odd_paths_become_problems_not_crashes(tmp_path):
    write_clip(tmp_path / "ok.wav", 0)
    write_clip(tmp_path / "x.wav" / "inside.wav", 1)  # a directory named like audio
    (tmp_path / "loop").mkdir()
    os.symlink("..", tmp_path / "loop" / "up")  # directory link back to an ancestor
    os.symlink("self.wav", tmp_path / "self.wav")  # a link to itself
    os.symlink("gone.wav", tmp_path / "dangling.wav")
    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.wav"),
                     os.O_CREAT | os.O_WRONLY))  # latin-1 name, not UTF-8
    long_name = "l" * 240 + ".wav"
    write_clip(tmp_path / long_name, 2)
    entries = by_path(prepare_folder(str(tmp_path)))
    problems = {path: e.problem[0] for path, e in entries.items() if e.problem}
    assert problems == {
        "x.wav": "not_a_file",
        "loop/up": "symlink_loop",
        "self.wav": "symlink_loop",
        "dangling.wav": "broken_symlink",
        "caf\\xe9.wav": "non_utf8_name",
    }
    assert entries["x.wav/inside.wav"].problem is None
    assert entries[long_name].problem is None
    assert entries["ok.wav"].problem is None


# -- csv ----------------------------------------------------------------------------------
def write_sheet(root: Path, text: str, name: str = "labels.csv") -> None:
    (root / name).write_text(text)


def test_csv_labels_scale_speaker_split_and_unlisted_audio(tmp_path):
    for index, name in enumerate(["a.wav", "b.wav", "c.wav", "extra.wav"]):
        write_clip(tmp_path / "clips" / name, index)
    write_sheet(tmp_path, "path,arousal,dominance,valence,speaker,split,gender\n"
                          "clips/a.wav,1,3,5,s1,train,F\n"
                          "clips/b.wav,5,1,2,s2,test,Male\n"
                          "./clips/c.wav,,,,s1,,\n")
    entries = by_path(prepare_csv(str(tmp_path), label_min=1, label_max=5))
    assert labels(entries["clips/a.wav"]) == (0.0, 0.5, 1.0)
    assert labels(entries["clips/b.wav"]) == (1.0, 0.0, 0.25)
    assert entries["clips/a.wav"].source_scale == "1-5"
    assert (entries["clips/a.wav"].speaker, entries["clips/a.wav"].split) == ("s1", "train")
    assert not entries["clips/c.wav"].has_labels and entries["clips/c.wav"].speaker == "s1"
    assert [entries[f"clips/{n}.wav"].gender for n in "abc"] == ["female", "male", None]
    assert not entries["clips/extra.wav"].has_labels  # unlisted audio: unlabeled pool
    assert all(e.problem is None for e in entries.values())
    listed_only = prepare_csv(str(tmp_path), label_min=1, label_max=5, include_unlabeled=False)
    assert "clips/extra.wav" not in by_path(listed_only)


def test_csv_row_problems_are_quarantined_with_file_and_row(tmp_path):
    for index, name in enumerate(["hi.wav", "word.wav", "dup.wav", "short.wav"]):
        write_clip(tmp_path / name, index)
    write_sheet(tmp_path, "path,arousal,dominance,valence\n"
                          "hi.wav,1.5,0.2,0.3\n"
                          "word.wav,high,0.2,0.3\n"
                          "dup.wav,0.1,0.2,0.3\n"
                          "dup.wav,0.9,0.2,0.3\n"
                          "missing.wav,0.1,0.2,0.3\n"
                          "short.wav,0.1\n"
                          "../outside.wav,0.1,0.2,0.3\n")
    entries = by_path(prepare_csv(str(tmp_path)))
    problem = {path: e.problem for path, e in entries.items() if e.problem}
    assert problem["hi.wav"][0] == "label_out_of_range"
    assert "labels.csv row 2" in problem["hi.wav"][1] and "--label-max" in problem["hi.wav"][1]
    assert problem["word.wav"][0] == "label_invalid" and "row 3" in problem["word.wav"][1]
    assert problem["dup.wav"][0] == "duplicate_label"
    assert "row 4" in problem["dup.wav"][1] and "row 5" in problem["dup.wav"][1]
    assert problem["missing.wav"][0] == "missing_file"
    assert problem["short.wav"][0] == "label_invalid" and "fields" in problem["short.wav"][1]
    assert problem["labels.csv#row8"][0] == "bad_path"


@pytest.mark.parametrize("sheet,match", [
    (None, "label sheet .*labels.csv is missing"),
    ("file,arousal\na.wav,0.1\n", "has no 'path' column .*found: file, arousal"),
    ('path,arousal\n"a.wav,0.1\n', "not valid CSV"),
])
def test_csv_sheet_level_problems_are_clear_errors(tmp_path, sheet, match):
    write_clip(tmp_path / "a.wav", 0)
    if sheet is not None:
        write_sheet(tmp_path, sheet)
    with pytest.raises(RecipeError, match=match):
        prepare_csv(str(tmp_path))


def test_csv_non_utf8_sheet_is_a_clear_error(tmp_path):
    (tmp_path / "labels.csv").write_bytes("path,arousal\ncaf\xe9.wav,0.1\n".encode("latin-1"))
    with pytest.raises(RecipeError, match="not UTF-8"):
        prepare_csv(str(tmp_path))


# -- msp-podcast --------------------------------------------------------------------------
def test_msp_podcast_layout(tmp_path):
    entries = by_path(prepare_msp_podcast(str(build_msp_podcast(tmp_path))))
    first = entries["Audios/MSP-PODCAST_0001_0008.wav"]
    # A = EmoAct, D = EmoDom, V = EmoVal; (x - 1) / 6
    assert labels(first) == (0.5, round(2.8 / 6, 6), round(3.2 / 6, 6))
    assert (first.speaker, first.split, first.source_scale) == ("127", "train", "1-7")
    splits = {path.split("/")[1]: e.split for path, e in entries.items()}
    assert splits == {"MSP-PODCAST_0001_0008.wav": "train", "MSP-PODCAST_0001_0017.wav": "dev",
                      "MSP-PODCAST_0002_0003.wav": "test1", "MSP-PODCAST_0003_0001.wav": "test2",
                      "MSP-PODCAST_0100_0000.wav": None}
    assert entries["Audios/MSP-PODCAST_0002_0003.wav"].speaker is None  # "Unknown"
    assert first.gender == "female"  # from Gender
    assert entries["Audios/MSP-PODCAST_0002_0003.wav"].gender == "male"
    assert entries["Audios/MSP-PODCAST_0100_0000.wav"].gender is None  # no row: unknown
    assert labels(entries["Audios/MSP-PODCAST_0003_0001.wav"]) == (0.0, 1.0, round(0.8 / 6, 6))
    assert not entries["Audios/MSP-PODCAST_0100_0000.wav"].has_labels
    assert len(entries) == len(MSP_ROWS) + 1


def test_msp_podcast_missing_column_and_out_of_range(tmp_path):
    root = build_msp_podcast(tmp_path)
    sheet = root / "Labels" / "labels_consensus.csv"
    text = sheet.read_text()
    sheet.write_text(text.replace("4.0,4.2,3.8", "9.0,4.2,3.8"))
    entries = by_path(prepare_msp_podcast(str(root)))
    problem = entries["Audios/MSP-PODCAST_0001_0008.wav"].problem
    assert problem[0] == "label_out_of_range" and "row 2" in problem[1] and "1-7" in problem[1]
    sheet.write_text(text.replace("EmoDom", "Dominance"))
    with pytest.raises(RecipeError, match="lacks column.*EmoDom"):
        prepare_msp_podcast(str(root))


# -- iemocap ------------------------------------------------------------------------------
def test_iemocap_layout_reorders_vad_to_adv(tmp_path):
    entries = by_path(prepare_iemocap(str(build_iemocap(tmp_path))))
    assert set(entries) == {
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav",
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav",
        "Session1/sentences/wav/Ses01F_script01_1/Ses01F_script01_1_F002.wav",
    }  # the full-dialog recording in dialog/wav is not an utterance
    angry = entries["Session1/sentences/wav/Ses01F_script01_1/Ses01F_script01_1_F002.wav"]
    # bracket [V, A, D] = [1, 5, 4.5] on 1..5 -> lake (A, D, V) = (1, 0.875, 0)
    assert labels(angry) == (1.0, 0.875, 0.0)
    assert angry.source_scale == "1-5" and angry.speaker == "Ses01F"
    male = entries["Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav"]
    assert labels(male) == (0.625, 0.5, 0.25) and male.speaker == "Ses01M"
    # the gender is the utterance speaker's letter before the final digits, not the
    # session's (Ses01F_impro01_M001 is the male speaker of a dialog led by a female one)
    assert (angry.gender, male.gender) == ("female", "male")


def test_iemocap_unlabeled_utterance_gets_speaker_and_gender(tmp_path):
    root = build_iemocap(tmp_path)
    write_clip(root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" /
               "Ses01F_impro01_M005.wav", 7)
    entries = by_path(prepare_iemocap(str(root)))
    extra = entries["Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M005.wav"]
    assert not extra.has_labels and (extra.speaker, extra.gender) == ("Ses01M", "male")


def test_iemocap_errors(tmp_path):
    with pytest.raises(RecipeError, match="no Session1..Session5"):
        prepare_iemocap(str(tmp_path))
    root = build_iemocap(tmp_path)
    sheet = root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    sheet.write_text(sheet.read_text().replace("[2.0000, 3.5000, 3.0000]", "[2.0, 7.5, 3.0]"))
    entries = by_path(prepare_iemocap(str(root)))
    problem = entries["Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav"].problem
    assert problem[0] == "label_out_of_range" and "Ses01F_impro01.txt line" in problem[1]


# -- audformat ----------------------------------------------------------------------------
def test_audformat_filewise_tables_with_scheme_ranges(tmp_path):
    entries = by_path(get_recipe("audformat")(str(build_audformat(tmp_path))))
    assert set(entries) == {"audio/a.wav", "audio/b.wav", "audio/c.wav", "audio/d.wav"}
    # scheme range -1..1 -> 0..1
    assert labels(entries["audio/a.wav"]) == (0.0, 0.5, 1.0)
    assert labels(entries["audio/b.wav"]) == (0.75, 0.75, 0.25)
    assert (entries["audio/c.wav"].split, entries["audio/a.wav"].split) == ("test", "train")
    assert entries["audio/b.wav"].speaker == "spk1"
    # from the speaker scheme's labels; c.wav's own gender column says M for spk0
    assert [entries[f"audio/{n}.wav"].gender for n in "abcd"] == ["female", "male", "male",
                                                                   None]
    assert entries["audio/a.wav"].source_scale == "-1..1"
    assert not entries["audio/d.wav"].has_labels


def test_audformat_without_database_is_a_clear_error(tmp_path):
    write_clip(tmp_path / "a.wav", 0)
    with pytest.raises(RecipeError, match="db.yaml is missing"):
        get_recipe("audformat")(str(tmp_path))
