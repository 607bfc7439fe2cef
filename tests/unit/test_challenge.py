"""Tests of the FAME submission tools (challenge/): names, write, validate, pack, score, CLI."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from modalink.face_voice import FeatureFileError
from challenge import (ChallengeError, Edition, FormatError, SubmissionError, get_edition, pack_submission,
                       read_ground_truth, read_pair_keys, score_submission, similarity_hint,
                       validate_submission, write_scores, write_submission)
from challenge.__main__ import build_parser, main

REPO = Path(__file__).resolve().parents[2]
LANGS = ("English", "German")
N = 120
V3_NAMES = {"sub_score_English_heard.txt", "sub_score_German_unheard.txt",
            "sub_score_German_heard.txt", "sub_score_English_unheard.txt"}


def reference_eer(labels, scores) -> float:
    """Independent EER (percent) the organisers' way: distances, roc_curve(-score), brentq."""
    fpr, tpr, _ = roc_curve(np.asarray(labels), -np.asarray(scores, dtype=float))
    return 100.0 * brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)


def _write_lists(folder: Path, data: dict) -> None:
    (folder / "pairs").mkdir(parents=True, exist_ok=True)
    (folder / "gt").mkdir(parents=True, exist_ok=True)
    for lang, (keys, labels) in data.items():
        (folder / "pairs" / f"{lang}_test.txt").write_text(
            "".join(f"{k} voices/{lang}/{i:05d}.wav faces/{lang}/{i:05d}.jpg\n" for i, k in enumerate(keys)))
        (folder / "gt" / f"{lang}_test.txt").write_text("".join(f"{k} {y}\n" for k, y in zip(keys, labels)))


@pytest.fixture
def fame(tmp_path: Path) -> SimpleNamespace:
    """Synthetic v3-like setup: pair lists, ground truth and a valid 4-file submission of distances."""
    rng = np.random.default_rng(0)
    data = {}
    for lang in LANGS:
        keys = [f"{lang[:2].lower()}{i:05d}" for i in range(N)]
        labels = rng.permutation(np.r_[np.ones(N // 2, int), np.zeros(N - N // 2, int)])
        data[lang] = (keys, labels)
    _write_lists(tmp_path, data)
    entries = {}
    for train in LANGS:
        for test in LANGS:
            keys, y = data[test]
            shift = 0.25 if train == test else 0.1
            s = np.where(y == 1, 1.0 - shift, 1.0) + rng.normal(0, 0.3, N)  # distances around 1
            entries[(train, test, "heard" if train == test else "unheard")] = (keys, s)
    sub = tmp_path / "sub"
    write_submission(sub, entries, pairs_dir=tmp_path / "pairs")
    return SimpleNamespace(root=tmp_path, pairs=tmp_path / "pairs", gt=tmp_path / "gt", sub=sub,
                           data=data, entries=entries)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _set_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------
def test_edition_names():
    assert set(get_edition().expected_files(LANGS)) == V3_NAMES
    assert get_edition("2026").file_name("English", "German") == "sub_score_German_unheard.txt"
    assert get_edition("2024").file_name("Urdu", "Urdu", "heard") == "sub_scores_Urdu_heard.txt"
    custom = get_edition(template="team_{train_lang}_{test_lang}_{condition}.txt")
    assert custom.file_name("German", "English") == "team_German_English_unheard.txt"
    with pytest.raises(ValueError, match="condition"):
        get_edition().file_name("English", "German", "heard")
    with pytest.raises(ValueError, match="prefix"):
        Edition("x", "{prefix}_{test_lang}_{condition}.txt")
    with pytest.raises(ValueError, match="same name"):  # no {train_lang} with three languages collides
        get_edition().expected_files(["English", "German", "Urdu"])
    with pytest.raises(ValueError, match="unknown FAME edition"):
        get_edition("2025")


# ---------------------------------------------------------------------------------------------
# readers and writers
# ---------------------------------------------------------------------------------------------
def test_read_pair_list_and_ground_truth_errors(tmp_path: Path):
    p = tmp_path / "English_test.txt"
    p.write_text("a voices/English/0.wav faces/English/0.jpg\n\nb voices/English/1.wav faces/English/1.jpg\n")
    assert read_pair_keys(p) == ["a", "b"]
    p.write_text("a voices/English/0.wav faces/English/0.jpg\nb voices/English/1.wav\n")
    # one reader (modalink.face_voice.lists) and one error type for the recipes and the challenge tools
    with pytest.raises(FeatureFileError, match=r"English_test.txt, line 2: expected 3 fields"):
        read_pair_keys(p)
    p.write_text("a v f\nb v f\na v f\n")
    with pytest.raises(FeatureFileError, match=r"line 3: duplicate key 'a' \(first on line 1\)"):
        read_pair_keys(p)
    g = tmp_path / "gt.txt"
    g.write_text("a 1\nb 2\n")
    with pytest.raises(FeatureFileError, match=r"gt.txt, line 2, column 2: key 'b': label must be 0 or 1"):
        read_ground_truth(g)
    g.write_text("a 1\nb 0\n")
    assert read_ground_truth(g) == {"a": 1, "b": 0}


def test_write_scores_refuses_bad_input(tmp_path: Path):
    out = tmp_path / "s.txt"
    with pytest.raises(ValueError, match="non-finite.*'b'"):
        write_scores(out, ["a", "b"], [0.1, np.nan])
    with pytest.raises(ValueError, match="non-finite"):
        write_scores(out, ["a", "b"], [np.inf, 0.2])
    with pytest.raises(ValueError, match="2 keys but 3 scores"):
        write_scores(out, ["a", "b"], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        write_scores(out, ["a", "a"], [0.1, 0.2])
    assert not out.exists() and list(tmp_path.iterdir()) == []
    write_scores(out, ["a", "b"], np.array([0.1, 1.0 / 3.0], dtype=np.float32))
    lines = _lines(out)
    assert lines[0] == "a 0.100000001" and np.float32(float(lines[1].split()[1])) == np.float32(1.0 / 3.0)


def test_write_submission_checks_everything_before_writing(fame):
    out = fame.root / "sub2"
    entries = dict(fame.entries)
    keys, s = entries[("German", "German", "heard")]
    s = s.copy()
    s[7] = np.nan
    entries[("German", "German", "heard")] = (keys, s)
    with pytest.raises(ValueError, match="sub_score_German_heard.txt.*non-finite"):
        write_submission(out, entries)
    assert not out.exists() or list(out.iterdir()) == []
    with pytest.raises(ValueError, match="condition"):
        write_submission(out, {("English", "German", "heard"): fame.entries[("English", "German", "unheard")]})
    keys, s = fame.entries[("English", "English", "heard")]
    with pytest.raises(ValueError, match="have no score"):
        write_submission(out, {("English", "English"): (keys[:-1], s[:-1])}, pairs_dir=fame.pairs)


def test_write_submission_never_replaces_a_folder_modalink_did_not_write(fame):
    """The folder is swapped in whole: a user's own folder of that name (no manifest), or one with
    files its manifest does not list, is refused and left as it was; modalink's own is replaced."""
    from challenge.files import ChallengeError

    mine = fame.root / "users_submission"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own scores")
    with pytest.raises(ChallengeError, match="not written by modalink.*notes.txt"):
        write_submission(mine, fame.entries)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    out = fame.root / "sub_twice"
    write_submission(out, fame.entries)
    write_submission(out, fame.entries)  # modalink's own folder: replaced as a whole
    assert {p.name for p in out.iterdir()} == V3_NAMES | {"manifest.json"}
    (out / "colleague_scores.txt").write_text("x 1.0\n")
    with pytest.raises(ChallengeError, match="does not list .*colleague_scores.txt"):
        write_submission(out, fame.entries)
    assert (out / "colleague_scores.txt").read_text() == "x 1.0\n"


# ---------------------------------------------------------------------------------------------
# round trip
# ---------------------------------------------------------------------------------------------
def test_round_trip_write_validate_pack_score(fame):
    assert {p.name for p in fame.sub.iterdir()} == V3_NAMES | {"manifest.json"}
    report = validate_submission(fame.sub, fame.pairs, ground_truth_dir=fame.gt)
    assert report.ok and report.complete and report.n_warnings == 0, report.format()
    assert report.langs == list(LANGS)

    zip_path = fame.root / "out" / "submission.zip"
    path, _ = pack_submission(fame.sub, zip_path, fame.pairs)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert set(names) == V3_NAMES and all("/" not in n for n in names)
        assert zf.read("sub_score_German_heard.txt") == (fame.sub / "sub_score_German_heard.txt").read_bytes()
    assert sorted(p.name for p in zip_path.parent.iterdir()) == ["submission.zip"]  # no temp files left
    # same files -> same bytes (fixed timestamps)
    again, _ = pack_submission(fame.sub, fame.root / "again.zip", fame.pairs)
    assert again.read_bytes() == zip_path.read_bytes()
    assert validate_submission(zip_path, fame.pairs, ver="v3").ok

    result = score_submission(zip_path, fame.gt, pairs_dir=fame.pairs)
    assert result.complete and len(result.files) == 4
    for f in result.files:
        keys, y = fame.data[f.test_lang]
        ref = reference_eer(y, fame.entries[(f.train_lang, f.test_lang, f.condition)][1])
        assert abs(f.eer - ref) < 0.01, (f.file, f.eer, ref)
        assert f.n_pairs == N and f.n_pos == N // 2
    assert abs(result.mean_eer - np.mean([f.eer for f in result.files])) < 1e-12
    heard = [f.eer for f in result.files if f.condition == "heard"]
    assert max(heard) < 45  # the synthetic scores carry signal in the right direction
    folder_result = score_submission(fame.sub, fame.gt)
    assert [f.eer for f in folder_result.files] == [f.eer for f in result.files]


def test_eer_hand_checked_cases(fame):
    """Perfect distances give EER 0, reversed ones (similarities) 100, and the scorer agrees."""
    keys, y = fame.data["English"]
    perfect = np.where(y == 1, 0.2, 1.5)
    entries = {(t, s): (fame.data[s][0], np.where(fame.data[s][1] == 1, 0.2, 1.5)) for t in LANGS for s in LANGS}
    entries[("English", "English")] = (keys, 2.0 - perfect)
    out = fame.root / "hand"
    write_submission(out, entries)
    res = {f.file: f.eer for f in score_submission(out, fame.gt).files}
    assert res["sub_score_English_heard.txt"] == pytest.approx(100.0, abs=1e-6)
    assert res["sub_score_German_heard.txt"] == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# corruptions
# ---------------------------------------------------------------------------------------------
EH = "sub_score_English_heard.txt"


def _delete_line(sub: Path):
    lines = _lines(sub / EH)
    del lines[4]
    _set_lines(sub / EH, lines)
    return "missing-key", EH, None, "en00004", "line 5"


def _duplicate(sub: Path):
    lines = _lines(sub / EH)
    _set_lines(sub / EH, lines + [lines[2]])
    return "duplicate-key", EH, N + 1, "en00002", "first on line 3"


def _score_field(value: str, code: str):
    def corrupt(sub: Path):
        lines = _lines(sub / EH)
        lines[6] = f"{lines[6].split()[0]} {value}"
        _set_lines(sub / EH, lines)
        return code, EH, 7, "en00006", value
    return corrupt


def _extra_file(sub: Path):
    (sub / "notes.txt").write_text("hello\n")
    return "unexpected-file", "notes.txt", None, None, "expected"


def _wrong_name(sub: Path):
    os.replace(sub / "sub_score_German_heard.txt", sub / "sub_score_Urdu_heard.txt")
    return "unexpected-file", "sub_score_Urdu_heard.txt", None, None, "'Urdu' is not part of this submission"


def _unknown_key(sub: Path):
    lines = _lines(sub / EH)
    lines[1] = "zz99999 " + lines[1].split()[1]
    _set_lines(sub / EH, lines)
    return "unknown-key", EH, 2, "zz99999", "not in the pair list English_test.txt"


def _other_language_key(sub: Path):
    lines = _lines(sub / EH)
    lines[1] = "ge00001 " + lines[1].split()[1]
    _set_lines(sub / EH, lines)
    return "unknown-key", EH, 2, "ge00001", "belongs to German_test.txt"


def _three_fields(sub: Path):
    lines = _lines(sub / EH)
    lines[3] += " 0.5"
    _set_lines(sub / EH, lines)
    return "field-count", EH, 4, "en00003", "expected 2 fields"


def _blank_line(sub: Path):
    lines = _lines(sub / EH)
    _set_lines(sub / EH, lines[:10] + [""] + lines[10:])
    return "blank-line", EH, 11, None, "blank line"


def _missing_file(sub: Path):
    (sub / "sub_score_English_unheard.txt").unlink()
    return "missing-file", "sub_score_English_unheard.txt", None, None, "--partial"


CORRUPTIONS = {
    "missing key": _delete_line, "duplicate key": _duplicate, "nan": _score_field("nan", "non-finite"),
    "inf": _score_field("-inf", "non-finite"), "text score": _score_field("abc", "bad-number"),
    "comma decimal": _score_field("0,5", "bad-number"), "extra file": _extra_file, "wrong name": _wrong_name,
    "unknown key": _unknown_key, "other language key": _other_language_key, "three fields": _three_fields,
    "blank line": _blank_line, "missing file": _missing_file,
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corruption_is_reported_with_location(fame, corruption, capsys):
    code, file, line, key, text = CORRUPTIONS[corruption](fame.sub)
    report = validate_submission(fame.sub, fame.pairs)
    assert not report.ok
    hits = [i for i in report.errors if i.code == code]
    assert hits, report.format()
    issue = hits[0]
    assert issue.file == file and issue.line == line and issue.key == key, issue
    assert text in issue.message, issue
    if code in ("non-finite", "bad-number", "field-count", "duplicate-key"):
        # a key on a line already reported is not reported a second time as missing
        assert not [i for i in report.errors if i.code == "missing-key"], report.format()
    msg = str(issue)
    assert file in msg and (line is None or f"{file}:{line}" in msg) and (key is None or key in msg)

    capsys.readouterr()
    assert main(["validate", str(fame.sub), "--pairs", str(fame.pairs)]) == 1
    err = capsys.readouterr().err
    assert file in err and "INVALID" in err

    zip_path = fame.root / "bad.zip"
    assert main(["pack", str(fame.sub), "--pairs", str(fame.pairs), "-o", str(zip_path)]) == 1
    assert not zip_path.exists()
    assert not [p for p in fame.root.iterdir() if p.name.startswith(".bad.zip")]  # no temp file left
    with pytest.raises(SubmissionError):
        score_submission(fame.sub, fame.gt)


def test_wrong_name_suggestions(fame):
    os.replace(fame.sub / EH, fame.sub / "sub_score_english_heard.txt")
    report = validate_submission(fame.sub, fame.pairs)
    (issue,) = [i for i in report.errors if i.code == "unexpected-file"]
    assert "did you mean 'sub_score_English_heard.txt'" in issue.message
    out = fame.root / "sub2024"
    write_submission(out, fame.entries, edition="2024")
    assert (out / "sub_scores_English_heard.txt").exists()
    report = validate_submission(out, fame.pairs)
    msgs = " ".join(i.message for i in report.errors if i.code == "unexpected-file")
    assert "FAME 2024 name" in msgs and "--edition 2024" in msgs
    assert validate_submission(out, fame.pairs, edition="2024").ok


def test_many_errors_are_capped_but_counted(fame):
    lines = _lines(fame.sub / EH)
    _set_lines(fame.sub / EH, [f"{ln.split()[0]} x" for ln in lines])
    report = validate_submission(fame.sub, fame.pairs, max_issues=5)
    bad = [i for i in report.errors if i.code == "bad-number"]
    assert len(bad) == 6 and "115 more" in bad[-1].message  # 5 shown + a summary line
    assert report.n_errors >= N


def test_zip_with_folder_is_rejected(fame):
    bad = fame.root / "nested.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for p in fame.sub.iterdir():
            zf.write(p, f"sub/{p.name}")
    report = validate_submission(bad, fame.pairs)
    assert not report.ok and {i.code for i in report.errors} >= {"subfolder", "missing-file"}
    assert "zip root" in report.errors[0].message


def test_partial_submission(fame, capsys):
    for name in ("sub_score_German_heard.txt", "sub_score_English_unheard.txt"):
        (fame.sub / name).unlink()
    assert not validate_submission(fame.sub, fame.pairs).ok
    report = validate_submission(fame.sub, fame.pairs, partial=True)
    # the folder's manifest.json lists the full set: leaving files out is a warning with --partial
    assert report.ok and not report.complete and {w.code for w in report.warnings} == {"missing-file", "manifest"}
    result = score_submission(fame.sub, fame.gt, partial=True)
    assert not result.complete and len(result.files) == 2
    assert main(["score", str(fame.sub), "--ground-truth", str(fame.gt), "--partial"]) == 0
    assert "PARTIAL" in capsys.readouterr().out


def test_ground_truth_must_match_pair_list(fame):
    gt = fame.gt / "German_test.txt"
    _set_lines(gt, _lines(gt)[:-1] + ["zz00001 1"])
    report = validate_submission(fame.sub, fame.pairs, ground_truth_dir=fame.gt)
    codes = [(i.code, i.key) for i in report.errors]
    assert ("gt-mismatch", "zz00001") in codes and ("gt-mismatch", f"ge{N - 1:05d}") in codes


# ---------------------------------------------------------------------------------------------
# similarity warnings
# ---------------------------------------------------------------------------------------------
def test_similarity_hint_heuristic():
    rng = np.random.default_rng(1)
    cos_sim = np.clip(rng.normal(0.1, 0.3, 500), -1, 1)
    assert "cosine" in similarity_hint(cos_sim)
    prob = np.clip(rng.beta(5, 1, 500), 0, 1)
    assert "[0, 1]" in similarity_hint(prob)
    assert similarity_hint(1.0 - cos_sim) is None  # cosine distance spreads over [0, 2]
    assert similarity_hint(np.sqrt(2 - 2 * cos_sim)) is None  # Euclidean distance of unit vectors
    assert similarity_hint(cos_sim[:10]) is None  # too few to tell


def test_similarity_warning_in_validation(fame):
    sims = {k: (keys, (1.0 - s) / 2) for k, (keys, s) in fame.entries.items()}  # cosine-similarity-like
    out = fame.root / "sims"
    write_submission(out, sims)
    report = validate_submission(out, fame.pairs)
    assert report.ok and {w.file for w in report.warnings if w.code == "similarity"} == V3_NAMES
    report = validate_submission(out, fame.pairs, ground_truth_dir=fame.gt)
    auc_warnings = [w for w in report.warnings if "AUC of -score" in w.message]
    assert len(auc_warnings) == 4
    # shifted similarities escape the range heuristic, the ground-truth check still sees them
    shifted = {k: (keys, 5.0 - s) for k, (keys, s) in fame.entries.items()}
    write_submission(out, shifted)
    assert not validate_submission(out, fame.pairs).warnings
    assert len(validate_submission(out, fame.pairs, ground_truth_dir=fame.gt).warnings) == 4
    assert not validate_submission(fame.sub, fame.pairs, ground_truth_dir=fame.gt).warnings


# ---------------------------------------------------------------------------------------------
# languages / folders
# ---------------------------------------------------------------------------------------------
def test_language_resolution(fame):
    (fame.pairs / "Urdu_test.txt").write_text("ur00000 v f\n")
    with pytest.raises(ChallengeError, match="pass --ver or --langs"):
        validate_submission(fame.sub, fame.pairs)
    assert validate_submission(fame.sub, fame.pairs, ver="v3").ok
    assert validate_submission(fame.sub, fame.pairs, langs=["english", "german"]).ok
    with pytest.raises(ChallengeError, match="Hindi_test.txt"):
        validate_submission(fame.sub, fame.pairs, ver="v2")
    root = fame.root / "splits"
    root.mkdir()
    os.replace(fame.pairs, root / "v3")
    with pytest.raises(ChallengeError, match="pass --ver"):
        validate_submission(fame.sub, root)
    assert validate_submission(fame.sub, root, ver="v3").ok


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
SUBCOMMANDS = ("write", "validate", "pack", "score", "norm", "fuse")


def _subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _flags(parser: argparse.ArgumentParser) -> dict[str, tuple]:
    """Each option string → (action type, help, default): what a user sees of a flag."""
    return {opt: (type(a).__name__, a.help, a.default) for a in parser._actions for opt in a.option_strings}


def test_cli_lists_every_subcommand():
    assert tuple(_subcommand_parsers(build_parser())) == SUBCOMMANDS  # a new one gets the tests below too


@pytest.mark.parametrize("cmd", [[], *([c] for c in SUBCOMMANDS)])
def test_cli_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--debug" in out


def test_cli_shares_the_common_flags_with_the_recipes():
    """challenge's parser and every subcommand's are built from modalink.cli's pieces, as the
    recipes' are: the same common flags, help text and layout, so they cannot drift apart."""
    from modalink.cli import HelpFormatter, add_common_flags, recipe_parser

    common = _flags(add_common_flags(argparse.ArgumentParser()))
    assert "--debug" in common
    top = build_parser()
    for parser in (recipe_parser("demo"), top):
        assert _flags(parser).items() >= common.items() and parser.formatter_class is HelpFormatter
    for name, parser in _subcommand_parsers(top).items():
        got = _flags(parser)
        # a subcommand's copy has no default, so it cannot reset a flag given before the subcommand
        assert {k: v[:2] for k, v in got.items() if k in common} == {k: v[:2] for k, v in common.items()}, name
        assert got["--debug"][2] is argparse.SUPPRESS and parser.formatter_class is HelpFormatter, name


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_cli_debug_before_or_after_the_subcommand(cmd):
    required = {"write": ["s.npy", "--pair-list", "p.txt", "-o", "o"], "validate": ["sub", "--pairs", "p"],
                "pack": ["sub", "--pairs", "p", "-o", "o.zip"], "score": ["sub", "--ground-truth", "g"],
                "norm": ["run", "-o", "o"], "fuse": ["a", "b", "-o", "o"]}[cmd]
    parser = build_parser()
    assert parser.parse_args([cmd, *required]).debug is False
    assert parser.parse_args(["--debug", cmd, *required]).debug is True
    assert parser.parse_args([cmd, *required, "--debug"]).debug is True
    assert parser.parse_args([cmd, "--debug", *required]).debug is True


def test_cli_missing_pair_list_is_one_error_line(fame, capsys):
    """Unusable input: exit 2 and ONE 'error:' line naming the file; --debug (before or after the
    subcommand) adds the traceback."""
    npy = fame.root / "scores.npy"
    np.save(npy, np.zeros(N))
    missing = fame.root / "nope" / "German_test.txt"
    write = ["write", str(npy), "--pair-list", str(missing), "-o", str(fame.root / "out.txt")]
    capsys.readouterr()
    assert main(write) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(missing) in err[0], err
    (fame.pairs / "German_test.txt").unlink()
    validate = ["validate", str(fame.sub), "--pairs", str(fame.pairs), "--langs", "English", "German"]
    assert main(validate) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "German_test.txt" in err[0], err
    for argv in (["--debug", *write], [*write, "--debug"], [*validate, "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last)") and err.splitlines()[-1].startswith("error: ")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MODALINK_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "challenge", *validate], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and "German_test.txt" in proc.stderr


def test_cli_write(fame, capsys):
    keys, y = fame.data["German"]
    scores = fame.entries[("English", "German", "unheard")][1]
    npy = fame.root / "scores.npy"
    np.save(npy, scores.astype(np.float32))
    out = fame.root / "mine"
    out.mkdir()
    pair_list = fame.pairs / "German_test.txt"
    assert main(["write", str(npy), "--pair-list", str(pair_list), "--train-lang", "English", "-o", str(out)]) == 0
    written = out / "sub_score_German_unheard.txt"
    got = dict(line.split() for line in _lines(written))
    assert list(got) == keys and np.allclose([float(v) for v in got.values()], scores, atol=1e-6)
    # a 'key score' file in shuffled order, similarities negated, to an explicit file name
    txt = fame.root / "shuffled.txt"
    order = np.random.default_rng(2).permutation(N)
    txt.write_text("".join(f"{keys[i]} {float(-scores[i])!r}\n" for i in order))
    target = fame.root / "x" / "custom.txt"
    assert main(["write", str(txt), "--pair-list", str(pair_list), "--negate", "-o", str(target)]) == 0
    assert [float(line.split()[1]) for line in _lines(target)] == pytest.approx(scores)
    # one number per line with a NaN: refused, nothing written
    bad = fame.root / "bad.txt"
    bad.write_text("".join(f"{v}\n" for v in [*scores[:-1], "nan"]))
    capsys.readouterr()
    assert main(["write", str(bad), "--pair-list", str(pair_list), "-o", str(fame.root / "nan.txt")]) == 2
    assert "non-finite" in capsys.readouterr().err and not (fame.root / "nan.txt").exists()
    # a wrong-length array: refused
    np.save(npy, scores[:-1])
    assert main(["write", str(npy), "--pair-list", str(pair_list), "-o", str(fame.root / "short.txt")]) == 2
    assert "120 keys but 119 scores" in capsys.readouterr().err


def test_cli_score_reports(fame, capsys):
    report, csv_path, png = fame.root / "r" / "score.json", fame.root / "r" / "score.csv", fame.root / "det.png"
    rc = main(["score", str(fame.sub), "--ground-truth", str(fame.gt), "--report", str(report),
               "--csv", str(csv_path), "--plot", str(png)])
    assert rc == 0
    captured = capsys.readouterr()
    data = json.loads(report.read_text())
    assert data["complete"] and data["n_files"] == 4
    assert {f["file"] for f in data["files"]} == V3_NAMES
    assert f"{data['mean_eer']:.2f}" in captured.out and "mean EER of 4 files" in captured.out
    for f in data["files"]:
        keys, y = fame.data[f["test_lang"]]
        assert f["eer"] == pytest.approx(reference_eer(y, fame.entries[(f["train_lang"], f["test_lang"],
                                                                         f["condition"])][1]), abs=0.01)
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("file,train_lang") and rows[-1].startswith("MEAN,") and len(rows) == 6
    try:
        import matplotlib  # noqa: F401
        assert png.stat().st_size > 0
    except ImportError:
        assert "matplotlib is not installed" in captured.err and not png.exists()


def test_cli_errors_exit_nonzero(fame, capsys):
    assert main(["validate", str(fame.sub), "--pairs", str(fame.root / "nope")]) == 2
    assert "pair list folder not found" in capsys.readouterr().err
    assert main(["validate", str(fame.sub), "--pairs", str(fame.pairs), "--template", "{prefix}.txt"]) == 2
    assert main(["pack", str(fame.sub), "--pairs", str(fame.pairs), "-o", str(fame.root / "a.tar")]) == 2
    assert main(["score", str(fame.sub), "--ground-truth", str(fame.pairs)]) == 2  # pair lists are not labels
    assert "expected 2 fields" in capsys.readouterr().err


def test_cli_subprocess(fame):
    _three_fields(fame.sub)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "challenge", "validate", str(fame.sub), "--pairs", str(fame.pairs)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"{EH}:4: key 'en00003': expected 2 fields" in proc.stderr


# ---------------------------------------------------------------------------------------------
# a submission that cannot fool validate / pack
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("record", ['"a string"', "42", "null", '{"train_lang": "English"}'])
def test_a_manifest_record_of_the_wrong_shape_is_one_error_not_a_crash(fame, record, capsys):
    manifest = fame.sub / "manifest.json"
    body = json.loads(manifest.read_text())
    name = next(iter(body["files"]))
    body["files"][name] = json.loads(record)
    manifest.write_text(json.dumps(body))
    capsys.readouterr()
    assert main(["validate", str(fame.sub), "--pairs", str(fame.pairs)]) == 1
    out = capsys.readouterr()
    errors = [line for line in out.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "manifest.json" in errors[0] and name in errors[0], out
    assert "internal error" not in out.err
    npy = fame.root / "s.npy"
    np.save(npy, fame.entries[("English", "English", "heard")][1])
    argv = ["write", str(npy), "--pair-list", str(fame.pairs / "English_test.txt"), "--train-lang", "English",
            "-o", str(fame.sub) + "/"]
    assert main(argv) == 2  # `write` into that folder: unusable input, one line
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "manifest.json" in err[0], err


@pytest.mark.parametrize("force", [False, True])
def test_a_training_language_the_version_does_not_have_is_invalid(fame, force, capsys):
    npy = fame.root / "s.npy"
    np.save(npy, fame.entries[("German", "English", "unheard")][1])
    target = fame.sub
    if not force:  # a fresh folder: nothing to replace, no --force needed
        target = fame.root / "fresh"
        for (train, test, _), (keys, s) in fame.entries.items():
            if (train, test) != ("German", "English"):
                np.save(fame.root / "x.npy", s)
                assert main(["write", str(fame.root / "x.npy"), "--pair-list", str(fame.pairs / f"{test}_test.txt"),
                             "--train-lang", train, "-o", str(target) + "/"]) == 0
    argv = ["write", str(npy), "--pair-list", str(fame.pairs / "English_test.txt"), "--train-lang", "Urdu",
            "-o", str(target) + "/", *(["--force"] if force else [])]
    assert main(argv) == 0  # the pair folder does not say which version it is: v1 has English and Urdu
    capsys.readouterr()
    for extra in (["--ver", "v3"], [], ["--langs", "English", "German"]):
        assert main(["validate", str(target), "--pairs", str(fame.pairs), *extra]) == 1, extra
        err = capsys.readouterr().err
        assert "trained on Urdu" in err and "not a language of FAME v3" in err, err
    report = validate_submission(target, fame.pairs)
    assert [(i.code, i.file) for i in report.errors] == [("manifest-entry", "sub_score_English_unheard.txt")]
    with pytest.raises(SubmissionError):
        pack_submission(target, fame.root / "out.zip", fame.pairs)
    # a pair folder named after its version: refused at write time already
    v3 = fame.root / "splits" / "v3"
    v3.mkdir(parents=True)
    for p in fame.pairs.iterdir():
        (v3 / p.name).write_bytes(p.read_bytes())
    argv[argv.index("--pair-list") + 1] = str(v3 / "English_test.txt")
    assert main(argv) == 2
    assert "not a language of FAME v3" in capsys.readouterr().err


def test_a_manifest_entry_for_another_language_pair_is_invalid(fame):
    manifest = fame.sub / "manifest.json"
    body = json.loads(manifest.read_text())
    body["files"]["sub_score_German_unheard.txt"]["train_lang"] = "German"  # heard scores under an unheard name
    manifest.write_text(json.dumps(body))
    report = validate_submission(fame.sub, fame.pairs)
    assert [i.code for i in report.errors] == ["manifest-entry"]
    assert "train=German" in report.errors[0].message and "train=English" in report.errors[0].message


def test_pack_refuses_similarities_without_a_manifest_unless_told(fame, capsys):
    sims = {k: (keys, (1.0 - s) / 2) for k, (keys, s) in fame.entries.items()}  # cosine-similarity-like
    out = fame.root / "sims"
    write_submission(out, sims)
    (out / "manifest.json").unlink()
    zip_path = fame.root / "sims.zip"
    assert main(["validate", str(out), "--pairs", str(fame.pairs)]) == 0  # validate warns only
    assert "warning:" in capsys.readouterr().out
    assert main(["pack", str(out), "--pairs", str(fame.pairs), "-o", str(zip_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "look like similarities" in err[0] and "--allow-similarities" in err[0], err
    assert not zip_path.exists()
    with pytest.raises(ChallengeError, match="similarities"):
        pack_submission(out, zip_path, fame.pairs)
    assert main(["pack", str(out), "--pairs", str(fame.pairs), "-o", str(zip_path), "--allow-similarities"]) == 0
    assert zip_path.is_file()
    # distances without a manifest pack as before
    plain = fame.root / "plain"
    write_submission(plain, fame.entries)
    (plain / "manifest.json").unlink()
    assert main(["pack", str(plain), "--pairs", str(fame.pairs), "-o", str(fame.root / "plain.zip")]) == 0


def test_pack_with_the_wrong_version_says_what_is_wrong(fame, capsys):
    root = fame.root / "splits"
    root.mkdir()
    os.replace(fame.pairs, root / "v3")
    capsys.readouterr()
    assert main(["pack", str(fame.sub), "--pairs", str(root), "--ver", "v1", "-o", str(fame.root / "a.zip")]) == 2
    err = capsys.readouterr().err
    assert "version folders v3 only, not v1" in err and "pass --ver v3" in err and ": pass --ver)" not in err, err
    # a v1 pair folder for a v3 submission: the way out is the version, not --partial
    v1 = root / "v1"
    v1.mkdir()
    for lang in ("English", "Urdu"):
        (v1 / f"{lang}_test.txt").write_text((root / "v3" / "English_test.txt").read_text())
    assert main(["pack", str(fame.sub), "--pairs", str(root), "--ver", "v1", "-o", str(fame.root / "a.zip")]) == 1
    err = capsys.readouterr().err
    assert "--partial" not in err and "FAME v3 submission" in err and "--ver" in err, err
    assert main(["validate", str(fame.sub), "--pairs", str(v1)]) == 1
    assert "--partial" not in capsys.readouterr().err
    # the same folder's lists named for v3 under --ver v1: say which version they are
    with pytest.raises(ChallengeError, match="lists of v3, not v1; pass --ver v3"):
        validate_submission(fame.sub, root / "v3", ver="v1")
