"""Benchmark scripts: --help works, and bench_fame_train's pipelines are correct on tiny data."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modalink.face_voice import generate_synthetic_fame, load_fame_train

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bench_fame_train.py"
FACE_DIM, VOICE_DIM = 24, 8


def _load_script():
    from conftest import load_script

    return load_script(SCRIPT)


@pytest.fixture(scope="module")
def bench():
    return _load_script()


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fame")
    generate_synthetic_fame(root, ver="v3", seed=1, n_train_ids=4, n_test_ids=2, rows_per_id=6, n_test_pairs=2,
                            face_dim=FACE_DIM, voice_dim=VOICE_DIM)
    return root


def test_help_runs():
    res = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for flag in ("--epochs", "--threads", "--json", "--feats-root", "--rows-per-id", "--n-train-ids"):
        assert flag in res.stdout


def test_official_style_load_matches_modalink_rows(bench, tiny_root):
    faces, voices, labels = bench.official_style_load(tiny_root, "v3", "English", seed=0)
    ref = load_fame_train(tiny_root, "v3", "English", use_cache=False, face_dim=FACE_DIM, voice_dim=VOICE_DIM)
    assert faces.dtype == np.float64 and voices.dtype == np.float64 and labels.dtype == np.int64
    assert faces.shape == ref.faces.shape and voices.shape == ref.voices.shape
    # every official-style row is one CSV row (face, voice and label kept together), shuffled once
    order = []
    for f, v, y in zip(faces, voices, labels):
        d = np.abs(ref.faces - f).max(axis=1) + np.abs(ref.voices - v).max(axis=1)
        j = int(np.argmin(d))
        assert d[j] < 1e-5
        order.append(j)
        # LabelEncoder codes = sorted-class codes, the same as modalink's remapped labels
        assert y == ref.labels[j]
    assert sorted(order) == list(range(len(ref.labels)))
    assert order != list(range(len(ref.labels)))


def test_official_style_train_writes_official_checkpoints(bench, tiny_root, tmp_path):
    faces, voices, labels = bench.official_style_load(tiny_root, "v3", "English", seed=0)
    samples, loss = bench.official_style_train(faces, voices, labels, epochs=2, batch_size=5,
                                               checkpoint_dir=tmp_path, device=torch.device("cpu"))
    assert samples == len(labels) // 5 * 5 * 2
    assert np.isfinite(loss)
    ckpts = sorted(p.name for p in tmp_path.iterdir())
    assert ckpts == ["checkpoint_0001.pth.tar", "checkpoint_0002.pth.tar"]
    state = torch.load(tmp_path / ckpts[-1], weights_only=False)
    assert state["epoch"] == 2
    assert tuple(state["state_dict"]["face_branch.fc1.0.weight"].shape) == (128, FACE_DIM)
    assert tuple(state["state_dict"]["logits_layer.weight"].shape) == (4, 128)


def test_main_smoke(bench, tiny_root, tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    report = bench.main(["--feats-root", str(tiny_root), "--face-dim", str(FACE_DIM), "--voice-dim",
                         str(VOICE_DIM), "--epochs", "1", "--official-batch-size", "4", "--batch-sizes", "8", "4",
                         "--threads", "1", "--work-dir", str(tmp_path / "work"), "--json", str(out_json),
                         "--quiet"])
    assert json.loads(out_json.read_text()) == json.loads(json.dumps(report))
    runs = report["runs"]
    assert [(r["pipeline"], r["batch_size"], r["cache"]) for r in runs] == [
        ("official-style", 4, "-"), ("modalink", 8, "cold"), ("modalink", 8, "warm"),
        ("modalink", 4, "cold"), ("modalink", 4, "warm")]
    n = report["setup"]["rows"]
    for r in runs:
        assert r["rows"] == n and r["load_s"] > 0 and r["train_s"] > 0
        assert r["samples"] == n // r["batch_size"] * r["batch_size"]
        assert r["total_s"] == pytest.approx(r["load_s"] + r["train_s"])
    official = runs[0]
    for x in report["ratios"]:
        run = next(r for r in runs if (r["batch_size"], r["cache"]) == (x["batch_size"], x["cache"]))
        assert x["total"] == pytest.approx(official["total_s"] / run["total_s"])
    printed = capsys.readouterr().out
    assert "| official-style | 4 |" in printed and "end to end" in printed
    assert not (tmp_path / "work" / "repeat_1").exists()  # caches/checkpoints removed without --keep-outputs


def test_bad_arguments_are_rejected(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--epochs", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch-sizes", "32", "-1"])


def test_device_check_runs_its_stages_and_writes_its_tables(tmp_path):
    """The prepared accelerator check (run as is on a lent GPU) works on the CPU: the cheap stages,
    tiny sizes; a stage that fails is recorded without stopping the others."""
    out = tmp_path / "dc"
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "device_check.py"), "--out", str(out),
                          "--stages", "env,train_step", "--steps", "1", "--batch-sizes", "8"],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads((out / "device_check.json").read_text())
    assert data["env"]["torch"] == torch.__version__
    rows = data["train_step"]["rows"]
    assert {(r["model"], r["precision"]) for r in rows} == {(m, p) for m in ("fop", "fop_enhanced", "sbnet_stems")
                                                             for p in ("fp32", "bf16")}
    assert all(r["pairs_per_s"] > 0 for r in rows)
    assert "| fop | fp32 | 8 |" in (out / "device_check.md").read_text()
