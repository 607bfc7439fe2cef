"""FAME raw media end to end on REAL photos: prepare.py → train.py → verify.py → challenge validate.

Photos come from scikit-image (``astronaut`` and ``camera`` hold a human face, ``chelsea`` and
``coffee`` do not) and are cut into same-size frames, so one batch at prepare.py's default batch
size mixes face, no-face and two-face frames — the case that crashes facenet-pytorch's own
batched MTCNN call. Detection uses the real MTCNN weights shipped in facenet-pytorch's wheel;
the embedders (InceptionResnetV1, ECAPA) have random weights (theirs cannot be downloaded
here). Audio is written by the test in every format the issue lists (wav 16 kHz, 44.1 kHz
stereo, 48 kHz float, flac, mp3) plus ogg, and broken files (corrupt, empty, 0.2 s, an
unsupported .m4a). No network, CPU only.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from PIL import Image

skdata = pytest.importorskip("skimage.data")

from modalink.audio import AUDIO_EXTENSIONS  # noqa: E402
from modalink.encoders.face import MTCNNDetector  # noqa: E402
from conftest import load_script  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "fame"
FRAME = 160  # every frame has this size, so MTCNN batches them together
FACE_ARGS = ["--face-arg", "image_size=80"]  # facenet pools adaptively; 80 px crops keep the test fast
VOICE_ARGS = ["--voice-arg", "channels=[16,16,16,16,48]", "--voice-arg", "attention_channels=8",
              "--voice-arg", "se_channels=8"]
TRAIN_FAST = ["data.val_ids=2", "data.val_trials=50", "engine.epochs=1", "engine.batch_size=2",
              "engine.progress=false", "engine.warmup_steps=0"]


prepare_mod = load_script(RECIPE / "prepare.py")
train_mod = load_script(RECIPE / "train.py")
verify_mod = load_script(RECIPE / "verify.py")


# ----------------------------------------------------------------------------- real frames


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def real_frames() -> dict[str, Image.Image]:
    """Same-size frames: with one face, with none, and with two faces of different sizes."""
    ast, cam = _photo("astronaut"), _photo("camera")
    two = Image.new("RGB", (FRAME, FRAME), (90, 90, 90))
    two.paste(ast.crop((130, 20, 330, 220)).resize((80, 80)), (0, 40))
    two.paste(cam.crop((130, 90, 330, 290)).resize((60, 60)), (90, 50))
    return {
        "astronaut": ast.resize((FRAME, FRAME)),
        "astronaut_close": ast.crop((100, 0, 400, 300)).resize((FRAME, FRAME)),
        "camera": cam.resize((FRAME, FRAME)),
        "camera_flip": cam.resize((FRAME, FRAME)).transpose(Image.FLIP_LEFT_RIGHT),
        "cat": _photo("chelsea").resize((FRAME, FRAME)),
        "coffee": _photo("coffee").resize((FRAME, FRAME)),
        "two_faces": two,
    }


NO_FACE = {"cat", "coffee"}


@pytest.fixture(scope="module")
def frames() -> dict[str, Image.Image]:
    return real_frames()


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    torch.manual_seed(0)
    return MTCNNDetector(image_size=80)


def test_batched_mtcnn_mixed_batch_equals_single_image_path(frames, detector):
    """32 same-size frames (prepare.py's default batch) mixing face / no-face / two-face frames:
    no crash, and every crop equals facenet-pytorch's single-image ``mtcnn(image)``."""
    names = list(frames)
    batch = [frames[names[i % len(names)]] for i in range(32)]
    crops = detector(batch)
    assert len(crops) == 32
    singles = {name: detector.mtcnn(img) for name, img in frames.items()}  # the one-image call
    for i, crop in enumerate(crops):
        name = names[i % len(names)]
        single = singles[name]
        if name in NO_FACE:
            assert crop is None and single is None, name
        else:
            assert crop is not None and single is not None, name
            assert tuple(crop.shape) == (3, 80, 80)
            assert torch.equal(crop, single.float()), name
    # the two-face frame: both faces are found, the larger one is cropped (as MTCNN selects)
    boxes, _ = detector.mtcnn.detect(frames["two_faces"])
    assert boxes is not None and len(boxes) == 2


def test_mtcnn_tiny_and_mixed_size_images(frames, detector):
    tiny = Image.new("RGB", (12, 15), (128, 128, 128))  # smaller than min_face_size: MTCNN's pyramid is empty
    big = frames["astronaut"].resize((200, 200))
    crops = detector([tiny, frames["cat"], big, frames["astronaut"], tiny])
    assert crops[0] is None and crops[1] is None and crops[4] is None
    assert crops[2] is not None and crops[3] is not None
    assert torch.equal(crops[2], detector.mtcnn(big).float())


def test_mtcnn_batch_failure_falls_back_to_single_images(frames, detector, monkeypatch):
    """If MTCNN's batched pass fails on a group, each image is detected alone (same crops)."""
    import facenet_pytorch.models.utils.detect_face as df

    real = df.detect_face

    def flaky(imgs, *args, **kwargs):
        if len(imgs) > 1:
            raise RuntimeError("simulated failure of a batched pass")
        return real(imgs, *args, **kwargs)

    batch = [frames["astronaut"], frames["cat"], frames["two_faces"]]
    expected = detector(batch)
    monkeypatch.setattr(df, "detect_face", flaky)
    got = detector(batch)
    assert got[1] is None and all(torch.equal(a, b) for a, b in zip([got[0], got[2]], [expected[0], expected[2]]))


def test_commands_have_help(capsys):
    for main in (verify_mod.main, load_script(ROOT / "scripts" / "bench_mtcnn.py").main):
        with pytest.raises(SystemExit) as info:
            main(["--help"])
        assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--run-dir" in out and "--pairs" in out and "--batch-size" in out


# ----------------------------------------------------------------------------- a raw MAV-Celeb folder


def _tone(seconds: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 40 * seed % 200
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


#: (extension, writer) for the formats a user's clips come in
AUDIO_WRITERS = {
    "wav16k": (".wav", lambda p, x: sf.write(p, x, 16000)),
    "wav44k_stereo": (".wav", lambda p, x: sf.write(p, np.stack([_rs(x, 44100), 0.5 * _rs(x, 44100)], 1), 44100)),
    "wav48k_float": (".wav", lambda p, x: sf.write(p, _rs(x, 48000), 48000, subtype="FLOAT")),
    "flac": (".flac", lambda p, x: sf.write(p, x, 16000)),
    "mp3": (".mp3", lambda p, x: sf.write(p, x, 16000)),
    "ogg": (".ogg", lambda p, x: sf.write(p, x, 16000)),
}


def _rs(x: np.ndarray, sr: int) -> np.ndarray:
    return np.interp(np.arange(int(len(x) * sr / 16000)) * 16000 / sr, np.arange(len(x)), x).astype(np.float32)


def _write_audio(path_stem: Path, kind: str, seed: int) -> Path:
    ext, write = AUDIO_WRITERS[kind]
    path = path_stem.with_suffix(ext)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, _tone(0.8, 16000, seed))
    return path


def _write_image(path: Path, img: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=95)


def make_raw_mavceleb(root: Path, frames: dict[str, Image.Image]) -> dict:
    """v1 layout: 4 identities x English/Urdu x 2 clips (train), 4 pairs per language (test)."""
    train, test = root / "mavceleb_v1_train", root / "mavceleb_v1_test"
    names = list(frames)
    kinds = list(AUDIO_WRITERS)
    problems: dict[str, str] = {}  # file (relative to root) → expected problem
    k = 0
    for ident in ("id0001", "id0002", "id0003", "id0004"):
        for lang in ("English", "Urdu"):
            for clip in ("00001", "00002"):
                name = names[k % len(names)]
                face = train / "faces" / ident / lang / "vidA" / f"{clip}.jpg"
                _write_image(face, frames[name])
                if name in NO_FACE:
                    problems[str(face.relative_to(root))] = "no_face"
                _write_audio(train / "voices" / ident / lang / "vidA" / clip, kinds[k % len(kinds)], k)
                k += 1
    # broken training files (all in Urdu, so English keeps every row)
    bad = train / "voices" / "id0002" / "Urdu" / "vidA"
    for p in bad.glob("00002.*"):
        p.unlink()
    (bad / "00002.flac").write_bytes(b"")  # empty
    problems[str((bad / "00002.flac").relative_to(root))] = "empty_audio"
    short = train / "voices" / "id0003" / "Urdu" / "vidA"
    for p in short.glob("00002.*"):
        p.unlink()
    sf.write(short / "00002.wav", _tone(0.2, 16000, 99), 16000)  # 0.2 s < --min-seconds 0.5
    problems[str((short / "00002.wav").relative_to(root))] = "too_short_audio"
    corrupt = train / "voices" / "id0004" / "Urdu" / "vidA"
    for p in corrupt.glob("00002.*"):
        p.unlink()
    (corrupt / "00002.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio")
    problems[str((corrupt / "00002.wav").relative_to(root))] = "unreadable_audio"
    junk = train / "faces" / "id0001" / "English" / "vidA" / "00003.jpg"
    junk.write_bytes(b"\xff\xd8\xff not a jpeg")
    problems[str(junk.relative_to(root))] = "unreadable_image"
    m4a = train / "voices" / "id0001" / "English" / "vidA" / "00003.m4a"
    m4a.write_bytes(b"\x00\x00\x00\x18ftypM4A ")
    problems[str(m4a.relative_to(root))] = "unsupported_format"

    # test split: flat files + pair lists at the raw root
    for li, lang in enumerate(("English", "Urdu")):
        lines = []
        for i in range(4):
            name = ["astronaut", "coffee", "camera_flip", "two_faces"][i]
            face = test / "faces" / lang / f"{i:05d}.jpg"
            _write_image(face, frames[name])
            if name in NO_FACE:
                problems[str(face.relative_to(root))] = "no_face"
            voice = _write_audio(test / "voices" / lang / f"{i:05d}", kinds[(i + li) % len(kinds)], 50 + 10 * li + i)
            lines.append(f"{lang[:2].lower()}{i} {voice.relative_to(test).as_posix()} {face.relative_to(test).as_posix()}")
        (root / f"{lang}_test.txt").write_text("\n".join(lines) + "\n")
    # a corrupt mp3 among the Urdu test voices → a zero row, the list stays aligned
    old = sorted((test / "voices" / "Urdu").glob("00001.*"))[0]
    old.unlink()
    mp3 = old.with_suffix(".mp3")
    mp3.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00 definitely not mpeg frames")
    text = (root / "Urdu_test.txt").read_text().replace(f"voices/Urdu/{old.name}", "voices/Urdu/00001.mp3")
    (root / "Urdu_test.txt").write_text(text)
    problems[str(mp3.relative_to(root))] = "unreadable_audio"
    return {"train": train, "test": test, "problems": problems}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, frames):
    """prepare.py (default batch size) → train.py (tiny) on the real-media folder."""
    root = tmp_path_factory.mktemp("raw")
    raw = make_raw_mavceleb(root, frames)
    feats = tmp_path_factory.mktemp("feats")
    rc = prepare_mod.main(["--raw-root", str(root), "--ver", "v1", "--output", str(feats), "--random-weights",
                           "--workers", "0", "--offline", *FACE_ARGS, *VOICE_ARGS,
                           "--run-dir", str(feats / "prepare_run")])
    assert rc == 0
    run = tmp_path_factory.mktemp("runs") / "fame_v1"
    results = train_mod.main(["--feats-root", str(feats), "--ver", "v1", "--output-dir", str(run), *TRAIN_FAST])
    return {"root": root, "feats": feats, "run": run, "results": results, **raw}


def _read_report(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_listed_audio_format_is_decodable_here():
    assert {".wav", ".flac", ".mp3", ".ogg"} <= AUDIO_EXTENSIONS


def test_prepare_turns_real_media_into_the_official_layout(pipeline):
    feats = pipeline["feats"]
    info = json.loads((feats / "feats" / "v1" / "feature_info.json").read_text())
    assert info["face_dim"] == 512 and info["voice_dim"] == 192
    eng = np.loadtxt(feats / "feats/v1/English_feats/English_faces_train.csv", delimiter=",", ndmin=2)
    urdu = np.loadtxt(feats / "feats/v1/Urdu_feats/Urdu_voices_train.csv", delimiter=",", ndmin=2)
    assert eng.shape == (8, 513)  # every English clip kept: 6 audio formats, face/no-face/two-face frames
    assert urdu.shape == (5, 193)  # 3 broken Urdu clips dropped
    for lang in ("English", "Urdu"):
        f = np.loadtxt(feats / f"preExtracted_vggFace_utteranceLevel_Features/v1/English/{lang}_faces_test.csv",
                       delimiter=",", ndmin=2)
        assert f.shape == (4, 512)
    v = np.loadtxt(feats / "preExtracted_vggFace_utteranceLevel_Features/v1/Urdu/Urdu_voices_test.csv",
                   delimiter=",", ndmin=2)
    assert not np.any(v[1]) and np.all(np.any(v[[0, 2, 3]], axis=1))  # the corrupt mp3 → a zero row


def test_report_names_every_problem_file(pipeline):
    run = pipeline["feats"] / "prepare_run"
    rows = _read_report(run / "report.csv")
    got = {str(Path(r["file"]).relative_to(pipeline["root"])): r["problem"] for r in rows
           if r["problem"] != "unpaired_face"}
    assert got == pipeline["problems"]
    # the faces whose voice clip failed are in no training row: named too (every file is accounted for)
    assert {str(Path(r["file"]).relative_to(pipeline["root"])) for r in rows if r["problem"] == "unpaired_face"} == \
        {f"mavceleb_v1_train/faces/{i}/Urdu/vidA/00002.jpg" for i in ("id0002", "id0003", "id0004")}
    files = json.loads((run / "summary.json").read_text())["files"]
    assert files["used"] + sum(files["skipped"].values()) + sum(files["ignored"].values()) == files["total"]
    assert all(r["action"] for r in rows)
    short = next(r for r in rows if r["problem"] == "too_short_audio")
    assert "0.200 s" in short["detail"] and "pair dropped" in short["action"]
    zero = next(r for r in rows if r["file"].endswith("00001.mp3"))
    assert "zero row" in zero["action"] and "Urdu_test.txt" in zero["action"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["problems"]["no_face"] == sum(p == "no_face" for p in pipeline["problems"].values())
    assert "report.csv" in (run / "log.txt").read_text()


def test_train_then_verify_raw_pairs_validates(pipeline, tmp_path, capsys):
    run, root = pipeline["run"], pipeline["root"]
    assert pipeline["results"]["files"] and (run / "v1_English" / "best_model.pt").is_file()
    out = tmp_path / "verify"
    rc = verify_mod.main(["--run-dir", str(run), "--raw-root", str(pipeline["test"]), "--pairs",
                          str(root / "English_test.txt"), str(root / "Urdu_test.txt"), "--output-dir", str(out),
                          "--workers", "0", "--offline"])
    assert rc == 0, capsys.readouterr().err
    sub = out / "submission"
    names = sorted(p.name for p in sub.glob("sub_score_*.txt"))
    assert names == ["sub_score_English_heard.txt", "sub_score_English_unheard.txt",
                     "sub_score_Urdu_heard.txt", "sub_score_Urdu_unheard.txt"]
    # the verifier's raw-file scores are train.py's scores of prepare.py's CSVs (same encoders, same model)
    for name in names:
        mine = dict(line.split() for line in (sub / name).read_text().splitlines())
        theirs = dict(line.split() for line in (run / "submission" / name).read_text().splitlines())
        assert mine.keys() == theirs.keys()
        np.testing.assert_allclose([float(mine[k]) for k in mine], [float(theirs[k]) for k in mine],
                                   rtol=1e-4, atol=1e-4)
    # the output passes the organisers'-format check, run as a user would
    res = subprocess.run([sys.executable, "-m", "challenge", "validate", str(sub), "--pairs", str(root)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    report = _read_report(out / "report.csv")
    assert {Path(r["file"]).name for r in report if r["problem"] == "unreadable_audio"} == {"00001.mp3"}


def test_verify_one_face_against_one_voice(pipeline, capsys):
    test, root = pipeline["test"], pipeline["root"]
    line = (root / "English_test.txt").read_text().splitlines()[0].split()
    rc = verify_mod.main(["--run-dir", str(pipeline["run"]), "--face", str(test / line[2]), "--voice",
                          str(test / line[1]), "--workers", "0", "--train-lang", "English"])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("English model: distance ")
    dist = float(out.split()[3])
    expected = dict(x.split() for x in (pipeline["run"] / "submission" / "sub_score_English_heard.txt")
                    .read_text().splitlines())[line[0]]
    assert dist == pytest.approx(float(expected), abs=1e-4)
    # the same through the library
    from modalink.face_voice.runs import load_model_from_run
    from modalink.face_voice.verify import FaceVoiceVerifier, RawMediaEmbedder, require_feature_info

    info, _ = require_feature_info(pipeline["feats"], "v1")
    model = load_model_from_run(pipeline["run"] / "v1_English", 512, 192)
    embedder = RawMediaEmbedder.from_feature_info(info, device="cpu", progress=False)
    verifier = FaceVoiceVerifier(model, embedder, "English")
    assert verifier.distance(test / line[2], test / line[1]) == pytest.approx(dist, abs=1e-5)
    # an unusable clip ends in one line naming it
    bad = sorted((test / "voices" / "Urdu").glob("00001.*"))[0]
    rc = verify_mod.main(["--run-dir", str(pipeline["run"]), "--face", str(test / line[2]), "--voice", str(bad),
                          "--workers", "0"])
    errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert rc == 2 and len(errors) == 1, errors
    assert "00001.mp3" in errors[0] and "unreadable_audio" in errors[0]


def test_verify_refuses_runs_trained_on_other_features(pipeline, tmp_path, capsys):
    run = pipeline["run"]
    fake = tmp_path / "run"
    shutil.copytree(run, fake, ignore=shutil.ignore_patterns("checkpoints", "*.lock", ".lock"))
    cfg = yaml.safe_load((fake / "config.yaml").read_text())

    def verify() -> str:
        (fake / "config.yaml").write_text(yaml.safe_dump(cfg))
        rc = verify_mod.main(["--run-dir", str(fake), "--face", str(pipeline["test"] / "faces/English/00000.jpg"),
                              "--voice", str(sorted((pipeline["test"] / "voices/English").glob("00000.*"))[0])])
        errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
        assert rc == 2 and len(errors) == 1, errors
        return errors[0]

    # official-style features: no feature_info.json next to them
    official = tmp_path / "official"
    (official / "feats" / "v1").mkdir(parents=True)
    cfg["run"]["feats_root"] = str(official)
    assert "not made by recipes/fame/prepare.py" in verify()
    # a model trained on 4096-D faces (e.g. official VGGFace features)
    cfg["run"]["feats_root"] = str(pipeline["feats"])
    cfg["data"]["face_dim"] = 4096
    assert "4096-D face" in verify()
    # the synthetic set
    cfg["data"]["face_dim"] = None
    cfg["run"]["synthetic"], cfg["run"]["feats_root"] = True, None
    assert "synthetic" in verify()
