"""FAME recipe: score normalisation chosen on validation, and seed ensembles, on a tiny
synthetic set (CPU)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from challenge import validate_submission
from challenge.combine import normalise_run
from conftest import load_script
from modalink.face_voice import generate_synthetic_fame
from modalink.score_norm import NormSpec

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "fame"
fame_train = load_script(RECIPE / "train.py")
fame_ensemble = load_script(RECIPE / "ensemble.py")

TINY = dict(n_train_ids=8, n_test_ids=4, rows_per_id=12, n_test_pairs=60, face_dim=64, voice_dim=32)
SETTINGS = ["data.face_dim=64", "data.voice_dim=32", "data.val_ids=2", "data.val_trials=200", "engine.epochs=2",
            "engine.batch_size=32", "engine.progress=false", "engine.warmup_steps=0"]


@pytest.fixture(scope="module")
def feats_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fame_data")
    generate_synthetic_fame(root, ver="v3", seed=0, **TINY)
    return root


def _scores(path: Path) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def test_train_norm_is_chosen_on_validation_and_equals_challenge_norm(feats_root: Path, tmp_path: Path) -> None:
    base = ["--feats-root", str(feats_root), "--ver", "v3", "--train-lang", "German", *SETTINGS]
    raw = fame_train.main([*base, "--output-dir", str(tmp_path / "raw")])
    normed = fame_train.main([*base, "--output-dir", str(tmp_path / "snorm"), "norm.method=snorm"])
    rec = normed["norm"]["per_language"]["German"]
    assert rec["chosen"]["name"] == "snorm/identity_means"
    assert rec["val_eer_raw"] == pytest.approx(raw["selection"]["German"]["best_val_eer"])
    # results show test EER without normalisation next to the submitted (normalised) one
    assert normed["norm"]["mean_eer_raw"] == pytest.approx(raw["mean_eer"])
    md = (tmp_path / "snorm" / "results.md").read_text()
    assert "val. EER raw" in md and "test EER raw" in md
    # the recipe's normalised submission = `challenge norm` of the unnormalised run
    combined = normalise_run(tmp_path / "raw", NormSpec("snorm", "identity_means"))
    for (train, test, _), (keys, s) in combined["entries"].items():
        name = f"sub_score_{test}_{'heard' if train == test else 'unheard'}.txt"
        got = _scores(tmp_path / "snorm" / "submission" / name)
        np.testing.assert_allclose([got[k] for k in keys], s, rtol=1e-6, atol=1e-6)
    # auto compares none, snorm and asnorm for every top_k and keeps the best VALIDATION EER
    auto = fame_train.main([*base, "--output-dir", str(tmp_path / "auto"), "norm.method=auto", "norm.top_k=[3,5]"])
    cands = auto["norm"]["per_language"]["German"]["candidates"]
    assert [c["name"] for c in cands] == ["none", "snorm/identity_means", "asnorm/identity_means/k=3",
                                          "asnorm/identity_means/k=5"]
    best = min(cands, key=lambda c: c["val_eer"])["val_eer"]
    assert auto["norm"]["per_language"]["German"]["val_eer"] == pytest.approx(best)


def test_seed_ensemble_writes_fused_submission_and_resumes(feats_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ens"
    args = ["--feats-root", str(feats_root), "--ver", "v3", "--output-dir", str(out), "--seeds", "0", "1",
            *SETTINGS]
    res = fame_ensemble.main(args)
    assert [m["seed"] for m in res["members"]] == [0, 1]
    for seed in (0, 1):  # each member is a normal run folder
        assert json.loads((out / f"seed_{seed}" / "run.json").read_text())
    pairs = feats_root / "face_voice_association_splits" / "v3"
    report = validate_submission(out / "submission", pairs, ver="v3")
    assert report.ok, report.format()
    manifest = json.loads((out / "submission" / "manifest.json").read_text())
    assert manifest["combined"]["inputs"] == [str(out / "seed_0"), str(out / "seed_1")]
    md = (out / "results.md").read_text()
    assert "seed 0" in md and "seed 1" in md and "**fused**" in md
    assert set(res["fused_submitted"]["val_eer"]) == {"English", "German"}
    assert len(res["fused_submitted"]["eer"]) == 4
    # the same command again re-fuses the finished members to the same results
    before = (out / "results.json").read_bytes()
    fame_ensemble.main(args)
    assert (out / "results.json").read_bytes() == before
    # other settings in the same folder are refused before anything is trained
    with pytest.raises(Exception, match="other settings"):
        fame_ensemble.main([*args, "engine.lr=0.01"])
