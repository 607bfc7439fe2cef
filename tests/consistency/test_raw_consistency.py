"""Raw media, consistently: prepare.py's features do not depend on the batch size, and verify.py on
the raw pair lists reproduces train.py's submission for EVERY language.

A raw MAV-Celeb v1 folder of real speech (espeak-ng when installed, else speech-like audio from
``tests/speech.py``; every clip a different length, so batches pad) and real photos
(scikit-image). Encoders have random weights (none can be downloaded here).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import load_script
from speech import PHRASES, write_speech

skdata = pytest.importorskip("skimage.data")

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "fame"
ENC_ARGS = ["--face-arg", "image_size=80", "--voice-arg", "channels=[32,32,32,32,96]",
            "--voice-arg", "attention_channels=16", "--voice-arg", "se_channels=16"]
TRAIN_FAST = ["data.val_ids=2", "data.val_trials=50", "engine.epochs=1", "engine.batch_size=2",
              "engine.progress=false", "engine.warmup_steps=0"]
TOL = 1e-5
LANGS = ("English", "Urdu")

prepare_mod = load_script(RECIPE / "prepare.py")
train_mod = load_script(RECIPE / "train.py")
verify_mod = load_script(RECIPE / "verify.py")


def _frames() -> list[Image.Image]:
    ast = Image.fromarray(skdata.astronaut()).convert("RGB")
    cam = Image.fromarray(skdata.camera()).convert("RGB")
    cat = Image.fromarray(skdata.chelsea()).convert("RGB")
    return [ast.resize((160, 160)), cam.resize((160, 160)), cat.resize((160, 160)),
            ast.crop((100, 0, 400, 300)).resize((160, 160)), cam.transpose(Image.FLIP_LEFT_RIGHT).resize((160, 160))]


def make_speech_layout(root: Path) -> dict[str, Path]:
    """v1: 4 identities x English/Urdu x 2 clips (train), 4 pairs per language (test)."""
    train, test = root / "mavceleb_v1_train", root / "mavceleb_v1_test"
    frames = _frames()
    k = 0
    for ident in ("id0001", "id0002", "id0003", "id0004"):
        for lang in LANGS:
            for clip in ("00001", "00002"):
                path = train / "faces" / ident / lang / "vidA" / f"{clip}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                frames[k % len(frames)].save(path, quality=95)
                write_speech(train / "voices" / ident / lang / "vidA" / f"{clip}.wav",
                             f"{PHRASES[k % len(PHRASES)]} {ident[-1]}")
                k += 1
    for li, lang in enumerate(LANGS):
        lines = []
        for i in range(4):
            face = test / "faces" / lang / f"{i:05d}.jpg"
            face.parent.mkdir(parents=True, exist_ok=True)
            frames[(i + li) % len(frames)].save(face, quality=95)
            write_speech(test / "voices" / lang / f"{i:05d}.wav", PHRASES[(3 * i + li) % len(PHRASES)])
            lines.append(f"{lang[:2].lower()}{i} voices/{lang}/{i:05d}.wav faces/{lang}/{i:05d}.jpg")
        (root / f"{lang}_test.txt").write_text("\n".join(lines) + "\n")
    return {"train": train, "test": test}


def _prepare(root: Path, out: Path, *extra: str) -> None:
    rc = prepare_mod.main(["--raw-root", str(root), "--ver", "v1", "--output", str(out), "--random-weights",
                           "--device", "cpu", "--workers", "0", "--offline", *ENC_ARGS, *extra])
    assert rc == 0


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    """prepare.py (default batch size, and --batch-size 1) → train.py (tiny) on the default features."""
    root = tmp_path_factory.mktemp("raw_speech")
    dirs = make_speech_layout(root)
    feats = tmp_path_factory.mktemp("feats_default")
    _prepare(root, feats)
    feats_one = tmp_path_factory.mktemp("feats_batch1")
    _prepare(root, feats_one, "--batch-size", "1")
    run = tmp_path_factory.mktemp("runs") / "fame_v1"
    train_mod.main(["--feats-root", str(feats), "--ver", "v1", "--output-dir", str(run), *TRAIN_FAST])
    return {"root": root, "feats": feats, "feats_one": feats_one, "run": run, **dirs}


def _rows(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)


def _scores(path: Path) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def test_prepare_voice_features_do_not_depend_on_batch_size(speech_run):
    a, b = speech_run["feats"], speech_run["feats_one"]
    files = sorted(p.relative_to(a) for p in a.rglob("*_voices_*.csv"))
    assert len(files) == 2 + 4  # train: 2 languages; test: 2 heard x 2 test languages
    lengths = {len(np.asarray(__import__("soundfile").read(p)[0])) for p in speech_run["root"].rglob("*.wav")}
    assert len(lengths) > 8  # the clips differ in length, so the default batch pads them
    for rel in files:
        x, y = _rows(a / rel), _rows(b / rel)
        assert x.shape == y.shape and x.shape[0] >= 4, rel
        rel_l2 = np.linalg.norm(x - y, axis=1) / np.maximum(np.linalg.norm(y, axis=1), 1e-12)
        assert rel_l2.max() <= TOL, (rel, rel_l2.max())
    for rel in sorted(p.relative_to(a) for p in a.rglob("*_faces_*.csv")):
        np.testing.assert_allclose(_rows(a / rel), _rows(b / rel), rtol=TOL, atol=TOL)


def test_verify_reproduces_the_submission_for_every_language(speech_run, tmp_path, capsys):
    run, root = speech_run["run"], speech_run["root"]
    out = tmp_path / "verify"
    rc = verify_mod.main(["--run-dir", str(run), "--raw-root", str(speech_run["test"]), "--pairs",
                          *(str(root / f"{lang}_test.txt") for lang in LANGS), "--output-dir", str(out),
                          "--workers", "0", "--offline", "--device", "cpu", "--batch-size", "3"])
    err = capsys.readouterr().err
    assert rc == 0, err
    # random encoder weights are announced on screen and recorded in the outputs
    assert "warning: the face/voice encoders have RANDOM weights" in err and "mean nothing" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] is True and summary["encoder_mismatch_accepted"] == []
    names = sorted(p.name for p in (run / "submission").glob("sub_score_*.txt"))
    assert len(names) == 4 and {n.split("_")[2] for n in names} == set(LANGS)
    for name in names:
        mine, theirs = _scores(out / "submission" / name), _scores(run / "submission" / name)
        assert mine.keys() == theirs.keys() and len(mine) == 4
        diff = max(abs(mine[k] - theirs[k]) for k in mine)
        assert diff <= TOL, (name, diff)


def _one_pair(speech_run) -> list[str]:
    test = speech_run["test"]
    return ["--face", str(test / "faces/Urdu/00001.jpg"), "--voice", str(test / "voices/Urdu/00001.wav")]


def test_verify_one_pair_says_random_weights(speech_run, capsys):
    rc = verify_mod.main(["--run-dir", str(speech_run["run"]), *_one_pair(speech_run), "--workers", "0",
                          "--device", "cpu", "--train-lang", "Urdu"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.startswith("Urdu model: distance ") and "RANDOM encoder weights: meaningless" in out
    assert "warning: the face/voice encoders have RANDOM weights" in err


def test_verify_refuses_other_encoders_than_the_model_was_trained_on(speech_run, tmp_path, capsys):
    """feature_info.json under --feats-root names another voice architecture than the one the
    run's models were trained on: refused in one line naming both, unless --allow-encoder-mismatch."""
    info = json.loads((speech_run["feats"] / "feats" / "v1" / "feature_info.json").read_text())
    info["voice_encoder"]["args"] = {**info["voice_encoder"]["args"], "channels": [16, 16, 16, 16, 48]}
    other = tmp_path / "other_feats"
    (other / "feats" / "v1").mkdir(parents=True)
    (other / "feats" / "v1" / "feature_info.json").write_text(json.dumps(info))
    argv = ["--run-dir", str(speech_run["run"]), *_one_pair(speech_run), "--workers", "0", "--device", "cpu",
            "--feats-root", str(other), "--train-lang", "English"]
    rc = verify_mod.main(argv)
    out, err = capsys.readouterr()
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and not out, err
    line = errors[0]
    assert "v1_English" in line and "(voice input)" in line and "ecapa_voxceleb" in line
    assert "[32, 32, 32, 32, 96]" in line and "[16, 16, 16, 16, 48]" in line and "--allow-encoder-mismatch" in line
    rc = verify_mod.main([*argv, "--allow-encoder-mismatch"])
    out, err = capsys.readouterr()
    assert rc == 0 and out.startswith("English model: distance "), err
    assert any(x.startswith("warning:") and "(voice input)" in x and "used anyway" in x for x in err.splitlines())


def test_train_on_random_weight_features_says_so_in_its_outputs(speech_run):
    """Features from prepare.py --random-weights: train.py's results, submission manifest and model
    cards say the scores mean nothing (the log warned on screen too)."""
    run = speech_run["run"]
    results = json.loads((run / "results.json").read_text())
    assert results["random_weight_features"] is True
    manifest = json.loads((run / "submission" / "manifest.json").read_text())
    assert manifest["random_weight_features"] is True
    for lang in LANGS:
        card = (run / f"v1_{lang}" / "model" / "README.md").read_text()
        assert "RANDOM-WEIGHT encoders" in card
    assert "RANDOM-WEIGHT encoders" in (run / "log.txt").read_text()


def test_verify_applies_the_normalisation_the_run_chose(speech_run, tmp_path, capsys):
    """A run that submits S-normalised scores is verified with the same normalisation (its cohort
    from scoring.npz): the verifier's scores are the submission's, not raw distances."""
    run, root = tmp_path / "snorm_run", speech_run["root"]
    train_mod.main(["--feats-root", str(speech_run["feats"]), "--ver", "v1", "--output-dir", str(run),
                    "--train-lang", "Urdu", *TRAIN_FAST, "norm.method=snorm"])
    out = tmp_path / "verify"
    rc = verify_mod.main(["--run-dir", str(run), "--raw-root", str(speech_run["test"]), "--pairs",
                          *(str(root / f"{lang}_test.txt") for lang in LANGS), "--output-dir", str(out),
                          "--workers", "0", "--offline", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    names = sorted(p.name for p in (run / "submission").glob("sub_score_*.txt"))
    assert len(names) == 2
    with np.load(run / "v1_Urdu" / "scoring.npz") as z:
        raw = {lang: dict(zip(z[f"test_{lang}_keys"], z[f"test_{lang}_raw"])) for lang in LANGS}
    for name in names:
        mine, theirs = _scores(out / "submission" / name), _scores(run / "submission" / name)
        lang, keys = name.split("_")[2], sorted(theirs)
        assert sorted(mine) == keys
        # S-norm divides by the cohort's spread (here 2 identities: ~0.01), which scales the features'
        # TOL about 100 times; raw distances would differ from the normalised scores by ~1 or more
        np.testing.assert_allclose([mine[k] for k in keys], [theirs[k] for k in keys], rtol=1e-3, atol=1e-3)
        assert max(abs(theirs[k] - raw[lang][k]) for k in keys) > 0.5, name  # normalised, not distances
    capsys.readouterr()
    assert verify_mod.main(["--run-dir", str(run), *_one_pair(speech_run), "--workers", "0", "--offline",
                            "--device", "cpu"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("Urdu model: score ") and "(snorm/identity_means-normalised L2; lower" in shown, shown
