"""End-to-end runs of the recipes on tiny copies of the REAL dataset layouts (not the synthetic
defaults): Chameleon on Hateful Memes, MM-IMDb, Ferramenta and UPMC Food-101; SRMM on Food-101;
recsys on MovieLens-100K and ML-1M. Each test writes a handful of samples in the release's file
format under ``tmp_path``, runs the recipe's ``train.py main([...])`` with the dataset's own
hparams file (``--data-root``), a tiny random-weight backbone and 1-2 epochs, and checks the
outputs (metric keys and ranges, run-folder files). Nothing is downloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import load_script

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"

WORDS = ["spicy", "sweet", "crispy", "salty", "fresh", "baked", "grilled", "creamy", "smoky", "tangy"]


def _image(path: Path, colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (20, 16)) -> None:
    """A small noisy RGB image in ``colour`` (format from the suffix)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour, np.int16) + rng.integers(-40, 40, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (200, 200, 40)]


def _title(c: int, i: int) -> str:
    return f"{WORDS[c]} {WORDS[(c + 3) % len(WORDS)]} dish number {i}"


# ----------------------------------------------------------------------------- dataset writers
def write_food101(root: Path, classes: tuple[str, ...] = ("apple_pie", "sushi", "tacos"), n_train: int = 8,
                  n_test: int = 3) -> Path:
    """UPMC Food-101: images/{train,test}/<class>/<class>_N.jpg + headerless texts/{part}_titles.csv."""
    (root / "texts").mkdir(parents=True)
    for part, n in (("train", n_train), ("test", n_test)):
        rows = []
        for c, name in enumerate(classes):
            for i in range(n):
                fname = f"{name}_{i}.jpg"
                _image(root / "images" / part / name / fname, COLOURS[c], seed=hash((part, c, i)) % 2**32)
                title = _title(c, i)
                if i == 0:
                    title = f'"{title}, with a comma"'  # real titles are CSV-quoted when they hold commas
                rows.append(f"{fname},{title},{name}")
        (root / "texts" / f"{part}_titles.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def write_hateful_memes(root: Path) -> Path:
    """Hateful Memes: img/<id>.png + {train,dev_seen,test_seen}.jsonl with id, img, text, label."""
    sizes = {"train": 16, "dev_seen": 6, "test_seen": 8}
    k = 0
    for split, n in sizes.items():
        lines = []
        for i in range(n):
            k += 1
            mid = f"{k:05d}"
            label = i % 2
            _image(root / "img" / f"{mid}.png", COLOURS[label], seed=k)
            lines.append(json.dumps({"id": int(mid), "img": f"img/{mid}.png", "label": label,
                                     "text": f"{WORDS[label]} meme text {WORDS[(i + 5) % 10]}"}))
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def write_mmimdb(root: Path, with_split: bool = True) -> Path:
    """MM-IMDb: [split.json +] dataset/<id>.jpeg and dataset/<id>.json (plot list, genres list)."""
    genres = [["Drama"], ["Comedy", "Romance"], ["Horror", "Thriller"], ["Drama", "Comedy"]]
    data = root / "dataset" if with_split else root
    ids = [f"{100000 + i:07d}" for i in range(20)]
    for i, mid in enumerate(ids):
        g = genres[i % len(genres)]
        _image(data / f"{mid}.jpeg", COLOURS[i % 4], seed=i, size=(18, 27))
        meta = {"plot": [f"A {WORDS[i % 4]} story about {WORDS[(i + 4) % 10]} people.", "A second plot summary."],
                "genres": g + (["News"] if i == 3 else []), "title": f"Movie {i}", "imdb_id": f"tt{mid}"}
        (data / f"{mid}.json").write_text(json.dumps(meta), encoding="utf-8")
    if with_split:
        (root / "split.json").write_text(json.dumps({"train": ids[:12], "dev": ids[12:15], "test": ids[15:]}))
    return root


def write_ferramenta(root: Path) -> Path:
    """Ferramenta: text-image-{train,val}.csv with ``text | label | image_path`` lines."""
    for part, n in (("train", 10), ("val", 3)):
        lines = []
        for c in range(3):
            for i in range(n):
                rel = f"images/{part}/{c}_{i}.jpg"
                _image(root / rel, COLOURS[c], seed=hash((part, c, i)) % 2**32)
                text = f"{WORDS[c]} tool {WORDS[c + 4]} model {i}" + (" | with a pipe" if i == 1 else "")
                lines.append(f"{text} | {c} | {rel}")
        (root / f"text-image-{part}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def write_ml100k(root: Path, n_users: int = 30, n_items: int = 40, per_user: int = 15, seed: int = 0) -> Path:
    """MovieLens-100K: u.data (tab), u.item (| with 19 genre flags, Latin-1), u.user."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    items = []
    for j in range(1, n_items + 1):
        flags = ["0"] * 19
        for g in rng.choice(19, size=1 + j % 3, replace=False):
            flags[int(g)] = "1"
        title = f"Caf\xe9 {WORDS[j % 10]} {j} ({1980 + j % 20})"
        items.append(f"{j}|{title}|01-Jan-{1980 + j % 20}||http://us.imdb.com/M/title-exact?x{j}|" + "|".join(flags))
    (root / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (root / "u.user").write_text("".join(f"{u}|{20 + u}|{'MF'[u % 2]}|other|{10000 + u}\n"
                                         for u in range(1, n_users + 1)))
    rows = []
    for u in range(1, n_users + 1):
        for j in rng.choice(n_items, size=per_user, replace=False):
            rows.append(f"{u}\t{int(j) + 1}\t{int(rng.integers(1, 6))}\t{881250949 + len(rows)}")
    (root / "u.data").write_text("\n".join(rows) + "\n")
    return root


def write_ml1m(root: Path, n_users: int = 30, n_items: int = 40, per_user: int = 15, seed: int = 1) -> Path:
    """ML-1M: ratings.dat, movies.dat, users.dat, ``::``-separated (Latin-1)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    names = ["Action", "Comedy", "Drama", "Sci-Fi", "Children's", "Film-Noir"]
    ids = [10 * j + 1 for j in range(n_items)]  # sparse raw movie ids, as in the release
    movies = [f"{mid}::M\xf6vie {WORDS[j % 10]} ({1990 + j % 10})::"
              + "|".join(names[k % 6] for k in range(j, j + 1 + j % 2)) for j, mid in enumerate(ids)]
    (root / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    (root / "users.dat").write_text("".join(f"{u}::{'MF'[u % 2]}::25::{u % 20}::{10000 + u}\n"
                                            for u in range(1, n_users + 1)))
    rows = []
    for u in range(1, n_users + 1):
        for j in rng.choice(n_items, size=per_user, replace=False):
            rows.append(f"{u}::{ids[int(j)]}::{int(rng.integers(1, 6))}::{978300760 + len(rows)}")
    (root / "ratings.dat").write_text("\n".join(rows) + "\n")
    return root


# ----------------------------------------------------------------------------- Chameleon
CHAMELEON_TINY = ["--cpu", "chameleon.backbone=test_resnet", "chameleon.pretrained=false", "data.image_size=32",
                  "text_image.dim=12", "text_image.superpixel=4", "engine.epochs=1", "engine.batch_size=8",
                  "engine.progress=false", "engine.num_workers=0", "baseline.embed_dim=16", "baseline.hidden=[16]"]
REAL_CONDITIONS = ["complete", "text=70%", "text=30%", "text=0%", "image=70%", "image=30%"]


def _check_run_folder(out: Path, methods: tuple[str, ...]) -> None:
    """config.yaml, a top-level log that lasts to the end of the run, one run folder per method."""
    assert (out / "config.yaml").is_file() and (out / "results.md").is_file()
    log = (out / "log.txt").read_text()
    assert "run folder" in log and "results written to" in log, log
    for m in methods:
        assert (out / m / "best_model.pt").is_file(), m
        assert "epoch 1/" in (out / m / "log.txt").read_text(), m


def _run_chameleon(tmp_path: Path, dataset: str, root: Path, extra: tuple[str, ...] = ()) -> tuple[dict, Path]:
    train = load_script(RECIPES / "chameleon" / "train.py")
    out = tmp_path / "run"
    res = train.main(["--dataset", dataset, "--data-root", str(root), "--output-dir", str(out), *CHAMELEON_TINY,
                      *extra])
    _check_run_folder(out, ("chameleon", "multi_branch"))
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"] == res["results"]
    assert res["conditions"] == REAL_CONDITIONS  # the dataset's hparams file was used
    assert set(res["results"]) == {"chameleon", "multi_branch"}
    assert f"{dataset} at {root}" == res["dataset"]
    return res, out


def _all_values(res: dict, metric: str) -> list[float]:
    return [res["results"][m][c][metric] for m in res["results"] for c in res["conditions"]]


@pytest.mark.parametrize("with_split", [True, False], ids=["split_json", "seeded_split"])
def test_chameleon_mmimdb_layout(tmp_path: Path, with_split: bool) -> None:
    root = write_mmimdb(tmp_path / "mmimdb", with_split)
    res, out = _run_chameleon(tmp_path, "mmimdb", root)
    assert res["task"] == "multilabel" and res["metrics"] == ["f1_macro", "f1_micro"] and res["num_classes"] == 23
    if with_split:
        assert res["counts"]["train"] == 12 and res["counts"]["test"] == 5
    for metric in ("f1_macro", "f1_micro"):
        vals = _all_values(res, metric)
        assert all(0.0 <= v <= 100.0 for v in vals), (metric, vals)
    table = (out / "results.md").read_text()
    assert "macro F1" in table and "micro F1" in table


def test_chameleon_food101_layout(tmp_path: Path) -> None:
    root = write_food101(tmp_path / "food101")
    res, _ = _run_chameleon(tmp_path, "food101", root)
    assert res["num_classes"] == 3 and res["counts"]["test"] == 9 and res["metrics"] == ["accuracy"]
    assert res["counts"]["train"] + 2 == 24  # val = round(24 * 6846/67988) = 2 rows of the train file
    assert all(0.0 <= v <= 100.0 for v in _all_values(res, "accuracy"))


# ----------------------------------------------------------------------------- SRMM
def test_srmm_food101_layout(tmp_path: Path) -> None:
    root = write_food101(tmp_path / "food101")
    train = load_script(RECIPES / "srmm" / "train.py")
    out = tmp_path / "run"
    res = train.main(["--data-root", str(root), "--output-dir", str(out), "--cpu",
                      "image_encoder.name=pixel-stats", "image_encoder.num_workers=0", "text_encoder.name=hashed-bow",
                      "text_encoder.options={dim: 64}", "prepare.progress=false", "engine.epochs=2",
                      "engine.batch_size=8", "engine.warmup_steps=0", "engine.progress=false",
                      "model.stem_dim=32", "model.trunk_hidden=[32]", "model.embed_dim=16", "baseline.hidden=[32]",
                      "baseline.embed_dim=16"])
    # the one results shape of modalink.classification (same as Chameleon's)
    assert res["conditions"] == ["complete", "text=70%", "text=30%", "text=0%"]
    assert set(res["results"]) == {"srmm", "late_fusion"} and res["counts"]["test"] == 9
    for table in (res["results"], res["other_splits"]["train"]):
        for method in table.values():
            vals = [method[c]["accuracy"] for c in res["conditions"]]
            assert len(vals) == 4 and all(0.0 <= v <= 100.0 for v in vals), vals
    _check_run_folder(out, ("srmm", "late_fusion"))
    saved_cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert saved_cfg["data"]["root"] == str(root) and saved_cfg["image_encoder"]["name"] == "pixel-stats"
    for name in ("srmm", "late_fusion"):
        assert (out / name / "best_model.pt").is_file()
        assert len((out / name / "metrics.jsonl").read_text().splitlines()) == 2
    for part in ("train", "test"):  # embeddings cached from the real files, one row per titles-CSV line
        n = 24 if part == "train" else 9
        assert np.load(out / "cache" / f"{part}_image.npy").shape[0] == n
        assert np.load(out / "cache" / f"{part}_text.npy").shape == (n, 64)


# ----------------------------------------------------------------------------- recsys
RECSYS_TINY = ["--cpu", "engine.epochs=1", "engine.batch_size=64", "engine.progress=false", "tower.embed_dim=16",
               "tower.stem_dim=32", "tower.bag_dim=16", "tower.trunk_hidden=[32]", "mf.dim=8", "media.text_kwargs={dim: 64}"]


@pytest.mark.parametrize("kind", ["ml-100k", "ml-1m"])
def test_recsys_movielens_layouts(tmp_path: Path, kind: str) -> None:
    writer = write_ml100k if kind == "ml-100k" else write_ml1m
    writer(tmp_path / "data" / kind)
    recipe = load_script(RECIPES / "recsys" / "train.py")
    out = tmp_path / "run"
    # the parent folder: read_movielens finds <root>/ml-100k or <root>/ml-1m
    res = recipe.main(["--data-root", str(tmp_path / "data"), "--output-dir", str(out), *RECSYS_TINY])
    assert res["dataset"] == kind
    split = res["split"]
    assert split["n_users"] == 30 and split["n_items"] == 40 and split["interactions"] == 30 * 15
    for name in ("config.yaml", "log.txt", "results.json", "results.md", "split.json", "item_index.npz",
                 "tower/best_model.pt", "mf/best_model.pt"):
        assert (out / name).is_file(), name
    assert "results written to" in (out / "log.txt").read_text()
    assert "epoch 1/1" in (out / "tower" / "log.txt").read_text()
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == {"modalink tower", "popularity", "BPR-MF"}
    for model, by_protocol in saved["results"].items():
        assert set(by_protocol) == {"warm", "item_cold", "user_cold"}, model
        for protocol, metrics in by_protocol.items():
            for key in ("ndcg@10", "recall@10", "coverage@10"):
                assert 0.0 <= metrics[key] <= 1.0, (model, protocol, key, metrics)
    # MovieLens items have text (title) and genres, no image: only those subsets are evaluated
    missing = saved["missing_modalities_item_cold"]
    assert set(missing) == {"text", "genres"}


def test_chameleon_every_test_image_missing_is_refused_before_training(tmp_path: Path) -> None:
    """Refused in one line before either model trains, not with a KeyError after training."""
    import shutil

    from modalink.errors import UserError

    root = write_food101(tmp_path / "food101")
    shutil.rmtree(root / "images" / "test")
    train = load_script(RECIPES / "chameleon" / "train.py")
    out = tmp_path / "run"
    with pytest.raises(UserError, match="test split has no usable labelled samples"):
        train.main(["--dataset", "food101", "--data-root", str(root), "--output-dir", str(out), *CHAMELEON_TINY])
    assert not (out / "chameleon" / "best_model.pt").exists() and not (out / "results.json").exists()
