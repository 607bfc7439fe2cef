"""A user's own catalogue with real media: photos from scikit-image, audio written here, random
encoder weights (no download). Content predicts the interactions, so the item-cold evaluation
must show the content path beating popularity and BPR-MF, not only that it runs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

pytest.importorskip("skimage")
pytest.importorskip("soundfile")

from modalink.errors import run_cli  # noqa: E402
from modalink.recsys import CatalogueError, read_catalogue  # noqa: E402
from modalink.recsys.raw_items import ColdItemEncoder  # noqa: E402
from modalink.recsys.demo_catalogue import write_demo_catalogue  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SMALL_AUDIO = "media.audio_kwargs={channels: [32, 32, 32, 32, 96], lin_neurons: 64}"
FAST = ["media.pretrained=false", SMALL_AUDIO, "engine.progress=false"]


@pytest.fixture(scope="module")
def train_script():
    return load_script(ROOT / "recipes/recsys/train.py")


@pytest.fixture(scope="module")
def small_catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    info = write_demo_catalogue(root, items_per_photo=12, n_users=120, seed=0)
    return root, info


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------- validation
def test_catalogue_errors_name_file_and_line(tmp_path):
    _write(tmp_path / "items.csv", "item_id,text\na,hello\na,again\n")
    _write(tmp_path / "interactions.csv", "user_id,item_id\nu,a\n")
    with pytest.raises(CatalogueError, match=r"items\.csv:3: duplicate item_id 'a'"):
        read_catalogue(tmp_path)
    _write(tmp_path / "items.csv", "item_id,colour\na,red\n")
    with pytest.raises(CatalogueError, match=r"items\.csv:1: unknown column\(s\) \['colour'\]"):
        read_catalogue(tmp_path)
    _write(tmp_path / "items.csv", "item_id,text,image\na,hello,\nb,,pics/missing.jpg\n")
    _write(tmp_path / "interactions.csv", "user_id,item_id,rating\nu,a,five\n")
    with pytest.raises(CatalogueError, match=r"interactions\.csv:2: rating 'five' is not a number"):
        read_catalogue(tmp_path)
    for bad in ("nan", "inf"):
        _write(tmp_path / "interactions.csv", f"user_id,item_id,rating\nu,a,4\nu,a,{bad}\n")
        with pytest.raises(CatalogueError, match=rf"interactions\.csv:3: rating '{bad}' is not a finite number"):
            read_catalogue(tmp_path)
    _write(tmp_path / "interactions.csv", "")
    with pytest.raises(CatalogueError, match=r"interactions\.csv: the file is empty"):
        read_catalogue(tmp_path)
    _write(tmp_path / "interactions.csv", "user_id,item_id\nu,a\nu,zzz\nv,b\n")
    cat = read_catalogue(tmp_path)  # unknown ids skipped and counted; a missing file = missing modality
    assert cat.report["skipped_unknown_items"] == 1 and "interactions.csv:3: zzz" in cat.report["unknown_item_examples"][0]
    assert cat.report["image_missing_files"] == 1 and cat.images == [None, None]
    with pytest.raises(CatalogueError, match=r"interactions\.csv:3: item_id 'zzz' is not in items\.csv"):
        read_catalogue(tmp_path, unknown_items="error")


def test_empty_ratings_are_one_line_errors(tmp_path, capsys, train_script):
    _write(tmp_path / "items.csv", "item_id,text\na,hello\n")
    _write(tmp_path / "interactions.csv", "user_id,item_id,rating\n")
    code = run_cli(train_script.main, ["--data-root", str(tmp_path), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "interactions.csv: no data rows" in err[0], err
    assert not (tmp_path / "run").exists()  # refused before anything was written
    ml = tmp_path / "ml"
    ml.mkdir()
    _write(ml / "u.data", "")
    _write(ml / "u.item", "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 18 + ["1"]) + "\n")
    _write(ml / "u.user", "1|24|M|technician|85711\n")
    code = run_cli(train_script.main, ["--data-root", str(ml), "--output-dir", str(tmp_path / "run2")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "u.data: no ratings" in err[0], err


def test_cold_item_encoder_rebuilds_the_media_config_of_its_export():
    """The media config an export records (unset weights as null) builds the same MediaConfig."""
    import torch

    from modalink.config import to_dict
    from modalink.recsys import MediaConfig

    recorded = to_dict(MediaConfig())
    enc = ColdItemEncoder(torch.nn.Identity(), {"media": {"config": recorded, "modalities": ["text"]}})
    assert list(enc._media()) == ["text"] and enc._media_cfg == MediaConfig()


# ----------------------------------------------------------------------------- a run on real media
def test_catalogue_run_counts_bad_media_and_embeds_new_items(small_catalogue, tmp_path, train_script, capsys):
    root, info = small_catalogue
    out = tmp_path / "run"
    args = ["--data-root", str(root), "--output-dir", str(out), "engine.epochs=2", *FAST]
    payload = train_script.main(args)
    rep = json.loads((out / "media_report.json").read_text())
    assert rep["catalogue"]["skipped_unknown_items"] == 2
    assert rep["media"]["image"]["missing_files"] == 1 and rep["media"]["image"]["unreadable"] == 1
    assert rep["media"]["audio"]["unreadable"] == 1 and "silent" in rep["media"]["audio"]["unreadable_examples"][0]
    assert payload["results"]["modalink tower"]["item_cold"]["users"] > 0
    assert (out / "tower_model" / "model.safetensors").is_file()
    # the same command again: the finished run is re-scored from its checkpoints, media from the cache
    again = train_script.main(args)
    assert all(r["from_cache"] for r in again["media"].values())
    # another config into the same folder is refused; --overwrite starts again
    assert run_cli(train_script.main, [*args, "engine.epochs=1"]) == 2
    assert "holds a run with another config" in capsys.readouterr().err
    train_script.main([*args, "engine.epochs=1", "--overwrite"])

    # cold items from raw files: the index vectors of the cold (never trained) items are reproduced
    enc = ColdItemEncoder.from_run(out)
    rows = list(csv.DictReader(open(root / "items.csv", encoding="utf-8")))
    vecs, reports = enc.embed(rows, base_dir=root)
    sims = (vecs.numpy() * enc.index.vectors).sum(1)
    split = json.loads((out / "split.json").read_text())
    n_cold = split["cold_val_items"] + split["cold_test_items"]
    assert int((sims > 0.9999).sum()) == n_cold  # cold items: same files -> same vector (no ID, no profile)
    bad = next(r for row, r in zip(rows, reports) if row["item_id"] == info["broken"]["unreadable_image"])
    assert any("cannot read image" in p for p in bad["problems"]) and "image" not in bad["used"]
    # the command: a new photo (a flipped crop written here) queried against the exported index
    from PIL import Image
    from skimage import data as skdata
    Image.fromarray(np.ascontiguousarray(skdata.coffee()[50:300, 100:400, :][:, ::-1])).save(tmp_path / "new.jpg")
    query = load_script(ROOT / "recipes/recsys/query.py")
    res = query.main(["--run-dir", str(out), "--image", str(tmp_path / "new.jpg"), "--text", "espresso cup", "-k", "3"])
    assert len(res[0]["neighbours"]) == 3 and res[0]["used"] == ["text", "image"]
    assert run_cli(query.main, ["--run-dir", str(out), "--audio", str(tmp_path / "nope.wav")]) == 2
    assert "no usable modality (audio file not found" in capsys.readouterr().err


def test_changed_media_in_the_same_folder_are_refused_before_embedding(small_catalogue, tmp_path, train_script,
                                                                       capsys):
    import shutil

    root = tmp_path / "catalogue"
    shutil.copytree(small_catalogue[0], root)
    out = tmp_path / "run"
    args = ["--data-root", str(root), "--output-dir", str(out), "engine.epochs=1", *FAST]
    train_script.main(args)
    cache = {p.name: p.read_bytes() for p in (out / "media_cache").iterdir() if p.is_file()}
    photo = next((root / "images").glob("*.jpg"))
    photo.write_bytes(photo.read_bytes()[:200])  # a broken file where a photo was
    assert run_cli(train_script.main, args) == 2
    assert "the data changed since the run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "media_cache").iterdir() if p.is_file()} == cache


def test_exported_modalink_model_as_item_encoder(small_catalogue, tmp_path, train_script):
    """A registered modalink model exported with save_pretrained embeds the image and audio
    vectors, frozen or fine-tuned inside the tower; new items embed through it too."""
    import torch

    from modalink.hub import save_pretrained
    from modalink.models import create_model

    root, _ = small_catalogue
    torch.manual_seed(0)
    model = create_model("single_branch", input_dims={"image": 512, "audio": 64}, embed_dim=32, norm="layer")
    save_pretrained(model, tmp_path / "exported", contract={"image": "timm/resnet18", "audio": "ecapa_voxceleb"})
    for finetune in (False, True):
        out = tmp_path / f"run_{finetune}"
        train_script.main(["--data-root", str(root), "--output-dir", str(out), "engine.epochs=1", *FAST,
                           f"item_model.path={tmp_path / 'exported'}", f"item_model.finetune={str(finetune).lower()}",
                           "media.modalities=[image, audio]"])
        enc = ColdItemEncoder.from_run(out)
        assert {"model_image", "model_audio"} <= set(enc.tower.modalities)
        assert (enc.tower.item_encoder is not None) == finetune
        rows = list(csv.DictReader(open(root / "items.csv", encoding="utf-8")))
        vecs, _ = enc.embed(rows, base_dir=root)
        split = json.loads((out / "split.json").read_text())
        sims = (vecs.numpy() * enc.index.vectors).sum(1)
        assert int((sims > 0.9999).sum()) == split["cold_val_items"] + split["cold_test_items"]


def _single_modality_stats(enc, rows, root, modality):
    """Every item of the catalogue with ``modality`` embedded from it alone (a cold item: no ID,
    no interactions) through the exported tower: same-group nearest neighbours and mean cosine."""
    from modalink.recsys.evaluate import content_neighbours

    sub = [r for r in rows if r[modality]]
    vecs, reports = enc.embed([{modality: r[modality]} for r in sub], base_dir=root)
    keep = [k for k, rep in enumerate(reports) if rep["used"] == [modality]]
    groups = [sub[k]["item_id"].rsplit("_", 1)[0] for k in keep]
    return content_neighbours(vecs.numpy()[keep], groups), [sub[k]["item_id"] for k in keep]


def test_untrained_tower_keeps_photo_only_items_apart(small_catalogue, tmp_path):
    """Real photos through a random-weight ResNet-18 share one large direction (mean cosine
    ~0.9); the tower's input statistics remove it, so photo-only items are not mapped to nearly
    one vector (mean cosine 0.975 without them) and keep the raw features' neighbours."""
    import torch

    from modalink.recsys import ItemFeatures, ItemTower, MediaConfig, extract_media, read_catalogue
    from modalink.recsys.catalogue import l2_rows
    from modalink.recsys.evaluate import content_neighbours

    root, _ = small_catalogue
    cat = read_catalogue(root)
    media = MediaConfig(modalities=["image"], pretrained=False)
    raw, _, _ = extract_media(cat, media, tmp_path / "cache")
    x = torch.from_numpy(l2_rows(raw["image"]))
    have = (x.abs().sum(1) > 0).numpy()
    groups = [i.rsplit("_", 1)[0] for i, h in zip(cat.item_ids, have) if h]
    ref = content_neighbours(x[have], groups)
    assert ref["mean_cosine"] > 0.8 and ref["neighbour_accuracy"] > 0.9  # what the input can separate
    feats = ItemFeatures(cat.n_items, {"image": x})
    torch.manual_seed(0)
    tower = ItemTower.from_features(feats, embed_dim=32, stem_dim=64, trunk_hidden=(64,), norm="layer", dropout=0.0)
    got = content_neighbours(tower.embed_catalogue(feats, missing="zero")[torch.from_numpy(have)], groups)
    assert got["mean_cosine"] < 0.8, (got, ref)
    assert got["neighbour_accuracy"] >= 0.9 * ref["neighbour_accuracy"], (got, ref)


def test_trained_tower_keeps_single_modality_cold_items_apart(small_catalogue, tmp_path, train_script):
    """Photo-only and audio-only items (embedded like a query.py cold item) keep the
    groups their raw features separate, and are not collapsed to one direction."""
    from modalink.config import load_config
    from modalink.recsys import MediaConfig, extract_media, read_catalogue
    from modalink.recsys.catalogue import l2_rows
    from modalink.recsys.evaluate import content_neighbours

    root, info = small_catalogue
    out = tmp_path / "run"
    train_script.main(["--data-root", str(root), "--output-dir", str(out), "engine.epochs=3", *FAST,
                       "mf.enabled=false", *EXTRA_SINGLE_MODALITY])
    enc = ColdItemEncoder.from_run(out)
    broken = set(info["broken"].values())
    rows = [r for r in csv.DictReader(open(root / "items.csv", encoding="utf-8")) if r["item_id"] not in broken]
    cat = read_catalogue(root)
    media = load_config(MediaConfig, defaults=enc.contract["media"]["config"])
    raw, _, _ = extract_media(cat, media, out / "media_cache")  # the run's vectors, from its cache
    index = {i: k for k, i in enumerate(cat.item_ids)}
    for m in ("image", "audio"):
        got, ids = _single_modality_stats(enc, rows, root, m)
        x = l2_rows(raw[m])[[index[i] for i in ids]]
        ref = content_neighbours(x, [i.rsplit("_", 1)[0] for i in ids])
        print(m, got, ref)
        assert got["mean_cosine"] < 0.9, (m, got, ref)
        assert got["neighbour_accuracy"] >= 0.9 * ref["neighbour_accuracy"], (m, got, ref)


EXTRA_SINGLE_MODALITY: list = []

FAME_CONTRACT = {  # what a FAME run exports: widths and prepare.py's feature_info (random weights)
    "face_dim": 512, "voice_dim": 64,
    "feature_info": {"face_encoder": {"name": "facenet_vggface2", "weights": None, "random_weights": True, "seed": 0,
                                      "contract": {"output_dim": 512}},
                     "voice_encoder": {"name": "ecapa_voxceleb", "weights": None, "random_weights": True, "seed": 1,
                                       "contract": {"output_dim": 64}}}}


def test_item_model_input_contract_names_encoder_and_weights(tmp_path):
    """A FAME model's face input (FaceNet, 512-D) fed 512-D ResNet-18 vectors is refused in one
    line naming both; other weights of the same encoder too; the override warns and goes on."""
    from modalink.encoders.contract_check import InputContractError
    from modalink.recsys.raw_items import ItemModelConfig, check_item_model_inputs, expected_inputs

    media = {"image": {"encoder": "timm/resnet18", "pretrained": False, "weights": None, "seed": 0,
                       "contract": {"output_dim": 512}},
             "audio": {"encoder": "ecapa_voxceleb", "pretrained": False, "weights": None, "seed": 1,
                       "contract": {"output_dim": 64}}}
    assert expected_inputs(FAME_CONTRACT, "face") == {"encoder": "facenet_vggface2", "output_dim": 512,
                                                      "weights": "random (seed 0)"}
    mapping = {"face": "image", "voice": "audio"}
    with pytest.raises(InputContractError) as info:
        check_item_model_inputs(ItemModelConfig(), tmp_path, FAME_CONTRACT, mapping, media)
    msg = str(info.value)
    assert "\n" not in msg and "facenet_vggface2" in msg and "timm/resnet18" in msg and "its face input" in msg
    assert "item_model.allow_encoder_mismatch=true" in msg
    assert check_item_model_inputs(ItemModelConfig(), tmp_path, FAME_CONTRACT, {"voice": "audio"}, media) == []
    # same encoder, other weights: random seed 2, then two weights files with other bytes
    other = {"audio": {**media["audio"], "seed": 2}}
    with pytest.raises(InputContractError, match=r"weights random \(seed 1\) vs random \(seed 2\)"):
        check_item_model_inputs(ItemModelConfig(), tmp_path, FAME_CONTRACT, {"voice": "audio"}, other)
    (tmp_path / "a.ckpt").write_bytes(b"weights A")
    (tmp_path / "b.ckpt").write_bytes(b"weights B")
    trained = {"voice_encoder": {"name": "ecapa_voxceleb", "weights": str(tmp_path / "a.ckpt"), "random_weights": False}}
    pretrained = {"audio": {**media["audio"], "pretrained": True, "weights": str(tmp_path / "b.ckpt")}}
    with pytest.raises(InputContractError, match="a.ckpt blake2b"):
        check_item_model_inputs(ItemModelConfig(), tmp_path, {"feature_info": trained}, {"voice": "audio"}, pretrained)
    (tmp_path / "b.ckpt").write_bytes(b"weights A")  # the same bytes under another name: the same weights
    assert check_item_model_inputs(ItemModelConfig(), tmp_path, {"feature_info": trained}, {"voice": "audio"},
                                   pretrained) == []
    diffs = check_item_model_inputs(ItemModelConfig(allow_encoder_mismatch=True), tmp_path, FAME_CONTRACT, mapping,
                                    media)
    assert diffs == ["encoder facenet_vggface2 vs timm/resnet18"]


def test_item_model_trained_on_other_encoder_is_refused_by_the_recipe(small_catalogue, tmp_path, train_script,
                                                                      capsys):
    """An exported FAME model (face = FaceNet, 512-D) with the catalogue photos embedded
    by timm/resnet18 (also 512-D) is refused in one line before training; the override runs."""
    import torch

    from modalink.hub import save_pretrained
    from modalink.models import create_model

    root, _ = small_catalogue
    torch.manual_seed(0)
    model = create_model("single_branch", input_dims={"face": 512, "voice": 64}, embed_dim=16, norm="layer")
    save_pretrained(model, tmp_path / "fame_model", contract=FAME_CONTRACT)
    out = tmp_path / "run"
    args = ["--data-root", str(root), "--output-dir", str(out), "engine.epochs=1", *FAST, "mf.enabled=false",
            f"item_model.path={tmp_path / 'fame_model'}", "item_model.inputs={face: image, voice: audio}",
            "media.modalities=[image, audio]"]
    assert run_cli(train_script.main, args) == 2
    # the data's warnings (unknown items, unreadable media) are logged first; the refusal is one line, last
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    assert "facenet_vggface2" in errors[0] and "timm/resnet18" in errors[0], err
    assert "item_model.allow_encoder_mismatch=true" in errors[0]
    assert not (out / "tower").exists()
    train_script.main([*args, "item_model.allow_encoder_mismatch=true", "--overwrite"])
    contract = json.loads((out / "tower_model" / "config.json").read_text())["contract"]
    assert contract["item_model"]["encoder_mismatches"] == ["encoder facenet_vggface2 vs timm/resnet18"]


def test_content_path_beats_popularity_and_mf_on_cold_items(tmp_path, train_script):
    """Three catalogue/training seeds: the tower's item-cold NDCG@10 beats popularity and BPR-MF
    (both at the random level), with all content and with the image or audio path alone."""
    rows = []
    for seed in (0, 1, 2):
        root = tmp_path / f"cat{seed}"
        write_demo_catalogue(root, items_per_photo=30, n_users=300, seed=seed)
        res = train_script.main(["--data-root", str(root), "--output-dir", str(tmp_path / f"run{seed}"),
                                 f"engine.seed={seed}", *FAST])
        cold = {n: r["item_cold"]["ndcg@10"] for n, r in res["results"].items()}
        cold.update({f"tower, {n} only": r["ndcg@10"] for n, r in res["missing_modalities_item_cold"].items()})
        print(seed, {n: round(v, 4) for n, v in cold.items()})
        assert cold["modalink tower"] > 1.5 * max(cold["popularity"], cold["BPR-MF"]), cold
        rows.append(cold)
    mean = {n: float(np.mean([r[n] for r in rows])) for n in rows[0]}
    # each content path alone beats the random level of popularity / MF (which tie every cold item)
    assert mean["tower, image only"] > 1.3 * mean["popularity"], mean
    assert mean["tower, text only"] > 1.2 * mean["popularity"], mean
    assert mean["tower, audio only"] > 1.1 * mean["popularity"], mean
