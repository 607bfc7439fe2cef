"""FAME recipe end to end on a tiny synthetic MAV-Celeb-like set (CPU, seconds)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from challenge import score_submission, validate_submission
from conftest import load_script
from modalink.face_voice import generate_synthetic_fame
from modalink.models import create_model

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "fame"


fame_train = load_script(RECIPE / "train.py")
fame_evaluate = load_script(RECIPE / "evaluate.py")

TINY = dict(n_train_ids=8, n_test_ids=4, rows_per_id=12, n_test_pairs=60, face_dim=64, voice_dim=32)
DIMS = ["data.face_dim=64", "data.voice_dim=32", "data.val_ids=2", "data.val_trials=200"]
FAST = ["engine.epochs=2", "engine.batch_size=32", "engine.progress=false", "engine.warmup_steps=0"]


@pytest.fixture(scope="module")
def feats_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fame_data")
    generate_synthetic_fame(root, ver="v3", seed=0, **TINY)
    return root


def _train(feats_root: Path, out: Path, *extra: str, config: str = "default.yaml") -> dict:
    return fame_train.main(["--feats-root", str(feats_root), "--ver", "v3", "--output-dir", str(out),
                            "--config", str(RECIPE / "hparams" / config), *DIMS, *FAST, *extra])


def test_train_writes_valid_submission_and_eers(feats_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = _train(feats_root, out)
    sub = out / "submission"
    names = sorted(p.name for p in sub.iterdir())
    assert names == ["manifest.json", "sub_score_English_heard.txt", "sub_score_English_unheard.txt",
                     "sub_score_German_heard.txt", "sub_score_German_unheard.txt"]
    pairs = feats_root / "face_voice_association_splits" / "v3"
    report = validate_submission(sub, pairs, ver="v3")
    assert report.ok, report.format()
    assert len(res["eer"]) == 4 and all(0 <= r["eer"] <= 100 for r in res["eer"])
    # the challenge scorer on the written files reproduces the recipe's own EERs
    scored = score_submission(sub, feats_root / "ground_truth" / "v3", pairs_dir=pairs, ver="v3")
    assert scored.mean_eer == pytest.approx(res["mean_eer"], abs=0.01)
    # run folder: resolved config, log, per-language checkpoints and metrics
    assert (out / "config.yaml").is_file() and (out / "log.txt").is_file()
    for lang in ("English", "German"):
        d = out / f"v3_{lang}"
        assert (d / "best_model.pt").is_file() and (d / "metrics.jsonl").is_file()
        assert any((d / "checkpoints").iterdir())
        assert len((d / "metrics.jsonl").read_text().splitlines()) == 2
    # the library opens the run by itself: config and each language's exported model
    from modalink.runs import open_run

    run = open_run(out)
    assert type(run).__name__ == "FameRun" and run.languages == ["English", "German"]
    assert run.load_model("German").export_config["contract"]["train_lang"] == "German"
    assert json.loads((out / "results.json").read_text())["mean_eer"] == pytest.approx(res["mean_eer"])
    run_cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert run_cfg["run"]["ground_truth"] == str(feats_root / "ground_truth" / "v3")
    assert run_cfg["data"]["cache_dir"] is None  # not set: <feats-root>/.modalink_cache
    assert (feats_root / ".modalink_cache").is_dir()
    # evaluate.py on the trained run gives the same EERs
    again = fame_evaluate.main(["--run-dir", str(out), "--output-dir", str(tmp_path / "re")])
    for a, b in zip(res["eer"], again["eer"]):
        assert a["eer"] == pytest.approx(b["eer"], abs=1e-6)
    # a second train call on the finished run resumes from its last checkpoint (no more epochs)
    res2 = _train(feats_root, out)
    assert res2["mean_eer"] == pytest.approx(res["mean_eer"], abs=1e-6)


@pytest.mark.parametrize("config", ["fop.yaml", "sbnet.yaml"])
def test_other_configs_run(feats_root: Path, tmp_path: Path, config: str) -> None:
    res = _train(feats_root, tmp_path / "run", "--train-lang", "German", config=config)
    assert [(r["train"], r["test"]) for r in res["eer"]] == [("German", "English"), ("German", "German")]


def test_official_checkpoint_scoring(feats_root: Path, tmp_path: Path) -> None:
    info = feats_root / "feats" / "v3" / "feature_info.json"
    info.write_text(json.dumps({"face_dim": 64, "voice_dim": 32}))
    try:
        torch.manual_seed(0)
        fop = create_model("fop", face_dim=64, voice_dim=32, embed_dim=16, num_classes=8).eval()
        ckpt = tmp_path / "checkpoint.pth.tar"
        torch.save({"epoch": 3, "state_dict": fop.state_dict()}, ckpt)
        res = fame_evaluate.main(["--official-checkpoint", str(ckpt), "--train-lang", "English", "--embed-dim", "16",
                                  "--feats-root", str(feats_root), "--ver", "v3", "--output-dir", str(tmp_path / "o")])
    finally:
        info.unlink()
    # the official scorer: L2 distance of the gated fusion's tanh(branch) outputs
    from modalink.face_voice import load_fame_test

    t = load_fame_test(feats_root, "v3", "English", "English", face_dim=64, voice_dim=32)
    with torch.no_grad():
        out = fop(torch.as_tensor(np.asarray(t.faces)), torch.as_tensor(np.asarray(t.voices)))
        expected = np.linalg.norm((out["face"] - out["voice"]).numpy(), axis=1)
    lines = (tmp_path / "o" / "submission" / "sub_score_English_heard.txt").read_text().split("\n")
    got = np.array([float(line.split()[1]) for line in lines if line])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert {r["condition"] for r in res["eer"]} == {"heard", "unheard"}


def test_unset_settings_are_none(tmp_path: Path) -> None:
    """Not-set data/run settings are None (null in config.yaml)."""
    from modalink.config import ConfigError, load_config
    from modalink.face_voice.config import FameConfig
    from modalink.face_voice.layout import feature_dims

    cfg = load_config(FameConfig)
    d, r = cfg.data, cfg.run
    assert (d.val_ids, d.face_dim, d.voice_dim, d.cache_dir, r.feats_root, r.ground_truth) == (None,) * 6
    # widths: data.face_dim / voice_dim, else feature_info.json, else the official 4096 / 512
    assert feature_dims(tmp_path, "v3", d.face_dim, d.voice_dim) == (4096, 512)
    (tmp_path / "feats" / "v3").mkdir(parents=True)
    (tmp_path / "feats" / "v3" / "feature_info.json").write_text('{"face_dim": 512, "voice_dim": 192}')
    assert feature_dims(tmp_path, "v3", d.face_dim, d.voice_dim) == (512, 192)
    assert feature_dims(tmp_path, "v3", 64) == (64, 192)
    with pytest.raises(ConfigError, match=r"data.val_ids: -1 is out of range; it must be >= 1"):
        load_config(FameConfig, None, ["data.val_ids=-1"])


def test_evaluate_rescores_a_normalised_run_as_it_submitted(feats_root: Path, tmp_path: Path) -> None:
    """A run that chose a score normalisation on validation is re-scored with it (its cohort from
    scoring.npz): evaluate.py writes the run's own submission files, byte for byte."""
    out = tmp_path / "run"
    res = _train(feats_root, out, "--train-lang", "German", "norm.method=snorm")
    assert res["norm"]["per_language"]["German"]["chosen"]["name"] == "snorm/identity_means"
    again = fame_evaluate.main(["--run-dir", str(out), "--output-dir", str(tmp_path / "re")])
    assert again["score_norm"] == {"German": "snorm/identity_means"}
    assert again["mean_eer"] == pytest.approx(res["mean_eer"], abs=1e-9)
    with np.load(out / "v3_German" / "scoring.npz") as z:  # the norm changed the scores: raw ones would differ
        raw = dict(zip(z["test_German_keys"], z["test_German_raw"]))
    heard = (out / "submission" / "sub_score_German_heard.txt").read_text()
    submitted = dict(line.split() for line in heard.splitlines())
    assert not np.allclose([float(submitted[k]) for k in raw], list(raw.values()), atol=1e-3)
    for name in ("sub_score_English_unheard.txt", "sub_score_German_heard.txt"):
        assert (tmp_path / "re" / "submission" / name).read_bytes() == (out / "submission" / name).read_bytes()
    # without its cohort the run cannot be re-scored as it submitted: said, not scored raw
    (out / "v3_German" / "scoring.npz").unlink()
    from modalink.errors import UserError

    with pytest.raises(UserError, match="scoring.npz not found"):
        fame_evaluate.main(["--run-dir", str(out), "--output-dir", str(tmp_path / "re2")])


def test_seed_ensemble_trains_scores_and_exports_as_one_model(feats_root: Path, tmp_path: Path) -> None:
    """model.members=2: two seeds per language (member 1 in <ver>_<Lang>/member_1, seed + 10), joined
    into ONE exported EmbeddingEnsemble that evaluate.py (and so verify.py and the hub) scores as the
    run submitted; its distances are the RMS of the members'. A finished run resumes to the same."""
    from modalink.face_voice.objective import pair_distances
    from modalink.runs import open_run

    out = tmp_path / "ens"
    res = _train(feats_root, out, "--train-lang", "German", "model.members=2")
    sel = res["selection"]["German"]
    assert [m["seed"] for m in sel["members"]] == [0, 10] and 0 <= sel["best_val_eer"] <= 100
    assert (out / "v3_German" / "member_1" / "best_model.pt").is_file()
    model = open_run(out).load_model("German")
    assert type(model).__name__ == "EmbeddingEnsemble" and len(model.members) == 2
    # a member alone is the single-model run of its seed
    single = _train(feats_root, tmp_path / "seed10", "--train-lang", "German", "engine.seed=10", "model.members=1")
    assert sel["members"][1]["best_val_eer"] == pytest.approx(single["selection"]["German"]["best_val_eer"])
    f, v = torch.randn(5, 64), torch.randn(5, 32)
    d = [pair_distances(m.eval(), f, v) for m in model.members]
    np.testing.assert_allclose(pair_distances(model, f, v), np.sqrt((d[0] ** 2 + d[1] ** 2) / 2), rtol=1e-5)
    again = fame_evaluate.main(["--run-dir", str(out), "--output-dir", str(tmp_path / "re")])
    assert again["mean_eer"] == pytest.approx(res["mean_eer"], abs=1e-9)
    for name in ("sub_score_English_unheard.txt", "sub_score_German_heard.txt"):
        assert (tmp_path / "re" / "submission" / name).read_bytes() == (out / "submission" / name).read_bytes()
    assert _train(feats_root, out, "--train-lang", "German", "model.members=2")["mean_eer"] == res["mean_eer"]
