"""Which errors are the user's is decided by class (one ``UserError`` base), and a user's mistake in
a data file, a registry name or a setting ends in ONE ``error:`` line with exit code 2."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from modalink.errors import (FileFormatError, InputError, UnknownNameError, UserError, is_user_error,
                             run_cli)
from test_recipes_real_layouts import (write_ferramenta, write_food101,
                                       write_hateful_memes, write_mmimdb)

ROOT = Path(__file__).resolve().parents[2]


def test_is_user_error_is_a_class_check_and_errors_py_imports_no_modalink_module():
    assert is_user_error(UserError("x")) and is_user_error(FileNotFoundError("x"))
    assert is_user_error(InputError("x")) and is_user_error(UnknownNameError("x"))
    for bug in (ValueError("x"), KeyError("x"), TypeError("x"), AttributeError("x"), RuntimeError("x"),
                FloatingPointError("x")):
        assert not is_user_error(bug), bug
    tree = ast.parse((ROOT / "modalink" / "errors.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.split(".")[0] in ("modalink", "challenge") for m in imported), imported


def test_every_error_a_user_can_cause_is_a_user_error():
    from challenge.files import ChallengeError, FormatError
    from challenge.manifest import ManifestError
    from modalink.audio import AudioError, SilentAudioError
    from modalink.config import ConfigError
    from modalink.classification.records import DatasetFormatError
    from modalink.face_voice.layout import FeatureFileError
    from modalink.encoders import NoFaceError, PreprocessError, ShortAudioError
    from modalink.engine.trainer import DivergedError
    from modalink.images import ImageError
    from modalink.text.word_vectors import WordVectorsFormatError

    for cls in (ConfigError, FeatureFileError, DatasetFormatError, WordVectorsFormatError, FormatError,
                ManifestError, AudioError, SilentAudioError, PreprocessError, NoFaceError, ShortAudioError,
                ImageError, InputError):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError), cls  # `except ValueError` still works
    for cls in (FeatureFileError, DatasetFormatError, WordVectorsFormatError, FormatError, AudioError, ImageError):
        assert issubclass(cls, FileFormatError), cls  # one base with path / line / column
    assert issubclass(ChallengeError, UserError) and issubclass(DivergedError, UserError)
    assert issubclass(UnknownNameError, KeyError)
    err = DatasetFormatError("a/b.csv", "bad row", 3)
    assert (str(err), err.path, err.line) == ("a/b.csv:3: bad row", Path("a/b.csv"), 3)
    err = FeatureFileError("f.csv", "not a number", 2, 5)
    assert str(err) == "f.csv, line 2, column 5: not a number" and err.column == 5


@pytest.mark.parametrize("make", ["model", "encoder", "timm_arch", "fusion", "dataset", "image_features",
                                  "fame_version"])
def test_unknown_registry_names_are_one_line_user_errors_listing_the_known_ones(make, capsys):
    from modalink.classification.image_features import create_image_features
    from modalink.classification.records import load_dataset
    from modalink.face_voice.layout import fame_languages
    from modalink.encoders import create_encoder
    from modalink.models import create_model
    from modalink.models.fusion import create_fusion

    call, known = {
        "model": (lambda: create_model("no-such-model"), "sbnet"),
        "encoder": (lambda: create_encoder("no-such-encoder"), "pixel-stats"),
        "timm_arch": (lambda: create_encoder("timm/resnet5O"), "timm/resnet50"),
        "fusion": (lambda: create_fusion("no-such-fusion", 8), "gated"),
        "dataset": (lambda: load_dataset("no-such-dataset", "."), "food101"),
        "image_features": (lambda: create_image_features("no-such-encoder"), "pixel-stats"),
        "fame_version": (lambda: fame_languages("v9"), "v3"),
    }[make]
    with pytest.raises(UnknownNameError) as info:
        call()
    assert isinstance(info.value, KeyError) and known in str(info.value) and not str(info.value).startswith("'")
    capsys.readouterr()
    assert run_cli(lambda argv: call(), []) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown ") and "internal error" not in err[0], err


# --------------------------------------------------------------------------- classification layouts
def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")


def _food101(root: Path, case: str) -> tuple[Path, int]:
    write_food101(root)
    titles = root / "texts" / "train_titles.csv"
    n = len(titles.read_text().splitlines())
    _append(titles, {"malformed_row": "apple_pie_99.jpg",  # one field: no title, no class
                     "bad_label": "apple_pie_0.jpg,a title,pizza",  # a class with no image folder
                     "missing_column": "apple_pie_0.jpg,apple_pie"}[case])  # title or class missing
    return titles, n + 1


def _hateful_memes(root: Path, case: str) -> tuple[Path, int]:
    write_hateful_memes(root)
    path = root / "train.jsonl"
    n = len(path.read_text().splitlines())
    _append(path, {"malformed_row": '{"id": 99, "img": "img/00001.png", "text": "unterminated',
                   "bad_label": json.dumps({"id": 99, "img": "img/00001.png", "text": "a meme", "label": 7}),
                   "missing_column": json.dumps({"id": 99, "img": "img/00001.png", "label": 1})}[case])
    return path, n + 1


def _ferramenta(root: Path, case: str) -> tuple[Path, int]:
    write_ferramenta(root)
    path = root / "text-image-train.csv"
    n = len(path.read_text().splitlines())
    _append(path, {"malformed_row": "a tool without any separator",
                   "bad_label": "a tool | nan | images/train/0_0.jpg",
                   "missing_column": "a tool | 1"}[case])
    return path, n + 1


def _mmimdb(root: Path, case: str) -> tuple[Path, int | None]:
    write_mmimdb(root)
    data = root / "dataset"
    if case == "malformed_row":
        (root / "split.json").write_text('{"train": ["1000000",\n  "1000001"\n', encoding="utf-8")
        return root / "split.json", 3
    path = data / f"{json.loads((root / 'split.json').read_text())['train'][0]}.json"
    meta = json.loads(path.read_text())
    if case == "bad_label":
        meta["genres"] = "Drama"  # a string, not a list of genres
    else:
        del meta["plot"]
    path.write_text(json.dumps(meta), encoding="utf-8")
    return path, None


LAYOUTS = {"food101": _food101, "hateful_memes": _hateful_memes, "ferramenta": _ferramenta, "mmimdb": _mmimdb}


@pytest.mark.parametrize("case", ["malformed_row", "bad_label", "missing_column"])
@pytest.mark.parametrize("dataset", sorted(LAYOUTS))
def test_a_bad_row_of_a_classification_layout_is_one_user_error_line(dataset, case, tmp_path, capsys):
    from modalink.classification.records import DatasetFormatError, load_dataset

    path, line = LAYOUTS[dataset](tmp_path / dataset, case)
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(dataset, tmp_path / dataset, "train")
    assert info.value.path == path and (line is None or info.value.line == line), (info.value.path, info.value.line)
    capsys.readouterr()
    assert run_cli(lambda argv: load_dataset(dataset, tmp_path / dataset, "train"), []) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}") and "internal error" not in err[0], err


# --------------------------------------------------------------------------- other user mistakes
def test_a_diverging_loss_is_a_user_error():
    from modalink.engine.trainer import DivergedError

    assert is_user_error(DivergedError("loss is nan at epoch 1, step 3; lower engine.lr or check the data"))


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity"])
def test_word_vectors_with_a_non_finite_value_are_refused_with_file_and_line(bad, tmp_path):
    from modalink.text.word_vectors import WordVectors, WordVectorsFormatError

    path = tmp_path / "vec.txt"
    path.write_text(f"apple 0.1 0.2\npear 0.3 {bad}\n", encoding="utf-8")
    with pytest.raises(WordVectorsFormatError, match=r"vec\.txt:2: non-finite") as info:
        WordVectors.load(path)
    assert info.value.line == 2 and is_user_error(info.value)
    path.write_bytes(b"apple 0.1 0.2\npear \xff\xfe 0.3\n")
    with pytest.raises(WordVectorsFormatError, match="not UTF-8"):
        WordVectors.load(path)


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e39"])
def test_fame_feature_csv_with_a_non_finite_value_is_refused_with_line_and_column(bad, tmp_path):
    from modalink.face_voice import FeatureFileError, read_feature_csv

    path = tmp_path / "faces.csv"
    path.write_text(f"0.1,0.2,3\n0.3,{bad},4\n0.5,0.6,5\n")
    with pytest.raises(FeatureFileError, match="non-finite") as info:
        read_feature_csv(path, 2, True)
    assert (info.value.line, info.value.column) == (2, 2) and is_user_error(info.value)
    # the chunked reader: the bad row in a later chunk
    rows = [f"{i / 10},{i / 20},{i}" for i in range(50)]
    rows[37] = f"0.3,{bad},4"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(FeatureFileError, match="non-finite") as info:
        read_feature_csv(path, 2, True, chunk_rows=8)
    assert (info.value.line, info.value.column) == (38, 2)


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_ground_truth_with_a_non_finite_label_is_refused_with_line(bad, tmp_path):
    from modalink.face_voice.layout import FeatureFileError
    from modalink.face_voice.lists import read_ground_truth

    path = tmp_path / "English_test.txt"
    path.write_text(f"a 1\nb 0\nc {bad}\n")
    with pytest.raises(FeatureFileError, match="label must be 0 or 1") as info:
        read_ground_truth(path)
    assert info.value.line == 3


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity"])
def test_scores_to_write_with_a_non_finite_value_are_refused_with_file_and_line(bad, tmp_path):
    from challenge.files import FormatError, read_score_values

    text = tmp_path / "scores.txt"
    text.write_text(f"0.5\n{bad}\n0.7\n")
    with pytest.raises(FormatError, match=r"line 2: non-finite score"):
        read_score_values(text)
    keyed = tmp_path / "keyed.txt"
    keyed.write_text(f"k1 0.5\nk2 0.6\nk3 {bad}\n")
    with pytest.raises(FormatError, match=r"line 3"):
        read_score_values(keyed, ["k1", "k2", "k3"])
    npy = tmp_path / "scores.npy"
    np.save(npy, np.array([0.5, float(bad), 0.7]))
    with pytest.raises(FormatError, match=r"index 1"):
        read_score_values(npy)


@pytest.mark.parametrize("bad", ["NaN", "Infinity"])
def test_hateful_memes_label_that_is_not_finite_is_refused_with_line(bad, tmp_path):
    from modalink.classification.records import DatasetFormatError
    from modalink.classification.sources.hateful_memes import load_hateful_memes

    root = write_hateful_memes(tmp_path / "hm")
    n = len((root / "train.jsonl").read_text().splitlines())
    _append(root / "train.jsonl", '{"id": 99, "img": "img/00001.png", "text": "a meme", "label": %s}' % bad)
    with pytest.raises(DatasetFormatError, match="label must be 0 or 1") as info:
        load_hateful_memes(root, "train")
    assert info.value.line == n + 1
