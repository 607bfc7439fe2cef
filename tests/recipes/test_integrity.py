"""Run and submission integrity: nothing lost, no silent wrong result, one clear message.

Each test reproduces one case of the fault matrix on the FAME recipe or the library
piece behind it: re-runs with another config, a second job, another process count, typos in
``challenge write``, kills at random points, edited and damaged caches and checkpoints, invalid
settings, late errors, a full disk, a checkpoint that would run code.
"""
from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from challenge import validate_submission
from challenge.__main__ import main as challenge_main
from conftest import load_script
from modalink.config import ConfigError
from modalink.face_voice import generate_synthetic_fame
from modalink.engine.run_folder import RunFolder, RunFolderError

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "fame"
TINY = dict(n_train_ids=8, n_test_ids=4, rows_per_id=12, n_test_pairs=60, face_dim=64, voice_dim=32)
DIMS = ["data.face_dim=64", "data.voice_dim=32", "data.val_ids=2", "data.val_trials=200"]
FAST = ["engine.epochs=2", "engine.batch_size=32", "engine.progress=false", "engine.warmup_steps=0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


fame_train = load_script(RECIPE / "train.py")
fame_evaluate = load_script(RECIPE / "evaluate.py")


@pytest.fixture()
def feats_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    generate_synthetic_fame(root, ver="v3", seed=0, **TINY)
    return root


def _args(feats_root: Path, out: Path, *extra: str) -> list[str]:
    return ["--feats-root", str(feats_root), "--ver", "v3", "--output-dir", str(out), *DIMS, *FAST, *extra]


def _train(feats_root: Path, out: Path, *extra: str) -> dict:
    return fame_train.main(_args(feats_root, out, *extra))


def _snapshot(out: Path) -> dict[str, bytes]:
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "submission").iterdir())}
    files["results.json"] = (out / "results.json").read_bytes()
    return files


# -- 1. re-running into a finished run folder ----------------------------------------------------
def test_rerun_with_other_config_is_refused_before_anything_is_written(feats_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(feats_root, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for change in (["engine.lr=0.5"], ["model.dropout=0.9"], ["--config", str(RECIPE / "hparams" / "fop.yaml")]):
        with pytest.raises(RunFolderError, match="another config") as err:
            _train(feats_root, out, *change)
        assert "--overwrite" in str(err.value) and "--output-dir" in str(err.value)
        after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert after == before, f"{change} changed files of the refused run folder"
    assert "engine.lr: 0.001 -> 0.5" in _refusal(feats_root, out, "engine.lr=0.5")
    # the same command resumes the finished run: same submission, same results.json
    snap = _snapshot(out)
    _train(feats_root, out)
    assert _snapshot(out) == snap
    # the first run is still usable by evaluate.py
    res = fame_evaluate.main(["--run-dir", str(out), "--output-dir", str(tmp_path / "eval")])
    assert res["mean_eer"] == pytest.approx(json.loads(snap["results.json"])["mean_eer"])
    # --overwrite starts again with the new settings
    res = _train(feats_root, out, "engine.lr=0.01", "--overwrite")
    assert "lr: 0.01" in (out / "config.yaml").read_text()
    assert json.loads((out / "run.json").read_text())["config"]["engine"]["lr"] == 0.01


def _refusal(feats_root: Path, out: Path, *change: str) -> str:
    with pytest.raises(RunFolderError) as err:
        _train(feats_root, out, *change)
    return str(err.value)


def test_overwrite_refuses_to_empty_a_folder_that_is_not_a_run(feats_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(RunFolderError, match="holds thesis.tex but no run.json"):
        _train(feats_root, out)
    with pytest.raises(RunFolderError, match="refusing to delete"):
        _train(feats_root, out, "--overwrite")
    assert (out / "thesis.tex").read_text() == "precious"


def _cli(script, args: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of ``script.main`` run the way the command line runs it."""
    from modalink.errors import run_cli

    code = run_cli(script.main, args)
    return code, capsys.readouterr().err


def _error(err: str) -> str:
    """The one ``error:`` line of a command's stderr (progress notes may come before it)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _issue_command(feats_root: Path, out: Path, *extra: str) -> list[str]:
    """The command of the fault matrix, with the tiny data set's widths."""
    return ["--ver", "v3", "--train-lang", "English", "--feats-root", str(feats_root), "--output-dir", str(out),
            "engine.epochs=2", *DIMS, *FAST[1:], *extra]


def test_overwrite_keeps_a_users_folder_that_has_no_run_json(feats_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"  # only names a run also writes, but no run.json
    (out / "submission").mkdir(parents=True)
    (out / "model").mkdir()
    (out / "config.yaml").write_text("my: settings\n")
    (out / "log.txt").write_text("my notes\n")
    (out / "submission" / "scores.txt").write_text("k 0.5\n")
    (out / "model" / "weights_from_colleague.bin").write_bytes(b"\x00weights")
    before = _tree(out)
    code, err = _cli(fame_train, _issue_command(feats_root, out, "--overwrite"), capsys)
    err = _error(err)
    assert code == 2 and err.startswith("error: --overwrite"), err
    assert "no run.json" in err and "config.yaml" in err and "model" in err and "submission" in err
    assert _tree(out) == before and sorted(p.name for p in out.iterdir()) == sorted(
        ["config.yaml", "log.txt", "model", "submission"])


def test_overwrite_keeps_earlier_run_folders_inside_the_output_dir(feats_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "experiments"
    for name in ("exp_a", "exp_b"):
        (out / name / "checkpoints" / "step_4").mkdir(parents=True)
        (out / name / "checkpoints" / "step_4" / "model.safetensors").write_bytes(b"w" * 10)
        (out / name / "best_model.pt").write_bytes(b"best")
    before = _tree(out)
    code, err = _cli(fame_train, _issue_command(feats_root, out, "--overwrite"), capsys)
    err = _error(err)
    assert code == 2 and "exp_a, exp_b" in err and "refusing to delete" in err, err
    assert _tree(out) == before


def test_overwrite_refuses_a_run_of_another_recipe_and_foreign_files(tmp_path: Path) -> None:
    folder = RunFolder.open(tmp_path / "r", {"engine": {"lr": 0.1}}, recipe="srmm", entries=("srmm",))
    folder.bind_data({})
    folder.start()
    (tmp_path / "r" / "srmm").mkdir()
    folder.close()
    with pytest.raises(RunFolderError, match="holds a run of the srmm recipe, not of fame; refusing"):
        RunFolder.open(tmp_path / "r", {"engine": {"lr": 0.2}}, mode="overwrite", recipe="fame")
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="also holds notes.txt"):
        RunFolder.open(tmp_path / "r", {"engine": {"lr": 0.2}}, mode="overwrite", recipe="srmm")
    assert (tmp_path / "r" / "srmm").is_dir() and (tmp_path / "r" / "run.json").is_file()
    (tmp_path / "r" / "notes.txt").unlink()
    # a run of this recipe: what it wrote (its recorded entries included) is emptied
    RunFolder.open(tmp_path / "r", {"engine": {"lr": 0.2}}, mode="overwrite", recipe="srmm").close()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [".lock"]


def test_monitor_is_checked_when_the_config_is_loaded(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code, err = _cli(fame_train, ["--feats-root", str(tmp_path / "no_data"), "--output-dir", str(out),
                                  "engine.monitor=acc"], capsys)
    err = _error(err)
    assert code == 2 and "engine.monitor: 'acc'" in err and "valid monitors: eer" in err
    assert not out.exists()
    with pytest.raises(ConfigError, match="monitor_mode"):
        fame_train.main(["--output-dir", str(out), "engine.monitor_mode=max"])


@pytest.mark.parametrize("bad, made", [("engine.batch_size=4096", True), ("data.val_ids=8", False)])
def test_a_run_that_fails_before_training_leaves_no_contract(bad: str, made: bool, feats_root: Path,
                                                             tmp_path: Path, capsys) -> None:
    """Too small a data set for the batch, a validation split that leaves no training identity: the
    corrected command then runs in the same folder without --overwrite."""
    out = tmp_path / "run"
    if made:  # a folder the user made for the run stays; one the run made goes
        out.mkdir()
    code, err = _cli(fame_train, _issue_command(feats_root, out, bad), capsys)
    assert code == 2 and _error(err)
    assert not (out / "run.json").exists()
    assert (sorted(p.name for p in out.iterdir() if p.name not in (".lock", "synthetic_data")) == []) if made \
        else not out.exists()
    res = _train(feats_root, out, "--train-lang", "English")
    assert res["eer"] and json.loads((out / "run.json").read_text())["status"] == "finished"


def test_a_failed_start_keeps_reusable_caches_and_a_run_with_training_keeps_its_contract(tmp_path: Path) -> None:
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="before training"):
        with RunFolder.open(out, {"lr": 1}, recipe="srmm", entries=("cache", "srmm"), reusable=("cache",)) as folder:
            (out / "cache").mkdir()
            (out / "cache" / "train_image.npy").write_bytes(b"embeddings")
            folder.bind_data({})
            folder.start()
            (out / "config.yaml").write_text("lr: 1\n")
            (out / "srmm").mkdir()
            raise RuntimeError("failed before training")
    assert sorted(p.name for p in out.iterdir()) == ["cache"]
    with pytest.raises(RuntimeError, match="after an epoch"):
        with RunFolder.open(out, {"lr": 2}, recipe="srmm", entries=("cache", "srmm"), reusable=("cache",)) as folder:
            folder.bind_data({})
            folder.start()
            (out / "srmm").mkdir()
            (out / "srmm" / "metrics.jsonl").write_text('{"epoch": 1}\n')
            raise RuntimeError("failed after an epoch")
    assert json.loads((out / "run.json").read_text())["config"] == {"lr": 2}  # resumable: the contract stays
    assert (out / "srmm" / "metrics.jsonl").is_file() and (out / "cache" / "train_image.npy").is_file()


def test_a_run_killed_before_training_gives_way_to_other_settings(tmp_path: Path) -> None:
    """A run stopped (SIGKILL) after it wrote run.json but before any epoch holds nothing to resume:
    the same folder takes a run of other settings; files the run did not write are never touched."""
    out = tmp_path / "r"
    folder = RunFolder.open(out, {"lr": 1}, recipe="srmm", entries=("srmm",))
    folder.bind_data({})
    folder.start()
    (out / "srmm").mkdir()
    os.close(folder._lock_fd)  # the process dies: the OS releases its lock, no clean-up runs
    with RunFolder.open(out, {"lr": 2}, recipe="srmm", entries=("srmm",)) as again:
        assert again.contract["config"] == {"lr": 2} and not again.resumed and not (out / "srmm").exists()
        again.bind_data({})
        again.start()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="notes.txt"):
        RunFolder.open(out, {"lr": 3}, recipe="srmm", entries=("srmm",))
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(RunFolderError, match="holds a run of the srmm recipe"):
        RunFolder.open(out, {"lr": 3}, recipe="chameleon")


def test_resume_flag_needs_a_run(feats_root: Path, tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="no run to resume"):
        _train(feats_root, tmp_path / "none", "--resume")
    assert not (tmp_path / "none").exists()


def test_rescoring_a_run_that_a_job_holds_is_refused(feats_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(feats_root, out, "--train-lang", "English")
    before = (out / "results.json").read_bytes()
    holder = RunFolder.open(out, json.loads((out / "run.json").read_text())["config"])  # a second train job
    try:
        with pytest.raises(RunFolderError, match="in use by another job"):
            fame_evaluate.main(["--run-dir", str(out)])
    finally:
        holder.close()
    assert (out / "results.json").read_bytes() == before
    res = fame_evaluate.main(["--run-dir", str(out)])  # free again: re-scores to the same EERs
    assert res["mean_eer"] == pytest.approx(json.loads(before)["mean_eer"])


# -- 2b. an exported model knows what it was trained for ---------------------------------------
def test_model_record_is_checked_against_its_use() -> None:
    from modalink.errors import is_user_error
    from modalink.face_voice.contract import ModelMismatchError, check_trained_for, trained_for

    enc = {"name": "facenet", "weights": "/w/vggface2.pt", "args": {}, "random_weights": False, "seed": 0}
    info = {"face_encoder": enc, "voice_encoder": {**enc, "name": "ecapa", "weights": "/w/ecapa"}}
    record = trained_for("v1", "Urdu", 512, 192, info)
    check_trained_for(record, where="m", ver="v1", train_lang="Urdu", face_dim=512, voice_dim=192, feature_info=info)
    check_trained_for({"face_dim": 512}, where="m", ver="v3", train_lang="German")  # what the contract does not record: unchecked
    for kwargs, match in [(dict(train_lang="English"), "trained on Urdu \\(v1\\), but it is used as the English"),
                          (dict(ver="v2"), "used as the Urdu \\(v2\\) model"),
                          (dict(face_dim=4096), "512-D face features, these are 4096-D"),
                          (dict(feature_info=None), "prepare.py features of face facenet \\(vggface2.pt\\)"),
                          (dict(feature_info={**info, "voice_encoder": {**enc, "name": "wavlm"}}), "voice wavlm")]:
        with pytest.raises(ModelMismatchError, match=match) as err:
            check_trained_for(record, where="m", **kwargs)
        assert is_user_error(err.value)


# -- 3. process count changes --------------------------------------------------------------------
def test_process_count_change_is_refused(tmp_path: Path) -> None:
    cfg = {"engine": {"lr": 0.1}}
    folder = RunFolder.open(tmp_path / "r", cfg, processes=1)
    folder.bind_data({})
    folder.start()
    (tmp_path / "r" / "metrics.jsonl").write_text('{"epoch": 1}\n')  # trained: there is something to resume
    folder.close()
    with pytest.raises(RunFolderError, match="started with 1 process"):
        RunFolder.open(tmp_path / "r", cfg, processes=2)
    RunFolder.open(tmp_path / "r", cfg, processes=1).close()


def test_a_folder_of_another_recipe_is_refused_as_such(tmp_path: Path) -> None:
    folder = RunFolder.open(tmp_path / "r", {"engine": {"lr": 0.1}}, recipe="srmm")
    folder.bind_data({})
    folder.start()
    folder.close()
    with pytest.raises(RunFolderError, match="holds a run of the srmm recipe, not chameleon"):
        RunFolder.open(tmp_path / "r", {"engine": {"lr": 0.1}, "chameleon": {}}, recipe="chameleon")


def test_changed_data_is_refused(feats_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(feats_root, out)
    pairs = feats_root / "face_voice_association_splits" / "v3" / "German_test.txt"
    gt = feats_root / "ground_truth" / "v3" / "German_test.txt"
    # swap two keys in both lists: same size, same keys, different content
    for p in (pairs, gt):
        lines = p.read_text().splitlines()
        lines[0], lines[1] = lines[1], lines[0]
        p.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFolderError, match="data changed"):
        _train(feats_root, out)


# -- 4. challenge write --------------------------------------------------------------------------
def _write_setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    keys = [f"k{i:03d}" for i in range(30)]
    (pairs / "English_test.txt").write_text("".join(f"{k} voices/English/{i}.wav faces/English/{i}.jpg\n"
                                                    for i, k in enumerate(keys)))
    (pairs / "Urdu_test.txt").write_text("u001 voices/Urdu/1.wav faces/Urdu/1.jpg\n")
    scores = tmp_path / "s.npy"
    np.save(scores, np.linspace(0.1, 1.9, 30))
    return pairs, scores, tmp_path / "submission"


def test_challenge_write_refuses_unknown_language_and_foreign_files(tmp_path: Path, capsys) -> None:
    pairs, scores, sub = _write_setup(tmp_path)
    lst = str(pairs / "English_test.txt")
    assert challenge_main(["write", str(scores), "--pair-list", lst, "-o", f"{sub}/", "--train-lang", "German"]) == 0
    written = (sub / "sub_score_English_unheard.txt").read_bytes()
    # a typo: refused, nothing written
    assert challenge_main(["write", str(scores), "--pair-list", lst, "-o", f"{sub}/", "--train-lang", "Englsh"]) == 2
    err = capsys.readouterr().err
    assert "Englsh" in err and "did you mean 'English'" in err
    # the same file from another model (Urdu is unheard for English as well): refused without --force
    np.save(scores, np.linspace(1.9, 0.1, 30))
    assert challenge_main(["write", str(scores), "--pair-list", lst, "-o", f"{sub}/", "--train-lang", "Urdu"]) == 2
    assert "written for the model trained on German" in capsys.readouterr().err
    assert (sub / "sub_score_English_unheard.txt").read_bytes() == written
    assert challenge_main(["write", str(scores), "--pair-list", lst, "-o", f"{sub}/", "--train-lang", "Urdu",
                           "--force"]) == 0
    manifest = json.loads((sub / "manifest.json").read_text())
    assert manifest["files"]["sub_score_English_unheard.txt"]["train_lang"] == "Urdu"
    # a file edited after it was written is caught by validate
    (sub / "sub_score_English_unheard.txt").write_text((sub / "sub_score_English_unheard.txt").read_text()
                                                       .replace("k000 ", "k000 1"))
    report = validate_submission(sub, pairs, langs=["English", "Urdu"], partial=True)
    assert any(i.code == "manifest" and "changed" in i.message for i in report.errors)


def test_corrupt_zip_is_unusable_input_not_invalid_submission(tmp_path: Path, capsys) -> None:
    pairs, _, _ = _write_setup(tmp_path)
    bad = tmp_path / "sub.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    assert challenge_main(["validate", str(bad), "--pairs", str(pairs), "--langs", "English", "German"]) == 2
    assert "zip" in capsys.readouterr().err


def test_validate_warns_on_constant_and_similarity_like_scores(tmp_path: Path) -> None:
    from challenge.validate import distribution_warnings

    assert [c for c, _ in distribution_warnings([0.7] * 50)] == ["constant"]
    rng = np.random.default_rng(0)
    assert [c for c, _ in distribution_warnings(rng.uniform(0.2, 0.8, 100))] == ["direction"]
    assert distribution_warnings(rng.uniform(0.6, 1.6, 100)) == []  # L2 distances of unit vectors


# -- 6. the feature cache is content-checked -----------------------------------------------------
def test_cache_serves_no_stale_or_altered_arrays(feats_root: Path) -> None:
    import warnings

    from modalink.face_voice import FameFeatures

    csv = feats_root / "feats" / "v3" / "English_feats" / "English_faces_train.csv"
    first = FameFeatures.load(feats_root, "v3", "English", face_dim=64, voice_dim=32, load_test=False)
    # edit in place keeping size and mtime (rsync -t, cp -p)
    st = csv.stat()
    text = csv.read_text()
    first_cell = text.split(",", 1)[0]
    edited = ("9" * len(first_cell.lstrip("-"))).rjust(len(first_cell), "-")[-len(first_cell):]
    csv.write_text(edited + text[len(first_cell):])
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = FameFeatures.load(feats_root, "v3", "English", face_dim=64, voice_dim=32, load_test=False)
    assert second.train.faces[0, 0] == pytest.approx(float(edited)) != first.train.faces[0, 0]
    # an altered cached array (here: a NaN written into the .npy) is rebuilt with a warning
    npy = next((feats_root / ".modalink_cache").glob("*English_faces_train.npy"))
    arr = np.load(npy)
    arr[3, 3] = np.nan
    np.save(npy, arr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        third = FameFeatures.load(feats_root, "v3", "English", face_dim=64, voice_dim=32, load_test=False)
    assert np.isfinite(third.train.faces).all()
    assert any("damaged" in str(w.message) for w in caught)


# -- 7. damaged checkpoints ----------------------------------------------------------------------
def test_damaged_latest_checkpoint_falls_back_to_previous(feats_root: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "run"
    args = ("engine.checkpoint_every_steps=2", "engine.keep_checkpoints=3", "--train-lang", "English")
    ref = _train(feats_root, out, *args)
    ckpts = sorted((out / "v3_English" / "checkpoints").glob("step_*"), key=lambda p: int(p.name[5:]))
    latest = ckpts[-1] / "model.safetensors"
    latest.write_bytes(latest.read_bytes()[:100])  # truncated
    res = _train(feats_root, out, *args)
    assert (out / "v3_English" / "checkpoints" / f"damaged_{ckpts[-1].name}").is_dir()
    assert res["mean_eer"] == pytest.approx(ref["mean_eer"])
    metrics = (out / "v3_English" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in metrics] == [1, 2]  # only the resumed history
    # best_model.pt damaged: restored from the copy the newest checkpoint keeps, same results
    best = out / "v3_English" / "best_model.pt"
    intact = best.read_bytes()
    best.write_bytes(intact[:50])
    res = _train(feats_root, out, *args)
    assert best.read_bytes() == intact and res["mean_eer"] == pytest.approx(ref["mean_eer"])
    assert "restored best_model.pt" in (out / "log.txt").read_text() + (out / "v3_English" / "log.txt").read_text()


# -- 8. invalid settings are refused before any data is read -----------------------------------
@pytest.mark.parametrize("bad, key", [("engine.epochs=0", "epochs"), ("engine.epochs=-2", "epochs"),
                                      ("engine.grad_accum=0", "grad_accum"), ("engine.optimizer=adm", "optimizer"),
                                      ("engine.scheduler=cos", "scheduler"), ("model.dropout=1.0", "dropout"),
                                      ("model.name=fop2", "model.name"),
                                      ("model.name=single_branch", "sbnet_stems"), ("model.init=he", "model.init"),
                                      ("model.norm=group", "model.norm"), ("loss.opl_on=all", "loss.opl_on"),
                                      ("loss.infonce=-1", "loss.infonce"), ("data.val_fraction=1", "val_fraction"),
                                      ("data.val_trials=1", "val_trials"), ("model.members=0", "model.members")])
def test_invalid_settings_fail_before_data(bad: str, key: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=key):
        fame_train.main(["--feats-root", str(tmp_path / "does_not_exist"), "--output-dir", str(out), bad])
    assert not out.exists()


def test_unknown_edition_fails_before_training(feats_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="edition"):
        _train(feats_root, tmp_path / "run", "--edition", "2025")
    assert not (tmp_path / "run").exists()


# -- 9. late errors come early, with a path ------------------------------------------------------
def test_ground_truth_mismatch_is_found_before_training(feats_root: Path, tmp_path: Path) -> None:
    gt = feats_root / "ground_truth" / "v3" / "German_test.txt"
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join(["ffa4792c36 1", *lines[1:]]) + "\n")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="German_test.txt.*does not match the pair list"):
        _train(feats_root, out)
    assert not (out / "run.json").exists() and not (out / "submission").exists()


def test_bad_feature_info_and_gzip_csv_name_the_file(feats_root: Path, tmp_path: Path) -> None:
    import gzip

    info = feats_root / "feats" / "v3" / "feature_info.json"
    info.write_text("{not json")
    with pytest.raises(ValueError, match="feature_info.json"):
        fame_train.main(["--feats-root", str(feats_root), "--output-dir", str(tmp_path / "a"), *FAST])
    info.unlink()
    csv = feats_root / "feats" / "v3" / "English_feats" / "English_voices_train.csv"
    csv.write_bytes(gzip.compress(csv.read_bytes()))
    with pytest.raises(ValueError, match="English_voices_train.csv.*gzip-compressed"):
        _train(feats_root, tmp_path / "b")


# -- 10. a full disk -----------------------------------------------------------------------------
def test_disk_full_is_named(tmp_path: Path, monkeypatch) -> None:
    from modalink.io import DiskFullError, atomic_torch_save, atomic_write_text

    def full_save(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 123 vs 100")

    monkeypatch.setattr(torch, "save", full_save)
    with pytest.raises(DiskFullError, match="no space left.*best_model.pt"):
        atomic_torch_save({"a": torch.zeros(2)}, tmp_path / "best_model.pt")
    assert list(tmp_path.iterdir()) == []  # no temp file left

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(DiskFullError, match="results.json"):
        atomic_write_text(tmp_path / "results.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_in_evaluate_names_the_path(feats_root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from modalink.io import DiskFullError, atomic_dir

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "run"
    _train(feats_root, out, "--train-lang", "English")
    before = _tree(out / "submission")
    monkeypatch.setattr(os, "fsync", enospc)
    code, err = _cli(fame_evaluate, ["--run-dir", str(out)], capsys)
    err = _error(err)
    assert code == 2 and f"no space left on the device while writing {out / 'submission'}" in err, err
    assert _tree(out / "submission") == before and not list(out.glob(".submission*"))
    with pytest.raises(DiskFullError, match="while writing .*folder.*f.txt"):  # the file, under its final name
        with atomic_dir(tmp_path / "folder") as stage:
            with open(stage / "f.txt", "w") as fh:
                raise OSError(errno.ENOSPC, "No space left on device", str(stage / "f.txt"))


def test_outputs_are_readable_as_the_umask_allows(tmp_path: Path) -> None:
    from modalink.io import atomic_dir, atomic_torch_save, atomic_write_text

    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(atomic_write_text(tmp_path / "x.txt", "hi").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(atomic_torch_save({}, tmp_path / "m.pt").stat().st_mode) == 0o666 & ~mask
    with atomic_dir(tmp_path / "sub") as d:
        (d / "f").write_text("x")
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o777 & ~mask


# -- 12. a checkpoint that would run code is refused ---------------------------------------------
class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_best_model_is_refused(feats_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(feats_root, out, "--train-lang", "English")
    # evaluate.py reads the exported safetensors model, never a pickle; a best_model.pt swapped for
    # a malicious one is refused when a resumed run reloads it
    best = out / "v3_English" / "best_model.pt"
    state = torch.load(best, weights_only=True)
    marker = tmp_path / "pwned"
    state["hook"] = _Evil(str(marker))
    torch.save(state, best)
    from modalink.io import UnsafeFileError, load_torch_weights

    with pytest.raises(UnsafeFileError, match="refused to load"):
        load_torch_weights(best, "best model")
    assert not marker.exists()
    assert (out / "v3_English" / "model" / "model.safetensors").is_file()
