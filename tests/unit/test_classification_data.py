"""Multimodal classification datasets, missing-modality masks and synthetic Food-101."""
from __future__ import annotations

import csv
import dataclasses
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from modalink.classification.records import (DatasetFormatError, collate_multimodal, list_datasets,
                                             load_dataset, seeded_split)
from modalink.classification.sources.ferramenta import load_ferramenta
from modalink.classification.sources.food101 import load_food101
from modalink.classification.sources.hateful_memes import load_hateful_memes
from modalink.classification.sources.mmimdb import MMIMDB_GENRES, load_mmimdb
from modalink.classification.missing import (MissingModalityMask, apply_mask, condition_name, derive_seed,
                                             make_missing_mask, mask_for_condition, parse_condition)
from modalink.classification.synthetic_food101 import generate_synthetic_food101
from modalink.text.word_vectors import WordVectors
from modalink.text.render import TextToImage


def write_image(path, colour=(200, 30, 30), size=8, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path, format=fmt)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("food") / "synthetic_food101"
    return generate_synthetic_food101(root, n_classes=4, n_train_per_class=10, n_test_per_class=3,
                                      image_size=24, seed=0)


# --- synthetic Food-101 ----------------------------------------------------------------------
def test_synthetic_food101_layout_and_determinism(synth, tmp_path):
    root = synth.root
    assert synth.generated and synth.classes == ["food_v0_t0", "food_v0_t1", "food_v1_t0", "food_v1_t1"]
    assert (root / "images/train/food_v1_t0/food_v1_t0_0.jpg").is_file()
    assert (root / "images/test/food_v1_t0/food_v1_t0_10.jpg").is_file()  # numbering continues
    rows = list(csv.reader(open(root / "texts/train_titles.csv", newline="", encoding="utf-8")))
    assert len(rows) == 40 and all(len(r) == 3 for r in rows)
    assert rows[0][0].endswith(".jpg") and not rows[0][0].startswith("food_v0_t0_0")  # shuffled, headerless
    # same parameters elsewhere → byte-identical files
    other = generate_synthetic_food101(tmp_path / "again", n_classes=4, n_train_per_class=10,
                                       n_test_per_class=3, image_size=24, seed=0)
    for rel in ("texts/train_titles.csv", "texts/test_titles.csv", "images/train/food_v0_t1/food_v0_t1_3.jpg"):
        assert (other.root / rel).read_bytes() == (root / rel).read_bytes()
    # idempotent: nothing rewritten
    mtime = (other.root / "texts/train_titles.csv").stat().st_mtime_ns
    again = generate_synthetic_food101(tmp_path / "again", n_classes=4, n_train_per_class=10,
                                       n_test_per_class=3, image_size=24, seed=0)
    assert not again.generated and (other.root / "texts/train_titles.csv").stat().st_mtime_ns == mtime
    # a different seed gives different data; a foreign folder is never touched
    diff = generate_synthetic_food101(tmp_path / "seed1", n_classes=4, n_train_per_class=10,
                                      n_test_per_class=3, image_size=24, seed=1)
    assert (diff.root / "texts/train_titles.csv").read_bytes() != (root / "texts/train_titles.csv").read_bytes()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_synthetic_food101(tmp_path / "foreign")


def test_synthetic_food101_evidence_is_split_between_modalities(synth):
    ds = load_food101(synth.root, "trainval")
    te = load_food101(synth.root, "test")
    vocab = synth.vocabulary
    # the title tells the text group, never the visual group
    for rec in ds.records + te.records:
        words = set(rec.text.lower().replace(",", "").split())
        groups = {t for t, ws in enumerate(vocab) if words & set(ws)}
        assert groups == {synth.text_group[rec.label]}
    # the image tells the visual group: nearest mean-colour centroid recovers it on test
    def feat(d):
        return np.stack([d[i]["image"].mean(dim=(1, 2)).numpy() for i in range(len(d))])
    vis = np.array(synth.visual_group)
    ftr, fte = feat(ds), feat(te)
    cent = np.stack([ftr[vis[ds.labels] == v].mean(0) for v in range(2)])
    pred = np.argmin(((fte[:, None] - cent[None]) ** 2).sum(-1), axis=1)
    assert (pred == vis[te.labels]).mean() >= 0.9
    assert synth.image_only_ceiling == 0.5 and synth.text_only_ceiling == 0.5


# --- Food-101 loader -------------------------------------------------------------------------
def test_food101_splits_deterministic_and_disjoint(synth):
    tr = load_food101(synth.root, "train", val_fraction=0.25, seed=3)
    va = load_food101(synth.root, "val", val_fraction=0.25, seed=3)
    tv = load_dataset("food101", synth.root, "trainval")
    assert len(tr) == 30 and len(va) == 10 and len(tv) == 40
    assert set(tr.ids).isdisjoint(va.ids) and set(tr.ids) | set(va.ids) == set(tv.ids)
    assert load_food101(synth.root, "val", val_fraction=0.25, seed=3).ids == va.ids
    assert load_food101(synth.root, "val", val_fraction=0.25, seed=4).ids != va.ids
    assert tr.task == "multiclass" and tr.classes == synth.classes and tr.metrics == ("accuracy",)
    item = tr[0]
    assert set(item) == {"image", "text", "label", "index", "has_image", "has_text", "id"}
    assert item["image"].shape == (3, 24, 24) and isinstance(item["text"], str)
    assert item["label"] == tr.labels[0] and item["has_image"] and item["has_text"]
    # default fraction reproduces the common 61,142 / 6,846 split sizes on 67,988 rows
    parts = seeded_split([str(i) for i in range(67988)], [61142, 6846], 0)
    assert int(round(6846 / 67988 * 67988)) == 6846 and [len(p) for p in parts] == [61142, 6846]


def make_food(tmp_path, rows, part="train", classes=("apple_pie", "sushi")):
    root = tmp_path / "food"
    for c in classes:
        (root / "images" / part / c).mkdir(parents=True, exist_ok=True)
    (root / "texts").mkdir(parents=True, exist_ok=True)
    with open(root / "texts" / f"{part}_titles.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return root


def test_food101_bad_rows(tmp_path, caplog):
    rows = [["apple_pie_0.jpg", "Grandma's apple pie, the best", "apple_pie"],
            ["sushi_0.jpg", "Salmon sushi", "sushi"],
            ["pizza_0.jpg", "Pizza", "pizza"],            # line 3: unknown class
            ["sushi_1.jpg", "   ", "sushi"],               # line 4: empty text
            ["sushi_2.jpg", "only two"],                   # line 5: malformed
            ["sushi_3.jpg", "Tuna roll", "sushi"],        # image missing on disk
            ["sushi_4.jpg", "Broken", "sushi"]]            # unreadable image
    root = make_food(tmp_path, rows)
    write_image(root / "images/train/apple_pie/apple_pie_0.jpg", fmt="JPEG")
    write_image(root / "images/train/sushi/sushi_0.jpg", fmt="JPEG")
    (root / "images/train/sushi/sushi_4.jpg").write_bytes(b"not a jpeg")
    csv_path = root / "texts/train_titles.csv"
    with pytest.raises(DatasetFormatError, match=r"train_titles\.csv:3: unknown class 'pizza'"):
        load_food101(root, "trainval")
    caplog.set_level(logging.WARNING, logger="modalink.classification")
    ds = load_food101(root, "trainval", on_error="skip")
    rep = ds.report
    assert rep.skipped == {"unknown_class": 1, "empty_text": 1, "malformed_row": 1, "missing_image": 1}
    assert len(ds) == 3 and rep.kept == 3 and rep.rows == 7
    assert any(str(csv_path) + ":6" in e for e in rep.examples)
    assert "skipped" in caplog.text
    assert ds[ds.ids.index("apple_pie_0.jpg")]["text"] == "Grandma's apple pie, the best"
    # the unreadable image is found at index time (error names the file) or by verify_images
    with pytest.raises(DatasetFormatError, match="sushi_4.jpg"):
        ds[ds.ids.index("sushi_4.jpg")]
    ver = load_food101(root, "trainval", on_error="skip", verify_images=True)
    assert ver.report.skipped["unreadable_image"] == 1 and len(ver) == 2
    with pytest.raises(DatasetFormatError, match=r"train_titles\.csv:6: image file not found"):
        load_food101(root, "trainval", on_error="skip", on_missing_image="raise")
    with pytest.raises(DatasetFormatError, match=r"train_titles\.csv:1: expected 3 fields"):
        load_food101(make_food(tmp_path, [["a.jpg", "x"]]), "trainval")


# --- MM-IMDb ---------------------------------------------------------------------------------
def make_mmimdb(tmp_path, n=12, with_split=True):
    root = tmp_path / "mmimdb"
    data = root / "dataset"
    ids = [f"{i:07d}" for i in range(n)]
    for k, mid in enumerate(ids):
        genres = [MMIMDB_GENRES[k % 23], MMIMDB_GENRES[(k + 5) % 23], "News"]
        meta = {"plot": [f"Plot number {k}.", f"A much longer second plot for movie {k}."], "genres": genres}
        data.mkdir(parents=True, exist_ok=True)
        (data / f"{mid}.json").write_text(json.dumps(meta), encoding="utf-8")
        write_image(data / f"{mid}.jpeg", fmt="JPEG")
    if with_split:
        (root / "split.json").write_text(json.dumps({"train": ids[:8], "dev": ids[8:10], "test": ids[10:]}))
    return root, ids


def test_mmimdb(tmp_path):
    root, ids = make_mmimdb(tmp_path)
    tr = load_mmimdb(root, "train")
    assert tr.ids == ids[:8] and load_mmimdb(root, "val").ids == ids[8:10]
    assert load_dataset("mm-imdb", root / "dataset", "test").ids == ids[10:]  # root = dataset folder
    assert tr.task == "multilabel" and tr.num_classes == 23 and tr.metrics == ("f1_macro", "f1_micro")
    item = tr[1]
    assert item["label"].shape == (23,) and item["label"].sum() == 2
    assert item["label"][MMIMDB_GENRES.index("Comedy")] == 1 and item["label"][MMIMDB_GENRES.index("Adventure")] == 1
    assert item["text"] == "Plot number 1."
    assert load_mmimdb(root, "train", plot="longest")[1]["text"].startswith("A much longer")
    assert tr.report.notes["ignored_genre:News"] == 8
    assert np.array_equal(tr.labels[1], item["label"].numpy())
    # bad JSON names the file; empty plot is a malformed record
    (root / "dataset" / f"{ids[2]}.json").write_text("{bad json", encoding="utf-8")
    (root / "dataset" / f"{ids[3]}.json").write_text(json.dumps({"plot": [" "], "genres": ["Drama"]}))
    with pytest.raises(DatasetFormatError, match=f"{ids[2]}.json:1: invalid JSON"):
        load_mmimdb(root, "train")
    ds = load_mmimdb(root, "train", on_error="skip")
    assert ds.report.skipped == {"malformed_row": 1, "empty_text": 1} and len(ds) == 6


def test_mmimdb_seeded_split_without_split_json(tmp_path):
    root, ids = make_mmimdb(tmp_path, n=40, with_split=False)
    parts = [load_mmimdb(root, s, seed=7) for s in ("train", "val", "test")]
    sets = [set(p.ids) for p in parts]
    assert sum(len(s) for s in sets) == 40 and set().union(*sets) == set(ids)
    assert [len(s) for s in sets] == [24, 4, 12]  # 15552:2608:7799 of 40
    assert parts[0].report.details["split_source"] == "seeded(seed=7)"
    assert load_mmimdb(root, "train", seed=7).ids == parts[0].ids


# --- Hateful Memes ---------------------------------------------------------------------------
def test_hateful_memes(tmp_path):
    root = tmp_path / "hm"
    lines = [
        {"id": 42953, "img": "img/42953.png", "label": 0, "text": "its their character not their color"},
        {"id": 23058, "img": "img/23058.png", "label": 1, "text": "don't be afraid"},
    ]
    for obj in lines:
        write_image(root / obj["img"], fmt="PNG")
    (root / "train.jsonl").write_text("\n".join(json.dumps(o) for o in lines) + "\n")
    (root / "dev_seen.jsonl").write_text(json.dumps(lines[0]) + "\n{not json\n"
                                         + json.dumps({**lines[1], "label": 3}) + "\n")
    (root / "test.jsonl").write_text(json.dumps({k: v for k, v in lines[1].items() if k != "label"}) + "\n")
    tr = load_hateful_memes(root, "train")
    assert tr.task == "binary" and tr.labels.tolist() == [0, 1] and tr.ids == ["42953", "23058"]
    assert tr[1]["text"] == "don't be afraid" and tr[1]["image"].shape == (3, 8, 8)
    with pytest.raises(DatasetFormatError, match=r"dev_seen\.jsonl:2: invalid JSON"):
        load_dataset("hateful_memes", root, "val")  # 'val' → dev_seen.jsonl
    dev = load_hateful_memes(root, "val", on_error="skip")
    assert len(dev) == 1 and dev.report.skipped == {"malformed_row": 1, "unknown_class": 1}
    assert load_hateful_memes(root, "test").labels.tolist() == [-1]  # unlabelled phase-1 test
    with pytest.raises(FileNotFoundError, match="test_unseen"):
        load_hateful_memes(root, "test_unseen")


# --- Ferramenta ------------------------------------------------------------------------------
def test_ferramenta(tmp_path):
    root = tmp_path / "ferramenta"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(root / "images" / name, fmt="JPEG")
    (root / "text-image-train.csv").write_text(
        "text | label | image_path\n"
        "Cordless drill 18V | 10 | images/a.jpg\n"
        "Hammer | steel head | 2 | images/b.jpg\n", encoding="utf-8")
    (root / "text-image-val.csv").write_text(
        "Pliers|2|images/c.jpg\n"
        "Saw|7|images/c.jpg\n"
        "no separators here\n", encoding="utf-8")
    tr = load_ferramenta(root, "train")
    assert tr.classes == ["2", "10"] and tr.labels.tolist() == [1, 0]  # numeric order
    assert tr[1]["text"] == "Hammer | steel head"
    with pytest.raises(DatasetFormatError, match=r"text-image-val\.csv:2: unknown class '7'"):
        load_ferramenta(root, "val")
    va = load_dataset("ferramenta", root, "test", on_error="skip")
    assert len(va) == 1 and va.report.skipped == {"unknown_class": 1, "malformed_row": 1}


def test_dispatcher_names():
    assert list_datasets() == ["ferramenta", "food101", "hateful_memes", "mmimdb"]
    with pytest.raises(KeyError, match="known datasets"):
        load_dataset("imagenet", ".", "train")


# --- missing-modality masks ------------------------------------------------------------------
def test_masks_exact_counts_and_deterministic():
    m = make_missing_mask(1000, {"text": 0.7}, seed=1)
    assert m.mode == "text" and (~m.text).sum() == 700 and m.image.all()
    assert m == make_missing_mask(1000, {"text": 0.7}, seed=1)
    assert not np.array_equal(m.text, make_missing_mask(1000, {"text": 0.7}, seed=2).text)
    assert m.name == "text=30%" and condition_name("image", {"image": 0.7}) == "image=30%"
    im = make_missing_mask(101, 0.3, seed=0, mode="image")
    assert (~im.image).sum() == 30 and im.text.all()
    both = make_missing_mask(1000, {"both": 0.7}, seed=3)
    assert (~both.text).sum() == 350 and (~both.image).sum() == 350
    assert not (~both.text & ~both.image).any()
    assert both.name == "text=65%,image=65%"
    explicit = make_missing_mask(10, {"text": 0.5, "image": 0.5}, seed=0)
    assert explicit.mode == "both" and (explicit.text ^ explicit.image).all()
    # nested availability: a higher missing rate with the same seed drops a superset
    assert (~make_missing_mask(1000, {"text": 0.3}, seed=1).text <= ~m.text).all()
    assert make_missing_mask(5).mode == "none" and make_missing_mask(5).name == "complete"
    with pytest.raises(ValueError, match="sum to more than 1"):
        make_missing_mask(10, {"text": 0.6, "image": 0.6})
    with pytest.raises(ValueError, match="outside"):
        make_missing_mask(10, {"text": 1.5})
    with pytest.raises(ValueError, match="neither image nor text"):
        MissingModalityMask(np.array([False]), np.array([False]))


def test_condition_parsing():
    assert parse_condition("text=30%") == ("text", {"text": 0.7})
    assert parse_condition("image=100%") == ("none", {})
    assert parse_condition("complete") == ("none", {})
    mode, rates = parse_condition("text=65%,image=65%")
    assert mode == "both" and rates == pytest.approx({"text": 0.35, "image": 0.35})
    m = mask_for_condition(200, "text=30%", seed=derive_seed(0, "test"))
    assert m.availability()["text"] == pytest.approx(0.3) and m.name == "text=30%"
    assert derive_seed(0, "test") == derive_seed(0, "test") != derive_seed(0, "train")
    for bad in ("text=130%", "audio=30%", "text=20%,image=20%", "text30"):
        with pytest.raises(ValueError):
            parse_condition(bad)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_mask_save_load(tmp_path, suffix):
    m = make_missing_mask(57, {"both": 0.4}, seed=9)
    path = m.save(tmp_path / f"mask{suffix}")
    back = MissingModalityMask.load(path)
    assert back == m and back.seed == 9 and back.rates == {"both": 0.4} and back.mode == "both"
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left behind
    if suffix == ".json":
        d = json.loads(path.read_text())
        assert d["condition"] == "text=80%,image=80%" and len(d["missing"]["text"]) == 11
        d["missing"]["text"] = [99]
        path.write_text(json.dumps(d))
        with pytest.raises(ValueError, match="outside"):
            MissingModalityMask.load(path)


def test_dataset_honours_mask_and_collate(synth):
    ds = load_food101(synth.root, "test")
    mask = make_missing_mask(len(ds), {"both": 0.5}, seed=0)
    masked = apply_mask(ds, mask)
    assert ds.mask is None and masked.mask is mask
    for i in range(len(ds)):
        item = masked[i]
        assert item["has_image"] == bool(mask.image[i]) and (item["image"] is None) == (not mask.image[i])
        assert item["has_text"] == bool(mask.text[i]) and (item["text"] is None) == (not mask.text[i])
    assert sum(t is None for t in masked.texts) == (~mask.text).sum()
    gone = int(np.flatnonzero(~mask.image)[0])
    masked.records[gone] = dataclasses.replace(masked.records[gone], image="/nonexistent/x.jpg")
    assert masked[gone]["image"] is None  # not opened
    masked.records[gone] = ds.records[gone]
    batch = collate_multimodal([masked[i] for i in range(len(ds))])
    assert batch["image"].shape == (len(ds), 3, 24, 24) and batch["label"].dtype == torch.long
    assert torch.equal(batch["has_image"], torch.from_numpy(mask.image))
    assert batch["image"][~batch["has_image"]].abs().sum() == 0
    # the intended recipe path: DataLoader + collate + batch text → image
    loader = torch.utils.data.DataLoader(masked, batch_size=5, collate_fn=collate_multimodal)
    first = next(iter(loader))
    timgs = TextToImage(WordVectors.hashed(12), image_size=24, superpixel=2, max_words=4)(first["text"])
    assert timgs.shape == (5, 3, 24, 24)
    assert all((timgs[i].abs().sum() == 0) == (not first["has_text"][i]) for i in range(5))
    sub = masked.subset([1, 0])
    assert sub.ids == [ds.ids[1], ds.ids[0]] and sub.mask.text.tolist() == [mask.text[1], mask.text[0]]
    with pytest.raises(ValueError, match="mask has 3 entries"):
        apply_mask(ds, make_missing_mask(3))
    # collate for multilabel: stacked float multi-hot labels; no image at all → None
    only_text = apply_mask(ds, make_missing_mask(len(ds), {"image": 1.0}))
    b2 = collate_multimodal([only_text[0], only_text[1]])
    assert b2["image"] is None and b2["text"][0] is not None
