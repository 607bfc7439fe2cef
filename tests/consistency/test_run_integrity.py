"""The fault matrix's slow cases on the FAME recipe: a second job in a locked folder, swapped
language models, runs killed at random points, the one-line error under ``--debug``, and a
checkpoint that would run code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from challenge import validate_submission
from modalink.engine.run_folder import RunFolder, RunFolderError
from test_integrity import (ENV, RECIPE, _args, _cli, _error, _Evil, _snapshot, _train, fame_evaluate,  # noqa: F401
                            feats_root)


# -- 2. two jobs in one folder -------------------------------------------------------------------
def test_second_job_in_a_locked_folder_is_refused(feats_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = RunFolder.open(out, {"x": 1})
    try:
        with pytest.raises(RunFolderError, match="in use by another job"):
            _train(feats_root, out)
        # from another process too (flock is per open file, released when the holder dies)
        r = subprocess.run([sys.executable, str(RECIPE / "train.py"), *_args(feats_root, out)], env=ENV,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and "in use by another job" in r.stderr
        assert "Traceback" not in r.stderr and _error(r.stderr)  # one error line, no traceback
    finally:
        holder.close()
    assert not (out / "run.json").exists()


def test_swapped_language_models_are_refused_by_evaluate(feats_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    ref = _train(feats_root, out)
    contract = json.loads((out / "v3_German" / "model" / "config.json").read_text())["contract"]
    assert {k: contract[k] for k in ("task", "ver", "train_lang", "face_dim", "voice_dim", "features")} == {
        "task": "fame", "ver": "v3", "train_lang": "German", "face_dim": 64, "voice_dim": 32,
        "features": {"source": "csv"}}
    english, german = out / "v3_English" / "model", out / "v3_German" / "model"
    english.rename(tmp_path / "swap")
    german.rename(english)
    (tmp_path / "swap").rename(german)
    code, err = _cli(fame_evaluate, ["--run-dir", str(out), "--output-dir", str(tmp_path / "eval")], capsys)
    err = _error(err)
    assert code == 2 and "trained on German (v3), but it is used as the English (v3) model" in err, err
    assert str(english) in err and not (tmp_path / "eval" / "submission").exists()
    german.rename(tmp_path / "swap")
    english.rename(german)
    (tmp_path / "swap").rename(english)
    # features from another source than the model's (here: a prepare.py feature_info.json appears)
    enc = {"name": "facenet", "weights": "vggface2.pt", "args": {}, "random_weights": False, "seed": 0}
    (feats_root / "feats" / "v3" / "feature_info.json").write_text(json.dumps(
        {"face_dim": 64, "voice_dim": 32, "face_encoder": enc, "voice_encoder": {**enc, "name": "ecapa"}}))
    code, err = _cli(fame_evaluate, ["--run-dir", str(out), "--output-dir", str(tmp_path / "eval")], capsys)
    assert code == 2 and "was trained on CSV features without a prepare.py feature_info.json, but these are " \
        "prepare.py features of face facenet" in _error(err), err
    (feats_root / "feats" / "v3" / "feature_info.json").unlink()
    res = fame_evaluate.main(["--run-dir", str(out), "--output-dir", str(tmp_path / "eval")])
    assert res["mean_eer"] == pytest.approx(ref["mean_eer"])


# -- 5 + the kill matrix: killed at random points, resumed, identical -------------------------
def test_killed_runs_resume_to_identical_submission_and_results(feats_root: Path, tmp_path: Path) -> None:
    extra = ["engine.checkpoint_every_steps=2", "engine.epochs=3"]
    ref = tmp_path / "ref"
    # the reference runs like the cut runs (a subprocess with the same thread count: the float
    # reduction order, and so the last bits, depend on it)
    r = subprocess.run([sys.executable, str(RECIPE / "train.py"), *_args(feats_root, ref, *extra)], env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    want = _snapshot(ref)
    cmd = [sys.executable, str(RECIPE / "train.py"), *_args(feats_root, tmp_path / "cut", *extra)]
    # during an epoch (twice), during a checkpoint save, between submission files
    for point in ("train.step:3", "train.step:5", "checkpoint.before_marker:2", "submission.between_files:2"):
        r = subprocess.run(cmd, env={**ENV, "MODALINK_FAILPOINTS": point}, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == -9, (point, r.returncode, r.stderr[-2000:])
        sub = tmp_path / "cut" / "submission"
        if sub.exists():  # never a mix: whatever is there is a whole earlier set
            assert validate_submission(sub, feats_root / "face_voice_association_splits" / "v3").ok
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stderr
    assert _snapshot(tmp_path / "cut") == want
    assert not list((tmp_path / "cut").rglob("*.tmp")), "temp files left behind"


# -- 11. messages and file modes -----------------------------------------------------------------
def test_errors_are_one_line_with_traceback_behind_debug(tmp_path: Path) -> None:
    cmd = [sys.executable, str(RECIPE / "train.py"), "--output-dir", str(tmp_path / "r"), "engine.grad_accum=0"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and _error(r.stderr)  # one error line (after progress notes), last
    assert "grad_accum" in r.stderr
    r = subprocess.run(cmd + ["--debug"], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_malicious_checkpoint_is_refused_and_runs_nothing(feats_root: Path, tmp_path: Path) -> None:
    from modalink.io import UnsafeFileError
    from modalink.models import create_model

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "checkpoint.pth.tar"
    fop = create_model("fop", face_dim=64, voice_dim=32, embed_dim=16, num_classes=3)
    torch.save({"epoch": 1, "state_dict": fop.state_dict(), "extra": _Evil(str(marker))}, ckpt)
    with pytest.raises(UnsafeFileError, match="refused to load official checkpoint"):
        create_model("fop", face_dim=64, voice_dim=32, embed_dim=16).load_official_checkpoint(ckpt)
    assert not marker.exists()
    # through the command line: one line, exit 2, nothing run
    (feats_root / "feats" / "v3" / "feature_info.json").write_text(json.dumps({"face_dim": 64, "voice_dim": 32}))
    r = subprocess.run([sys.executable, str(RECIPE / "evaluate.py"), "--official-checkpoint", str(ckpt),
                        "--train-lang", "English", "--embed-dim", "16", "--feats-root", str(feats_root),
                        "--output-dir", str(tmp_path / "o")], env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert not marker.exists()
    assert r.returncode == 2 and "refused to load" in r.stderr, r.stderr[-2000:]
    # a plain official checkpoint still loads
    torch.save({"epoch": 1, "state_dict": fop.state_dict()}, ckpt)
    meta = create_model("fop", face_dim=64, voice_dim=32, embed_dim=16).load_official_checkpoint(ckpt)
    assert meta == {"epoch": 1}
