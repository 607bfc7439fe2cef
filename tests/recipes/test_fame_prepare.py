"""recipes/fame/prepare.py end to end on a tiny generated raw MAV-Celeb layout (random weights)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from conftest import lock_held_elsewhere
from modalink.face_voice.raw import (
    RawLayoutError,
    TrainClip,
    find_raw_layout,
    identity_labels,
    pair_train_clips,
    scan_train_split,
)
from modalink.encoders import create_encoder

ROOT = Path(__file__).resolve().parents[2]
FACE_ARGS = ["--face-arg", "image_size=80"]  # facenet pools adaptively; 80 px keeps the test fast
VOICE_ARGS = ["--voice-arg", "channels=[16,16,16,16,48]", "--voice-arg", "attention_channels=8",
              "--voice-arg", "se_channels=8"]


def _load_prepare():
    from conftest import load_script

    return load_script("recipes/fame/prepare.py")


prepare_mod = _load_prepare()


def _img(path: Path, value: int, size=(80, 96)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def _wav(path: Path, seed: int, sr: int = 16000, seconds: float = 0.6, silent: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = np.zeros(int(sr * seconds), np.float32) if silent else 0.1 * rng.standard_normal(int(sr * seconds))
    sf.write(path, x.astype(np.float32), sr)


def make_raw(root: Path) -> dict:
    """2 identities x 2 languages x 2 clips (train) and 3 test pairs per language."""
    train, test = root / "mavceleb_v1_train", root / "mavceleb_v1_test"
    seed = 0
    for ident in ("id0001", "id0002"):
        for lang in ("English", "Urdu"):
            for clip in ("00001", "00002"):
                seed += 1
                _img(train / "faces" / ident / lang / "vidA" / f"{clip}.jpg", 20 + 7 * seed,
                     size=(80, 96) if seed % 2 else (70, 70))
                # id0002/Urdu speaks in a video without face images → cross-video pairing
                video = "vidB" if (ident, lang) == ("id0002", "Urdu") else "vidA"
                silent = (ident, lang, clip) == ("id0002", "Urdu", "00002")
                sr = 44100 if clip == "00002" and lang == "English" else 16000
                _wav(train / "voices" / ident / lang / video / f"{clip}.wav", seed, sr=sr, silent=silent)
    (train / "faces" / ".DS_Store").write_text("junk")
    for lang in ("English", "Urdu"):
        lines = []
        for i in range(3):
            _img(test / "faces" / lang / f"{i:05d}.jpg", 100 + 10 * i + (5 if lang == "Urdu" else 0))
            _wav(test / "voices" / lang / f"{i:05d}.wav", 100 + i + (50 if lang == "Urdu" else 0))
            face_i = 0 if i == 2 else i  # lines 0 and 2 share a face image
            lines.append(f"k{lang[:2]}{i} voices/{lang}/{i:05d}.wav faces/{lang}/{face_i:05d}.jpg")
        (root / f"{lang}_test.txt").write_text("\n".join(lines) + "\n")
    # one corrupt test wav → a zero row, the list stays aligned
    (test / "voices" / "Urdu" / "00001.wav").write_bytes(b"RIFFxxxxWAVEnot really audio")
    return {"train": train, "test": test}


def read_csv(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    dirs = make_raw(root)
    out = tmp_path_factory.mktemp("feats")
    argv = ["--raw-root", str(root), "--ver", "v1", "--output", str(out), "--random-weights",
            "--device", "cpu", "--workers", "0", "--batch-size", "3", "--offline", *FACE_ARGS, *VOICE_ARGS]
    rc = prepare_mod.main([*argv, "--run-dir", str(out / "run1")])
    assert rc == 0
    return {"root": root, "out": out, "argv": argv, **dirs}


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as info:
        prepare_mod.main(["--help"])
    assert info.value.code == 0
    assert "--raw-root" in capsys.readouterr().out


def test_official_layout_and_dims(prepared):
    out = prepared["out"]
    info = json.loads((out / "feats" / "v1" / "feature_info.json").read_text())
    assert info["face_dim"] == 512 and info["voice_dim"] == 192
    assert info["face_encoder"]["contract"]["image_size"] == [80, 80]
    assert info["label_map"] == {"id0001": 1, "id0002": 2}
    assert (out / "preExtracted_vggFace_utteranceLevel_Features" / "v1" / "feature_info.json").is_file()
    for lang in ("English", "Urdu"):
        assert (out / "face_voice_association_splits" / "v1" / f"{lang}_test.txt").read_text() == \
            (prepared["root"] / f"{lang}_test.txt").read_text()
    faces = read_csv(out / "feats/v1/English_feats/English_faces_train.csv")
    voices = read_csv(out / "feats/v1/English_feats/English_voices_train.csv")
    assert faces.shape == (4, 513) and voices.shape == (4, 193)
    assert faces[:, -1].tolist() == [1, 1, 2, 2] and voices[:, -1].tolist() == [1, 1, 2, 2]
    np.testing.assert_allclose(np.linalg.norm(faces[:, :-1], axis=1), 1.0, atol=1e-5)
    # Urdu: the silent clip of id0002 is dropped (bad audio), its other clip pairs across videos
    urdu = read_csv(out / "feats/v1/Urdu_feats/Urdu_voices_train.csv")
    assert urdu.shape == (3, 193) and urdu[:, -1].tolist() == [1, 1, 2]


def test_rows_match_direct_embeddings(prepared):
    """CSV rows equal embeddings computed here, independently, with the same seeded encoders."""
    out, train, test = prepared["out"], prepared["train"], prepared["test"]
    torch.manual_seed(0)
    face = create_encoder("facenet_vggface2", image_size=80)
    torch.manual_seed(1)
    voice = create_encoder("ecapa_voxceleb", channels=[16, 16, 16, 16, 48], attention_channels=8,
                           se_channels=8)
    from modalink.audio import load_audio

    def face_emb(path):
        return face.embed(face.preprocess(Image.open(path)).unsqueeze(0))[0].numpy()

    def voice_emb(path):
        return voice.embed(voice.preprocess(load_audio(path, 16000), 16000).unsqueeze(0))[0].numpy()

    faces = read_csv(out / "feats/v1/English_feats/English_faces_train.csv")
    voices = read_csv(out / "feats/v1/English_feats/English_voices_train.csv")
    # row 1: id0001 clip 00002 (its voice was recorded at 44.1 kHz) paired with face 00002 of vidA
    np.testing.assert_allclose(faces[1, :-1], face_emb(train / "faces/id0001/English/vidA/00002.jpg"),
                               atol=1e-5)
    np.testing.assert_allclose(voices[1, :-1], voice_emb(train / "voices/id0001/English/vidA/00002.wav"),
                               rtol=1e-4, atol=1e-5)
    test_dir = out / "preExtracted_vggFace_utteranceLevel_Features" / "v1"
    for heard in ("English", "Urdu"):
        f = read_csv(test_dir / heard / "Urdu_faces_test.csv")
        v = read_csv(test_dir / heard / "Urdu_voices_test.csv")
        assert f.shape == (3, 512) and v.shape == (3, 192)  # test files carry no label
        np.testing.assert_array_equal(f[0], f[2])  # same face image on lines 0 and 2
        np.testing.assert_allclose(f[1], face_emb(test / "faces/Urdu/00001.jpg"), atol=1e-5)
        np.testing.assert_allclose(v[2], voice_emb(test / "voices/Urdu/00002.wav"), rtol=1e-4, atol=1e-5)
        assert not np.any(v[1])  # corrupt wav → zero row keeps the alignment
        assert read_csv(test_dir / heard / "English_faces_test.csv").shape == (3, 512)


def test_summary_counts_and_run_folder(prepared):
    run = prepared["out"] / "run1"
    assert (run / "config.yaml").is_file() and (run / "log.txt").is_file()
    summary = json.loads((run / "summary.json").read_text())
    ex = summary["extraction"]
    assert ex["train_faces"]["files"] == 8 and ex["train_faces"]["extracted"] == 8
    assert ex["train_faces"]["no_face_center_crop"] == 8  # blank images: MTCNN finds no face
    assert ex["train_voices"]["silent_audio"] == 1 and ex["train_voices"]["extracted"] == 7
    assert ex["test_voices"]["unreadable_audio"] == 1
    assert ex["test_faces"]["files"] == 4  # 2 distinct faces used per language
    assert summary["train"]["Urdu"]["cross_video_pairs"] == 2
    assert summary["train"]["Urdu"]["pairs_dropped"] == 1
    assert summary["test"]["Urdu"]["zero_voice_rows"] == 1
    log = (run / "log.txt").read_text()
    assert "silent_audio" in log and "no_face_center_crop" in log


def test_rerun_skips_everything(prepared):
    out = prepared["out"]
    csv = out / "feats/v1/English_feats/English_faces_train.csv"
    before = csv.read_text()
    rc = prepare_mod.main([*prepared["argv"], "--run-dir", str(out / "run2")])
    assert rc == 0
    ex = json.loads((out / "run2" / "summary.json").read_text())["extraction"]
    for key, counts in ex.items():
        assert counts["extracted"] == 0, key
        assert counts["cached"] == counts["files"], key
    assert ex["train_faces"]["status"] == {"no_face": 8}
    assert csv.read_text() == before


def test_rerun_embeds_only_new_changed_or_retried_files(prepared, tmp_path):
    """The shared embedding cache is incremental: a rerun over a grown dataset copies every file
    it holds (same path, size, mtime) and embeds only the new and the changed ones."""
    import shutil

    root = tmp_path / "raw"
    shutil.copytree(prepared["root"], root)  # copy2 keeps sizes and mtimes: the same files
    cache = tmp_path / "cache"
    shutil.copytree(prepared["out"] / ".cache" / "embeddings", cache)
    argv = [*prepared["argv"], "--raw-root", str(root), "--output", str(tmp_path / "out"), "--cache-dir", str(cache),
            "--parts", "train,test"]
    _wav(root / "mavceleb_v1_train/voices/id0001/English/vidA/00003.wav", seed=77)  # a new clip
    _wav(root / "mavceleb_v1_test/voices/Urdu/00001.wav", seed=78)  # the corrupt file, repaired
    assert prepare_mod.main([*argv, "--run-dir", str(tmp_path / "r1")]) == 0
    ex = json.loads((tmp_path / "r1" / "summary.json").read_text())["extraction"]
    assert ex["train_voices"]["files"] == 9 and ex["train_voices"]["extracted"] == 1
    assert ex["train_voices"]["cached"] == 8
    assert ex["test_voices"]["extracted"] == 1 and ex["test_voices"]["status"] == {"ok": 6}
    assert ex["train_faces"]["extracted"] == 0 and ex["test_faces"]["extracted"] == 0
    rows = read_csv(tmp_path / "out/feats/v1/English_feats/English_voices_train.csv")
    assert rows.shape[0] == 5  # the new clip has its pair
    # the silent clip failed before: left alone, unless --retry-failed asks for it again
    assert prepare_mod.main([*argv, "--run-dir", str(tmp_path / "r2")]) == 0
    ex = json.loads((tmp_path / "r2" / "summary.json").read_text())["extraction"]
    assert all(c["extracted"] == 0 and c["cached"] == c["files"] for c in ex.values())
    assert prepare_mod.main([*argv, "--retry-failed", "--run-dir", str(tmp_path / "r3")]) == 0
    ex = json.loads((tmp_path / "r3" / "summary.json").read_text())["extraction"]
    assert ex["train_voices"]["cached"] == 8 and ex["train_voices"].get("silent_audio") == 1


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    rc = prepare_mod.main(["--raw-root", str(tmp_path / "nope"), "--output", str(tmp_path / "o"),
                           "--random-weights"])
    assert rc == 2 and "not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- raw layout helpers


def test_find_layout_and_scan(tmp_path):
    dirs = make_raw(tmp_path)
    layout = find_raw_layout(tmp_path, ("English", "Urdu"))
    assert layout.train_root == dirs["train"] and layout.test_root == dirs["test"]
    assert set(layout.pair_lists) == {"English", "Urdu"}
    clips = scan_train_split(dirs["train"], "voices", ["Urdu"])
    assert [c.relpath for c in clips][:1] == ["voices/id0001/Urdu/vidA/00001.wav"]
    assert {c.language for c in clips} == {"Urdu"} and len(clips) == 4
    bad = dirs["train"] / "voices" / "id0001" / "stray.wav"
    bad.write_bytes(b"")
    with pytest.raises(RawLayoutError, match="stray.wav"):
        scan_train_split(dirs["train"], "voices")


def test_pairing_rule_by_hand():
    def c(ident, video, clip, ext):
        return TrainClip(ident, "English", video, clip, f"{ident}/{video}/{clip}.{ext}")

    faces = [c("a", "v1", "f1", "jpg"), c("a", "v1", "f2", "jpg"), c("a", "v2", "f3", "jpg")]
    voices = [c("a", "v1", "s1", "wav"), c("a", "v1", "s2", "wav"), c("a", "v1", "s3", "wav"),
              c("a", "v3", "s4", "wav"), c("b", "v1", "s5", "wav")]
    res = pair_train_clips(faces, voices)
    got = [(p.voice.clip, p.face.clip, p.same_video) for p in res.pairs]
    # v1 voices cycle over v1 faces; the v3 voice (4th of identity a, j=3) takes all-faces[3 % 3]
    assert got == [("s1", "f1", True), ("s2", "f2", True), ("s3", "f1", True), ("s4", "f1", False)]
    assert res.groups_without_faces == [("b", "English")] and len(res.unpaired_voices) == 1
    assert res.cross_video_pairs == 1


def test_identity_labels():
    assert identity_labels(["id0010", "id0002"]) == {"id0002": 2, "id0010": 10}
    assert identity_labels(["alice", "id0002"]) == {"alice": "alice", "id0002": "id0002"}


def test_output_loads_with_the_fame_reader(prepared):
    """The training recipe's reader accepts the written layout with the dims of feature_info.json."""
    from modalink.face_voice import features as fame
    out = prepared["out"]
    info = json.loads((out / "feats" / "v1" / "feature_info.json").read_text())
    data = fame.FameFeatures.load(out, "v1", "Urdu", face_dim=info["face_dim"], voice_dim=info["voice_dim"],
                                  use_cache=False)
    assert data.train.faces.shape == (3, 512) and data.train.voices.shape == (3, 192)
    assert data.heard.faces.shape == (3, 512) and data.unheard.voices.shape == (3, 192)
    assert [p.key for p in data.unheard.pairs] == ["kEn0", "kEn1", "kEn2"]


def test_offline_without_weights_fails_cleanly(prepared, tmp_path, capsys, monkeypatch):
    """Face AND voice weights missing: one message naming both files, the absolute place for each
    and the flag to point at it; printed once; no run folder (nor anything else) written."""
    monkeypatch.setenv("MODALINK_HOME", "rel_home")  # a relative home is reported absolute
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    rc = prepare_mod.main(["--raw-root", str(prepared["root"]), "--output", str(tmp_path / "o"),
                           "--offline", "--workers", "0", *VOICE_ARGS])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1, err
    assert "missing for 2 encoders" in err and "offline" in err
    home = tmp_path / "rel_home" / "weights"
    assert f"put it at:      {home / 'facenet_vggface2' / '20180402-114759-vggface2.pt'}" in err
    assert f"put it at:      {home / 'ecapa_voxceleb' / 'embedding_model.ckpt'}" in err
    assert "--face-weights=/path/to/20180402-114759-vggface2.pt" in err
    assert "--voice-weights=/path/to/spkrec-ecapa-voxceleb" in err
    assert "pretrained_models" not in err.replace("SpeechBrain's pretrained_models", "")  # no cwd-relative search
    assert not (tmp_path / "o").exists()  # no empty prepare_runs/<time> folder


def test_missing_explicit_weights_file_named_with_its_flag(prepared, tmp_path, capsys):
    rc = prepare_mod.main(["--raw-root", str(prepared["root"]), "--output", str(tmp_path / "o"), "--offline",
                           "--face-weights", str(tmp_path / "nope.pt"), "--voice-weights", str(tmp_path / "nodir"),
                           "--workers", "0", *VOICE_ARGS])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1
    assert f"{tmp_path / 'nope.pt'} (--face-weights=" in err and f"{tmp_path / 'nodir'} (--voice-weights=" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_is_one_line_and_writes_nothing(prepared, tmp_path, capsys):
    rc = prepare_mod.main(["--raw-root", str(prepared["root"]), "--output", str(tmp_path / "o"), "--random-weights",
                           "--device", "cuda", "--workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: --device cuda: no CUDA GPU")
    assert "--device cpu" in err[0] and not (tmp_path / "o").exists()


def test_default_device_is_auto():
    args = prepare_mod.build_parser().parse_args(["--raw-root", "r", "--output", "o"])
    assert args.device == "auto" and args.batch_size == 32


def test_relative_paths_from_another_folder(prepared, tmp_path, monkeypatch):
    """Relative --raw-root/--output work from any folder and are recorded absolute."""
    monkeypatch.chdir(tmp_path)
    rc = prepare_mod.main(["--raw-root", str(Path("..") / prepared["root"].name), "--output", "feats_rel",
                           "--random-weights", "--parts", "test", "--workers", "0", "--device", "cpu",
                           *FACE_ARGS, *VOICE_ARGS, "--run-dir", "run_rel"])
    assert rc == 0
    cfg = (tmp_path / "run_rel" / "config.yaml").read_text()
    assert f"raw_root: {prepared['root']}" in cfg and f"output: {tmp_path / 'feats_rel'}" in cfg
    assert (tmp_path / "feats_rel" / "preExtracted_vggFace_utteranceLevel_Features" / "v1" / "English").is_dir()


def test_report_names_problem_files(prepared):
    import csv

    with open(prepared["out"] / "run1" / "report.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_file = {Path(r["file"]).relative_to(prepared["root"]).as_posix(): r for r in rows}
    silent = by_file["mavceleb_v1_train/voices/id0002/Urdu/vidB/00002.wav"]
    assert silent["problem"] == "silent_audio" and "pair dropped" in silent["action"]
    corrupt = by_file["mavceleb_v1_test/voices/Urdu/00001.wav"]
    assert corrupt["problem"] == "unreadable_audio" and "zero row" in corrupt["action"]
    assert sum(r["problem"] == "no_face" for r in rows) == 8 + 4  # blank images: centre crops


def test_any_image_encoder_via_contract(prepared, tmp_path):
    """A timm backbone as the face encoder: preprocessing comes from its contract."""
    out = tmp_path / "o"
    rc = prepare_mod.main(["--raw-root", str(prepared["root"]), "--output", str(out), "--random-weights",
                           "--face-encoder", "timm/test_resnet", "--parts", "test", "--workers", "0",
                           "--device", "cpu", *VOICE_ARGS, "--run-dir", str(out / "run")])
    assert rc == 0
    info = json.loads((out / "preExtracted_vggFace_utteranceLevel_Features/v1/feature_info.json").read_text())
    f = read_csv(out / "preExtracted_vggFace_utteranceLevel_Features/v1/English/English_faces_test.csv")
    assert f.shape == (3, info["face_dim"]) and info["face_dim"] == 96
    assert not (out / "feats").exists()


# ----------------------------------------------------------------------------- lock, accounting, content


def _copy_raw_and_cache(prepared, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A copy of the raw root (sizes, mtimes and links kept) and of the prepared run's cache, and
    the argv that prepares it into tmp_path/out with that cache."""
    import shutil

    root = tmp_path / "raw"
    shutil.copytree(prepared["root"], root, symlinks=True)
    cache = tmp_path / "cache"
    shutil.copytree(prepared["out"] / ".cache" / "embeddings", cache)
    argv = [*prepared["argv"], "--raw-root", str(root), "--output", str(tmp_path / "out"), "--cache-dir", str(cache)]
    return root, cache, argv


def _report(path: Path) -> dict[str, dict[str, str]]:
    """report.csv by file: the row that says why a file is not used (else its fallback row)."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["problem"] != "no_face")
    return {r["file"]: r for r in rows}


def test_second_job_on_the_same_output_is_refused_at_once(prepared, tmp_path, capsys):
    """prepare.py holds the run folders' lock on --output: while another job holds it, a second
    job ends at once with one line, exit 2, and writes nothing."""
    out = tmp_path / "out"
    with lock_held_elsewhere(out) as lock:
        rc = prepare_mod.main([*prepared["argv"], "--output", str(out), "--parts", "test"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0] == (f"error: {out} is in use by another job (pid 4242 on elsewhere); wait for it to finish or "
                      "use another --output")
    assert [p.name for p in out.iterdir()] == [".lock"] and lock.read_text() == "pid 4242 on elsewhere\n"


def test_every_file_under_the_raw_root_is_accounted_for(prepared, tmp_path):
    """summary.json counts every file under the raw root as used, skipped or ignored, and
    report.csv names each file that is not used with the reason: hidden files, test faces no
    pair list uses, files in other languages or outside the layout, a file name that is not
    UTF-8 and a symlink loop (both skipped like unreadable files, not the end of the run)."""
    import os

    root, _, argv = _copy_raw_and_cache(prepared, tmp_path)
    train, test = root / "mavceleb_v1_train", root / "mavceleb_v1_test"
    (root / "README.txt").write_text("notes")
    (root / "extra").mkdir()
    (root / "extra" / "x.jpg").write_bytes(b"not in the layout")
    _img(train / "faces" / "id0001" / "German" / "vidA" / "00001.jpg", 50)
    (train / "voices" / "id0001" / "English" / "vidA" / "notes.txt").write_text("x")
    (test / "faces" / "English" / ".DS_Store").write_bytes(b"junk")
    bad_name = os.fsencode(str(train / "faces" / "id0001" / "English" / "vidA")) + b"/bad\xff.jpg"
    with open(bad_name, "wb") as fh:
        fh.write((train / "faces" / "id0001" / "English" / "vidA" / "00001.jpg").read_bytes())
    os.symlink("loop.wav", train / "voices" / "id0001" / "English" / "vidA" / "loop.wav")
    run = tmp_path / "run"
    assert prepare_mod.main([*argv, "--run-dir", str(run)]) == 0
    files = json.loads((run / "summary.json").read_text())["files"]
    assert files["total"] == sum(len(names) for _, _, names in os.walk(root))  # the loop is listed as a file
    assert files["used"] + sum(files["skipped"].values()) + sum(files["ignored"].values()) == files["total"]
    assert files["skipped"] == {"bad_file_name": 1, "silent_audio": 1, "symlink_loop": 1, "unreadable_audio": 1}
    assert files["ignored"] == {"hidden_file": 2, "not_in_pair_list": 2, "other_language": 1,
                                "outside_layout": 2, "unpaired_face": 1, "unsupported_format": 1}
    report = _report(run / "report.csv")
    assert len({f for f, r in report.items() if r["problem"] != "no_face"}) == files["total"] - files["used"]
    row = report[f"{train}/faces/id0001/English/vidA/bad\\xff.jpg"]
    assert (row["problem"], row["action"]) == ("bad_file_name", "skipped") and "UTF-8" in row["detail"]
    row = report[f"{train}/voices/id0001/English/vidA/loop.wav"]
    assert row["problem"] == "symlink_loop" and "pair dropped" in row["action"] and "loop" in row["detail"]
    assert report[f"{test}/faces/English/00002.jpg"]["problem"] == "not_in_pair_list"
    assert report[f"{test}/faces/English/.DS_Store"]["problem"] == "hidden_file"
    assert report[f"{root}/README.txt"]["problem"] == "outside_layout"
    assert report[f"{root}/extra/x.jpg"]["problem"] == "outside_layout"
    assert report[f"{train}/faces/id0001/German/vidA/00001.jpg"]["problem"] == "other_language"
    # the bad name is skipped, the other files of its video are used as before
    rows = read_csv(tmp_path / "out/feats/v1/English_feats/English_faces_train.csv")
    assert rows.shape[0] == 4


def test_report_rows_reused_from_a_shared_cache_name_the_current_raw_root(prepared, tmp_path):
    """A failed file's row comes from the cache another raw root filled: report.csv names the
    file (also inside the detail) under the raw root of this run."""
    root, _, argv = _copy_raw_and_cache(prepared, tmp_path)
    run = tmp_path / "run"
    assert prepare_mod.main([*argv, "--parts", "test", "--run-dir", str(run)]) == 0
    ex = json.loads((run / "summary.json").read_text())["extraction"]
    assert ex["test_voices"]["extracted"] == 0  # every row, the failed one too, came from the cache
    text = (run / "report.csv").read_text()
    assert str(prepared["root"]) + "/" not in text
    row = _report(run / "report.csv")[f"{root}/mavceleb_v1_test/voices/Urdu/00001.wav"]
    assert row["problem"] == "unreadable_audio" and f"{root}/mavceleb_v1_test/voices/Urdu/00001.wav" in row["detail"]


def test_random_weights_are_announced_and_recorded(prepared):
    """--random-weights: a warning in the run's log (the lines shown on screen) and
    "random_weights": true in summary.json and both feature_info.json files."""
    out = prepared["out"]
    assert json.loads((out / "run1" / "summary.json").read_text())["random_weights"] is True
    for info in (out / "feats/v1/feature_info.json",
                 out / "preExtracted_vggFace_utteranceLevel_Features/v1/feature_info.json"):
        assert json.loads(info.read_text())["random_weights"] is True
    warning = [ln for ln in (out / "run1" / "log.txt").read_text().splitlines() if "--random-weights" in ln]
    assert len(warning) == 2 and "WARNING" in warning[0] and "mean nothing" in warning[0]
    assert " done in " in warning[1] and warning[1].endswith("(--random-weights: the features mean nothing)")


def test_unreadable_raw_files_are_named_for_what_they_are(tmp_path):
    """A symlink loop is a ``symlink_loop`` for both loaders, a broken link says where it points."""
    import os

    from modalink.encoders.embed_files import read_media_file, unreadable_file

    loop = tmp_path / "loop.wav"
    os.symlink("loop.wav", loop)
    assert read_media_file(loop, "audio", 16000).reason == "symlink_loop"
    assert read_media_file(loop, "image").reason == "symlink_loop"
    os.symlink("gone.jpg", tmp_path / "broken.jpg")
    problem = read_media_file(tmp_path / "broken.jpg", "image")
    assert problem.reason == "missing_image" and "symbolic link to gone.jpg" in problem.detail
    assert unreadable_file(tmp_path / "nope.jpg").detail == "file not found"


def test_verify_names_a_symlink_loop(tmp_path, capsys):
    """verify.py --face on a symlink loop says so instead of 'file not found'."""
    import os

    from conftest import load_script

    verify = load_script(ROOT / "recipes" / "fame" / "verify.py")
    loop = tmp_path / "face.jpg"
    os.symlink("face.jpg", loop)
    _wav(tmp_path / "v.wav", 0)
    rc = verify.main(["--run-dir", str(tmp_path), "--face", str(loop), "--voice", str(tmp_path / "v.wav")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: --face {loop}: symbolic link loop")
