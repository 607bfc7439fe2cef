"""Score normalisation (S-norm / AS-norm), fusion of systems and seed ensembles."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from challenge import validate_submission, write_submission
from challenge.__main__ import main as challenge_main
from challenge.combine import CombineError, fuse_runs, normalise_run
from modalink.errors import InputError
from modalink.metrics import fast_eer
from modalink.score_fusion import fit_linear_fusion, mean_fusion
from modalink.score_norm import (NormConfig, NormSpec, choose_on_validation, cohort_distance_stats,
                                 identity_means, normalise_trials, s_norm)


def _naive_snorm(d, faces, voices, face_cohort, voice_cohort, top_k=None):
    """The definition, one trial at a time."""
    out = []
    for t in range(len(d)):
        df = sorted(float(np.linalg.norm(faces[t] - c)) for c in voice_cohort)
        dv = sorted(float(np.linalg.norm(voices[t] - c)) for c in face_cohort)
        if top_k is not None:
            df, dv = df[:top_k], dv[:top_k]
        mf, sf = np.mean(df), np.std(df)
        mv, sv = np.mean(dv), np.std(dv)
        out.append(((d[t] - mf) / sf + (d[t] - mv) / sv) / 2)
    return np.array(out)


@pytest.mark.parametrize("top_k", [None, 3, 7, 100])
def test_snorm_and_asnorm_match_the_naive_loop(top_k) -> None:
    rng = np.random.default_rng(0)
    faces, voices = rng.normal(size=(37, 6)), rng.normal(size=(37, 6))
    fc, vc = rng.normal(size=(11, 6)), rng.normal(size=(13, 6))
    d = np.linalg.norm(faces - voices, axis=1)
    want = _naive_snorm(d, faces, voices, fc, vc, top_k)
    got = s_norm(d, faces, voices, fc, vc, top_k=top_k, block_size=5)  # several blocks
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_snorm_with_trial_indices_reuses_rows() -> None:
    rng = np.random.default_rng(1)
    faces, voices = rng.normal(size=(5, 4)), rng.normal(size=(6, 4))
    fc, vc = rng.normal(size=(9, 4)), rng.normal(size=(9, 4))
    fi, vi = rng.integers(0, 5, 40), rng.integers(0, 6, 40)
    d = np.linalg.norm(faces[fi] - voices[vi], axis=1)
    want = _naive_snorm(d, faces[fi], voices[vi], fc, vc, 4)
    np.testing.assert_allclose(s_norm(d, faces, voices, fc, vc, top_k=4, face_idx=fi, voice_idx=vi), want,
                               rtol=1e-4, atol=1e-4)


def test_cohort_helpers_and_refusals() -> None:
    e = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    means, ids = identity_means(e, np.array([7, 7, 3]))
    assert list(ids) == [3, 7] and np.allclose(means, [[0, 4], [1, 0]])
    mu, sd = cohort_distance_stats(np.zeros((1, 2)), e)
    assert mu.item() == pytest.approx(2.0) and sd.item() == pytest.approx(np.std([0, 2, 4]))
    with pytest.raises(InputError):
        cohort_distance_stats(np.zeros((1, 2)), e[:1])
    with pytest.raises(InputError):
        NormSpec("asnorm", "all", None)
    with pytest.raises(InputError):
        NormSpec("znorm")
    assert [s.name for s in NormConfig("auto", "all", [5]).candidates()] == ["none", "snorm/all", "asnorm/all/k=5"]


def test_normalisation_helps_when_some_faces_are_hubs_and_is_chosen_on_validation() -> None:
    """Faces whose embeddings sit far from every voice (a per-row offset) make raw distances
    unreliable; S-norm removes that offset. The choice is made on the validation trials."""
    rng = np.random.default_rng(2)
    n_ids, dim = 30, 8
    centres = rng.normal(size=(n_ids, dim))

    def rows(ids):
        f = centres[ids] + 0.6 * rng.normal(size=(len(ids), dim))
        v = centres[ids] + 0.6 * rng.normal(size=(len(ids), dim))
        f += rng.choice([0.0, 3.0], size=(len(ids), 1)) * rng.normal(size=(len(ids), dim))  # hubs / outliers
        return f, v

    train_ids = np.repeat(np.arange(20), 10)
    cf, cv = rows(train_ids)
    val_ids = rng.integers(20, 30, 400)
    vf, vv = rows(val_ids)
    perm = rng.permutation(400)
    same = np.r_[np.ones(200), np.zeros(200)].astype(int)
    vi = np.where(same == 1, np.arange(400), perm)
    same = (val_ids == val_ids[vi]).astype(int)
    d = np.linalg.norm(vf - vv[vi], axis=1)
    spec, table = choose_on_validation(NormConfig("auto", "auto", [5, 50]).candidates(), same, d, vf, vv,
                                       cf, cv, train_ids, voice_idx=vi)
    eers = {r["name"]: r["val_eer"] for r in table}
    assert spec.method != "none" and eers[spec.name] < eers["none"] - 2
    assert normalise_trials(NormSpec("none"), d, vf, vv, cf, cv, train_ids) is not None


def test_logistic_fusion_gives_a_pure_noise_system_no_weight() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 4000)
    good = np.where(y == 1, 0.5, 1.5) + 0.5 * rng.normal(size=4000)  # a distance: lower = same
    noise = 10 * rng.normal(size=4000)
    fusion = fit_linear_fusion(np.stack([good, noise], 1), y)
    w_good, w_noise = fusion.weights
    assert w_good < 0  # a larger distance lowers the same-person log-odds
    assert abs(w_noise) * noise.std() < 0.02 * abs(w_good) * good.std()
    # the learned weight's log-odds scale: 2 * 0.5-separated Gaussians of sd 0.5 -> |w| = 4
    assert abs(w_good) == pytest.approx(4.0, rel=0.15)
    assert fast_eer(y, fusion.apply(np.stack([good, noise], 1))) == pytest.approx(fast_eer(y, good), abs=0.5)
    # mean fusion of two informative systems beats each
    other = np.where(y == 1, 0.5, 1.5) + 0.5 * rng.normal(size=4000)
    assert fast_eer(y, mean_fusion([good, other])) < min(fast_eer(y, good), fast_eer(y, other)) - 2


# --- run folders for challenge norm / fuse -----------------------------------------------------
LANGS = ("English", "German")


def _pairs(root: Path, n: int = 30, prefix: str = "") -> Path:
    d = root / "pairs" / "v3"
    d.mkdir(parents=True, exist_ok=True)
    for lang in LANGS:
        lines = [f"{prefix}{lang[:2]}{i:04d} voices/{lang}/{i:05d}.wav faces/{lang}/{i:05d}.jpg" for i in range(n)]
        (d / f"{lang}_test.txt").write_text("\n".join(lines) + "\n")
    return d


def _fake_run(root: Path, pairs: Path, rng: np.random.Generator, *, noise: bool = False, val_y=None) -> Path:
    """A folder shaped like a train.py run: submission/ (raw distances) + v3_<Lang>/scoring.npz."""
    dim = 4
    entries = {}
    y = val_y if val_y is not None else rng.integers(0, 2, 300)
    for train in LANGS:
        cohort_label = np.repeat(np.arange(6), 5)
        centres = rng.normal(size=(6, dim))
        arrays = {"cohort_face": centres[cohort_label] + 0.3 * rng.normal(size=(30, dim)),
                  "cohort_voice": centres[cohort_label] + 0.3 * rng.normal(size=(30, dim)),
                  "cohort_label": cohort_label, "val_label": y.astype(np.int8)}
        vf = rng.normal(size=(len(y), dim))
        vv = np.where(y[:, None] == 1, vf, rng.normal(size=(len(y), dim))) + 0.5 * rng.normal(size=(len(y), dim))
        arrays.update(val_face=vf.astype(np.float32), val_voice=vv.astype(np.float32),
                      val_trial_face=np.arange(len(y)), val_trial_voice=np.arange(len(y)))
        raw = np.linalg.norm(arrays["val_face"] - arrays["val_voice"], axis=1)
        arrays["val_raw"] = raw
        arrays["val_score"] = rng.normal(size=len(y)) if noise else raw
        for test in LANGS:
            keys = [line.split()[0] for line in (pairs / f"{test}_test.txt").read_text().splitlines()]
            f = rng.normal(size=(len(keys), dim)).astype(np.float32)
            v = (f + rng.normal(size=f.shape)).astype(np.float32)
            d = np.linalg.norm(f.astype(np.float64) - v, axis=1)
            arrays.update({f"test_{test}_keys": np.array(keys), f"test_{test}_face": f, f"test_{test}_voice": v,
                           f"test_{test}_raw": d, f"test_{test}_score": d})
            entries[(train, test)] = (keys, rng.normal(size=len(keys)) + 5 if noise else d)
        (root / f"v3_{train}").mkdir(parents=True)
        np.savez(root / f"v3_{train}" / "scoring.npz", **arrays)
    write_submission(root / "submission", entries, pairs_dir=pairs, info={"model": "fake", "config_fingerprint": "x"})
    return root


def test_challenge_norm_writes_a_valid_normalised_submission(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(4)
    pairs = _pairs(tmp_path)
    run = _fake_run(tmp_path / "run", pairs, rng)
    assert challenge_main(["norm", str(run), "-o", str(tmp_path / "normed"), "--method", "asnorm", "--top-k", "4",
                           "--pairs", str(pairs)]) == 0
    assert "validation EER" in capsys.readouterr().out
    sub = tmp_path / "normed" / "submission"
    assert validate_submission(sub, pairs, ver="v3").ok
    z = np.load(run / "v3_German" / "scoring.npz")
    fc, _ = identity_means(z["cohort_face"], z["cohort_label"])
    vc, _ = identity_means(z["cohort_voice"], z["cohort_label"])
    want = s_norm(z["test_English_raw"], z["test_English_face"], z["test_English_voice"], fc, vc, top_k=4)
    got = [float(line.split()[1]) for line in (sub / "sub_score_English_unheard.txt").read_text().splitlines()]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    manifest = json.loads((sub / "manifest.json").read_text())
    assert manifest["combined"]["inputs"] == [str(run.resolve())]
    # normalising the normalised output again is refused (it has no cohort); so is a fused output
    assert challenge_main(["norm", str(tmp_path / "normed"), "-o", str(tmp_path / "again")]) == 2
    # an output folder that holds other files is refused
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    assert challenge_main(["norm", str(run), "-o", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "x"


def test_challenge_norm_refuses_a_submission_that_is_not_the_runs_raw_distances(tmp_path: Path) -> None:
    pairs = _pairs(tmp_path)
    run = _fake_run(tmp_path / "run", pairs, np.random.default_rng(5), noise=True)
    with pytest.raises(CombineError, match="not the raw distances"):
        normalise_run(run, NormSpec("snorm"))


def test_challenge_fuse_learns_no_weight_for_a_noise_system_and_refuses_other_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    pairs = _pairs(tmp_path)
    y = rng.integers(0, 2, 2000)
    good = _fake_run(tmp_path / "good", pairs, rng, val_y=y)
    noise = _fake_run(tmp_path / "noise", pairs, rng, val_y=y, noise=True)
    assert challenge_main(["fuse", str(good), str(noise), "-o", str(tmp_path / "fused"), "--method", "logreg",
                           "--pairs", str(pairs)]) == 0
    sub = tmp_path / "fused" / "submission"
    assert validate_submission(sub, pairs, ver="v3").ok
    manifest = json.loads((sub / "manifest.json").read_text())
    assert manifest["combined"]["inputs"] == [str(good.resolve()), str(noise.resolve())]
    record = json.loads((tmp_path / "fused" / "combine.json").read_text())
    for lang in LANGS:
        w_good, w_noise = record["weights"][lang]["weights"]
        assert abs(w_noise) < 0.05 * abs(w_good)
    # mean fusion works on bare submission folders too (no validation scores needed)
    assert fuse_runs([good / "submission", noise / "submission"], "mean")["entries"]
    # logreg needs the runs' validation scores
    with pytest.raises(CombineError, match="scoring.npz"):
        fuse_runs([good / "submission", noise / "submission"], "logreg")
    # other pair keys: refused
    other_pairs = _pairs(tmp_path / "o", prefix="x")
    other = _fake_run(tmp_path / "other", other_pairs, rng, val_y=y)
    with pytest.raises(CombineError, match="other pair keys"):
        fuse_runs([good, other], "mean")
    assert challenge_main(["fuse", str(good), str(other), "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_challenge_fuse_refuses_another_version(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    pairs = _pairs(tmp_path)
    good = _fake_run(tmp_path / "good", pairs, rng)
    v1 = tmp_path / "v1run" / "submission"
    keys = [line.split()[0] for line in (pairs / "English_test.txt").read_text().splitlines()]
    write_submission(v1, {("English", "English"): (keys, rng.random(len(keys))),
                          ("Urdu", "English"): (keys, rng.random(len(keys)))})
    with pytest.raises(CombineError, match="one FAME version"):
        fuse_runs([good, v1.parent], "mean")


def test_score_norm_benchmark_smoke(capsys) -> None:
    from conftest import load_script

    bench = load_script("scripts/bench_score_norm.py")
    bench.main(["--trials", "2000", "--cohort", "50", "--repeats", "1", "--check"])
    assert "trials/s" in capsys.readouterr().out
