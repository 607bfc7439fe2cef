"""recipes/fame/prepare.py under ``accelerate launch`` with 2 CPU processes: the same CSVs as one
process, one log, the --output lock held by the main process only, resume after a kill; and the
label map of a test side prepared on its own."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np

from conftest import launch_2proc, lock_held_elsewhere  # noqa: E402
from test_fame_prepare import FACE_ARGS, VOICE_ARGS, make_raw, prepare_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "recipes" / "fame" / "prepare.py"
OUTPUTS = ("feats", "preExtracted_vggFace_utteranceLevel_Features", "face_voice_association_splits")


def _argv(raw: Path, out: Path) -> list[str]:
    return ["--raw-root", str(raw), "--ver", "v1", "--output", str(out), "--run-dir", str(out / "run"),
            "--random-weights", "--device", "cpu", "--workers", "0", "--batch-size", "3", "--offline",
            *FACE_ARGS, *VOICE_ARGS]


def _launch(tmp: Path, argv: list[str], **env: str) -> subprocess.CompletedProcess:
    cmd = [*launch_2proc(tmp), str(SCRIPT), *argv]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=900)


def _outputs(out: Path) -> dict[str, Path]:
    return {p.relative_to(out).as_posix(): p for d in OUTPUTS for p in sorted((out / d).rglob("*")) if p.is_file()}


def _assert_same_outputs(one: Path, two: Path) -> None:
    a, b = _outputs(one), _outputs(two)
    assert sorted(a) == sorted(b) and any(k.endswith("_train.csv") for k in a)
    for name in a:
        if name.endswith(".csv"):
            x = np.loadtxt(a[name], delimiter=",", ndmin=2)
            y = np.loadtxt(b[name], delimiter=",", ndmin=2)
            assert x.shape == y.shape, name
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            assert a[name].read_bytes() == b[name].read_bytes(), name


def _log_messages(text: str) -> list[str]:
    """The log lines of a run (stderr or log.txt) without their time stamps."""
    found = (re.search(r" (INFO|WARNING) (.*)", line) for line in text.splitlines())
    return [m.group(0) for m in found if m]


def test_two_processes_write_what_one_writes_with_one_log_and_resume_after_a_kill(tmp_path):
    raw = tmp_path / "raw"
    make_raw(raw)
    one, two = tmp_path / "one", tmp_path / "two"
    assert prepare_mod.main(_argv(raw, one)) == 0

    # killed (like a power cut) right after each process wrote its first shard of the train faces
    killed = _launch(tmp_path, _argv(raw, two), MODALINK_FAILPOINTS="embedding_cache.shard:1")
    assert killed.returncode != 0
    shards = list((two / ".cache" / "embeddings").rglob(".shards/train_faces-*/part-*.npy"))
    assert shards, killed.stderr[-3000:]

    res = _launch(tmp_path, [*_argv(raw, two), "--run-dir", str(two / "run2")])
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_same_outputs(one, two)
    faces = next((two / ".cache" / "embeddings").glob("*/train_faces.json"))
    build = json.loads(faces.read_text())["last_build"]
    assert build["resumed"] >= 4 and build["resumed"] + build["encoded"] == 8, build  # 8 training faces

    # one log: every message once, on the console and in log.txt, by the main process only
    console = _log_messages(res.stderr)
    assert console and len(console) == len(set(console)), console
    assert any("split into 2 blocks" in m for m in console), console
    assert sum("done in" in m for m in console) == 1
    log_file = _log_messages((two / "run2" / "log.txt").read_text())
    assert [m for m in log_file if "--random-weights" not in m] == [m for m in console if "--random-weights" not in m]
    s1 = json.loads((one / "run" / "summary.json").read_text())
    s2 = json.loads((two / "run2" / "summary.json").read_text())
    def files_and_status(summary):  # this run's counts differ: the resumed run embedded less
        return {k: (v["files"], v["status"]) for k, v in summary["extraction"].items()}

    assert files_and_status(s2) == files_and_status(s1)
    assert s2["files"] == s1["files"] and s2["problems"] == s1["problems"]


def test_two_processes_on_a_locked_output_are_refused_at_once(tmp_path):
    """The main process takes the --output lock; when another job holds it, every process of the
    launched job ends (none waits at a barrier) with one error line, and nothing is written."""
    raw = tmp_path / "raw"
    make_raw(raw)
    out = tmp_path / "out"
    with lock_held_elsewhere(out):
        res = _launch(tmp_path, [*_argv(raw, out), "--collective-timeout", "60"])
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode != 0
    assert errors == [f"error: {out} is in use by another job (pid 4242 on elsewhere); wait for it to finish or "
                      "use another --output"], res.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == [".lock"]


def test_test_side_label_map_comes_from_the_training_side(tmp_path, caplog):
    """--parts test alone reads the label map of an existing training side; prepared before it,
    the test side says why its label map is empty, and --parts train fills it in afterwards."""
    raw = tmp_path / "raw"
    make_raw(raw)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "out"
    base = [*_argv(raw, out), *cache]
    assert prepare_mod.main([*base, "--parts", "train", "--run-dir", str(out / "r1")]) == 0
    assert prepare_mod.main([*base, "--parts", "test", "--run-dir", str(out / "r2")]) == 0
    train_info = json.loads((out / "feats/v1/feature_info.json").read_text())
    test_info = json.loads((out / "preExtracted_vggFace_utteranceLevel_Features/v1/feature_info.json").read_text())
    assert train_info["label_map"] == test_info["label_map"] == {"id0001": 1, "id0002": 2}

    other = tmp_path / "other"
    base = [*_argv(raw, other), *cache]
    assert prepare_mod.main([*base, "--parts", "test", "--run-dir", str(other / "r1")]) == 0
    test_path = other / "preExtracted_vggFace_utteranceLevel_Features/v1/feature_info.json"
    assert json.loads(test_path.read_text())["label_map"] == {}
    assert "gets an empty label_map" in (other / "r1" / "log.txt").read_text()
    assert prepare_mod.main([*base, "--parts", "train", "--run-dir", str(other / "r2")]) == 0
    assert json.loads(test_path.read_text())["label_map"] == {"id0001": 1, "id0002": 2}


def test_one_data_loader_per_part_and_modality_while_shards_are_cut(tmp_path, monkeypatch):
    """The files of a part stream through one data loader (one embed_files call per part and
    modality), not one per cache shard, and the shards are still cut as the rows come."""
    raw = tmp_path / "raw"
    make_raw(raw)
    calls: list[int] = []
    shards: list[int] = []
    from modalink.face_voice import extraction

    real_embed = extraction.embed_files
    real_write = extraction.EmbeddingCache._write_shard

    def counting_embed(enc, relpaths, **kw):
        calls.append(len(relpaths))
        yield from real_embed(enc, relpaths, **kw)

    def counting_write(sdir, name, held, probs):
        shards.append(sum(len(r) for r, _ in held))
        real_write(sdir, name, held, probs)

    monkeypatch.setattr(extraction, "embed_files", counting_embed)
    monkeypatch.setattr(extraction, "SHARD_SIZE", 2)
    monkeypatch.setattr(extraction.EmbeddingCache, "_write_shard", staticmethod(counting_write))
    assert prepare_mod.main(_argv(raw, tmp_path / "out")) == 0
    assert calls == [8, 8, 4, 6]  # train faces, train voices, test faces, test voices
    assert len(shards) > 4 and sum(shards) == 8 + 8 + 4 + 6
