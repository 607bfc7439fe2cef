"""SRMM recipe: text encoders, embedding caches, extraction, switching, masks, late fusion, smoke run."""
from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modalink.data.embedding_cache import file_list_hash
from modalink.encoders import PixelStats
from modalink.classification.missing import derive_seed, mask_for_condition
from modalink.errors import UserError, run_cli
from modalink.models import create_model
from modalink.text.word_vectors import hashed_vectors, tokenize
from modalink.text.encoders import HashedBagOfWords, create_text_encoder, list_text_encoders

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "srmm"

from conftest import load_script  # noqa: E402

from modalink.classification import embeddings as srmm_data  # noqa: E402
from modalink.classification import image_features as srmm_features  # noqa: E402
from modalink.classification import srmm as srmm_core  # noqa: E402
from modalink.classification.conditions import condition_mask, text_condition  # noqa: E402
from modalink.classification.datasets import EmbeddingSet, collate_embeddings  # noqa: E402
from modalink.models.modality_sampling import SubsetSampler  # noqa: E402


# ----------------------------------------------------------------------------- text encoders
def test_hashed_bow_matches_naive_reference():
    enc = HashedBagOfWords(dim=64, ngrams=2, seed=3)
    text = "Apple pie, apple PIE recipe"
    # naive: count n-grams of the tokenised text, signed bucket sums of 1 + log(count), L2
    words = tokenize(text)
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    ref = np.zeros(64)
    for g in set(grams):
        j, s = enc.bucket(g)
        ref[j] += s * (1 + np.log(grams.count(g)))
    ref /= np.linalg.norm(ref)
    out = enc.encode([text, "apple pie apple pie recipe", None, ""])
    assert out.dtype == np.float32 and out.shape == (4, 64)
    np.testing.assert_allclose(out[0], ref, atol=1e-6)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)  # case and punctuation do not matter
    assert not out[2].any() and not out[3].any()  # missing text → zero row
    # stable across instances, different across seeds
    np.testing.assert_array_equal(HashedBagOfWords(64, 2, 3).encode([text]), out[:1])
    assert not np.allclose(HashedBagOfWords(64, 2, 4).encode([text]), out[:1])


def test_word_vectors_mean_and_registry():
    enc = create_text_encoder("word-vectors", dim=16, seed=1)
    out = enc.encode(["red soup", "", "soup"])
    ref = hashed_vectors(["red", "soup"], 16, 1).mean(0)
    np.testing.assert_allclose(out[0], ref / np.linalg.norm(ref), atol=1e-6)
    assert not out[1].any()
    assert {"hashed-bow", "word-vectors", "sentence-transformers"} <= set(list_text_encoders())
    with pytest.raises(KeyError, match="known text encoders"):
        create_text_encoder("nope")


def test_sentence_transformers_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # "not installed"
    with pytest.raises(ImportError, match="pip install sentence-transformers"):
        create_text_encoder("sentence-transformers/all-MiniLM-L6-v2")

    calls = {}

    class FakeST:
        def __init__(self, name, **kw):
            calls["init"] = (name, kw)

        def get_sentence_embedding_dimension(self):
            return 3

        def encode(self, texts, **kw):
            calls["encode"] = kw
            return np.ones((len(texts), 3))

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeST))
    enc = create_text_encoder("sentence-transformers/all-MiniLM-L6-v2")
    out = enc.encode(["a", None])
    assert calls["init"] == ("sentence-transformers/all-MiniLM-L6-v2", {"device": None, "local_files_only": True})
    assert calls["encode"]["normalize_embeddings"] is True
    assert out.shape == (2, 3) and out[0].sum() == 3 and not out[1].any()
    assert enc.config()["model"] == "sentence-transformers/all-MiniLM-L6-v2"


# ----------------------------------------------------------------------------- extraction
def _tiny_cfg(tmp_path, *extra):
    from modalink.config import load_config

    return load_config(srmm_core.SRMMConfig, RECIPE / "hparams" / "default.yaml", [
        f"output_dir={tmp_path / 'run'}", "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=10",
        "data.synthetic.n_test_per_class=4", "data.synthetic.image_size=32", "data.val_fraction=0.2",
        "prepare.progress=false", "prepare.shard_size=16", "text_encoder.options={dim: 64}", *extra])


def test_extraction_on_generated_data_and_stale_image_cache(tmp_path, caplog):
    cfg = _tiny_cfg(tmp_path)
    data = srmm_data.prepare_all(cfg, tmp_path / "run", progress=False)
    assert data.num_classes == 4 and data.dims == {"image": PixelStats().output_dim, "text": 64}
    assert data.parts["train"].image.shape == (40, data.dims["image"])
    n_train, n_val = len(data.rows["train"][1]), len(data.rows["val"][1])
    assert (n_train, n_val) == (32, 8) and len(data.rows["test"][1]) == 16
    assert not set(data.rows["train"][1]) & set(data.rows["val"][1])
    # the rows follow the loader's order: re-encoding a sample's own files gives its cached row
    rec = srmm_data.load_records(data.root, "test")
    i = 5
    np.testing.assert_allclose(data.parts["test"].image[i],
                               PixelStats().features(Image.open(rec.image_paths[i])), atol=1e-6)
    np.testing.assert_allclose(data.parts["test"].text[i], create_text_encoder("hashed-bow", dim=64).encode(
        [rec.texts[i]])[0], atol=1e-6)
    # touching one test image makes the test image cache stale (only that one is rebuilt)
    st = os.stat(rec.image_paths[0])
    os.utime(rec.image_paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    caplog.set_level("INFO", logger="modalink.data.embedding_cache")
    caplog.clear()  # earlier tests may have left the logger at INFO: count only the rerun
    srmm_data.prepare_all(cfg, tmp_path / "run", progress=False)
    built = [r.getMessage() for r in caplog.records if "building" in r.getMessage()]
    assert len(built) == 1 and built[0].startswith("test_image") and "source data changed" in built[0]


def test_timm_image_features_random_weights(tmp_path):
    paths = []
    for k, colour in enumerate([(255, 0, 0), (0, 0, 255), (255, 0, 0)]):
        p = tmp_path / f"{k}.jpg"
        Image.new("RGB", (40, 30), colour).save(p)
        paths.append(p)
    enc = srmm_features.create_image_features("timm/test_resnet", pretrained=False, seed=0)
    out = enc.encode_paths(paths, batch_size=2)
    assert out.shape == (3, enc.dim) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], out[2], atol=1e-5)
    again = srmm_features.create_image_features("timm/test_resnet", pretrained=False, seed=0)
    np.testing.assert_allclose(again.encode_paths(paths[:1]), out[:1], atol=1e-5)  # seeded random weights
    assert enc.config()["weights"] == "random (seed 0)" and enc.config()["name"] == "timm/test_resnet"
    with pytest.raises(ValueError, match=r"bad\.jpg: cannot decode the image"):
        (tmp_path / "bad.jpg").write_bytes(b"not an image")
        enc.encode_paths([tmp_path / "bad.jpg"])


def test_pixel_stats_is_an_encoder_of_the_one_registry(tmp_path):
    from modalink.encoders import create_encoder, list_encoders

    assert "pixel-stats" in list_encoders()
    paths = []
    for k, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        paths.append(tmp_path / f"{k}.png")
        Image.new("RGB", (40, 30), colour).save(paths[-1])
    feats = srmm_features.create_image_features("pixel-stats", size=32, thumb=4, cells=4)
    out = feats.encode_paths(paths, batch_size=2)
    enc = PixelStats(size=32, thumb=4, cells=4)
    np.testing.assert_array_equal(out, np.stack([enc.features(Image.open(p).convert("RGB")) for p in paths]))
    assert feats.config()["options"]["size"] == 32 and feats.config()["weights"] == "none"
    with pytest.raises(ValueError, match="no weights"):
        create_encoder("pixel-stats", weights="x.pt")
    with pytest.raises(KeyError, match="pixel-stats"):
        srmm_features.create_image_features("pixel_stat")


def test_pixel_stats_separates_colours():
    enc = PixelStats()
    red, blue = Image.new("RGB", (50, 50), (200, 30, 30)), Image.new("RGB", (50, 50), (30, 30, 200))
    fr, fb = enc.features(red), enc.features(blue)
    assert fr.shape == (enc.output_dim,) and np.isfinite(fr).all()
    assert np.linalg.norm(fr - fb) > 1.0
    np.testing.assert_array_equal(fr, enc.features(red))


# ----------------------------------------------------------------------------- switching
# (the strategies themselves and MissingModalityModule's use of them: tests/test_modality_sampling.py)
def test_switching_config_builds_the_sampler(tmp_path):
    from modalink.errors import UserError

    cfg = _tiny_cfg(tmp_path, "model.switching=alternate", "model.modality_subsets={image: 1, text: 0, image+text: 2}")
    module = srmm_core.build_srmm(cfg, {"image": 4, "text": 3}, 3)
    sw = module.sampler
    assert isinstance(sw, SubsetSampler) and sw.mode == "alternate" and sw.draw_on_cpu
    assert sw.modalities == ("image", "text") and sw.names == ["image", "text", "image+text"]
    module.train()
    batch = {"image": torch.randn(4, 4), "text": torch.randn(4, 3), "label": torch.tensor([0, 1, 2, 0]),
             "has_image": torch.ones(4, dtype=torch.bool), "has_text": torch.ones(4, dtype=torch.bool)}
    masks = [module.run(batch)["mask"][0].tolist() for _ in range(3)]
    assert masks == [[True, False], [True, True], [True, False]]  # text (probability 0) skipped
    assert srmm_core.build_srmm(_tiny_cfg(tmp_path, "model.switching=none"), {"image": 4, "text": 3}, 3).sampler is None
    assert srmm_core.wrap("late_fusion", module.network, cfg).sampler is None
    with pytest.raises(UserError, match="model.switching: 'sometimes' is not one of .*'per_sample', 'per_batch', "
                                        "'alternate', 'none'"):
        _tiny_cfg(tmp_path, "model.switching=sometimes")
    assert srmm_core.SWITCHING == (*SubsetSampler.MODES, "none")  # the config's choices are the sampler's modes


# ----------------------------------------------------------------------------- masks
def test_text_masks_follow_the_shared_protocol():
    n = 101
    for rate, cond in ((1.0, "complete"), (0.7, "text=70%"), (0.3, "text=30%"), (0.0, "text=0%")):
        assert text_condition(rate) == cond
        m = condition_mask(n, "test", cond, seed=0).text
        ref = mask_for_condition(n, cond, seed=derive_seed(0, "test", cond)).text
        np.testing.assert_array_equal(m, ref)
        assert m.sum() == int(np.floor(rate * n + 0.5))
    assert not np.array_equal(condition_mask(n, "train", "text=30%", 0).text, condition_mask(n, "test", "text=30%", 0).text)


def test_embedding_set_text_mask_view():
    ds = EmbeddingSet(np.ones((4, 2)), np.ones((4, 3)), np.arange(4), has_text=[1, 1, 0, 1])
    view = ds.with_mask(has_text=np.array([1, 0, 1, 1], bool))
    assert view.has_text.tolist() == [True, False, False, True]
    assert ds.has_text.tolist() == [True, True, False, True]
    batch = collate_embeddings(view.__getitems__([1, 3]))
    assert batch["image"].shape == (2, 2) and batch["has_text"].tolist() == [False, True]


def test_late_fusion_missing_text_is_a_zero_vector():
    torch.manual_seed(0)
    for fusion in ("concat", "mlp", "mean"):
        m = create_model("late_fusion", input_dims={"image": 4, "text": 3}, embed_dim=5, hidden=(6,),
                         num_classes=3, fusion=fusion).eval()
        x, t = torch.randn(4, 4), torch.randn(4, 3)
        present = torch.tensor([True, False, True, False])
        out = m({"image": x, "text": t}, {"text": present})
        ref = m({"image": x, "text": t * present[:, None]})
        torch.testing.assert_close(out["logits"], ref["logits"])
        assert out["mask"][:, 1].tolist() == present.tolist()
    with pytest.raises(ValueError, match="fusion"):
        create_model("late_fusion", input_dims={"image": 4}, num_classes=2, fusion="sum")


# ----------------------------------------------------------------------------- smoke run
def test_two_epoch_smoke_run_and_reevaluation(tmp_path):
    train = load_script(RECIPE / "train.py")  # unique names: other recipes
    evaluate = load_script(RECIPE / "evaluate.py")  # have train.py too
    out = tmp_path / "run"
    args = ["--output-dir", str(out), "--cpu", "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=12",
            "data.synthetic.n_test_per_class=4", "data.synthetic.image_size=32", "prepare.progress=false",
            "engine.epochs=2", "engine.batch_size=16", "engine.progress=false", "text_encoder.options={dim: 64}",
            "model.stem_dim=32", "model.trunk_hidden=[32]", "model.embed_dim=16", "baseline.hidden=[32]",
            "baseline.embed_dim=16"]
    res = train.main(args)
    assert res["conditions"] == ["complete", "text=70%", "text=30%", "text=0%"]
    assert set(res["results"]) == {"srmm", "late_fusion"} and res["split"] == "test"
    assert set(res["other_splits"]) == {"train"} and res["counts"]["test"] == 16
    for name in ("srmm", "late_fusion"):
        assert (out / name / "best_model.pt").is_file() and (out / name / "model" / "config.json").is_file()
        assert len((out / name / "metrics.jsonl").read_text().splitlines()) == 2
    md = (out / "results.md").read_text()
    assert "SRMM (arXiv 2408.07445) | 94.6 | 84.8" in md and "ViLT (Ma et al. 2022) | 91.9 | 65.9" in md
    again = evaluate.main([str(out), "--out", str(tmp_path / "re")])
    assert again["results"] == res["results"]
    # other data in the same folder is refused before any embedding is extracted
    titles = out / "synthetic_data" / "texts" / "test_titles.csv"
    titles.write_text(titles.read_text().replace(",", ", changed", 1))
    caches = {p.name: p.read_bytes() for p in (out / "cache").iterdir() if p.is_file()}
    with pytest.raises(UserError, match="data changed"):
        train.main(args)
    assert {p.name: p.read_bytes() for p in (out / "cache").iterdir() if p.is_file()} == caches


# ----------------------------------------------------------------------------- generator options
def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def test_generator_options_off_keep_the_default_output(tmp_path):
    from modalink.classification.synthetic_food101 import generate_synthetic_food101

    kw = dict(n_classes=4, n_train_per_class=3, n_test_per_class=1, image_size=32)
    a = generate_synthetic_food101(tmp_path / "a", **kw)
    b = generate_synthetic_food101(tmp_path / "b", title_visual_hint=0.0, image_difficulty=0.0,
                                   image_text_cue=0.0, **kw)
    assert _tree(a.root) == _tree(b.root)
    assert set(a.params) == {"n_classes", "n_train_per_class", "n_test_per_class", "image_size", "seed",
                             "n_text_groups", "words_per_group"}
    assert a.image_only_ceiling == 0.5 and a.text_only_ceiling == 0.5
    c = generate_synthetic_food101(tmp_path / "c", image_difficulty=0.5, image_text_cue=0.6,
                                   title_visual_hint=0.8, **kw)
    man = json.loads((c.root / "manifest.json").read_text())
    assert man["params"]["image_difficulty"] == 0.5 and man["params"]["image_text_cue"] == 0.6
    assert man["image_only_ceiling"] == pytest.approx(0.6 + 0.4 / 2) == c.image_only_ceiling
    assert man["text_only_ceiling"] == pytest.approx(0.8 + 0.2 / 2) == c.text_only_ceiling
    assert _tree(c.root)["texts/test_titles.csv"] != _tree(a.root)["texts/test_titles.csv"]
    for bad in ({"image_difficulty": 1.5}, {"image_text_cue": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            generate_synthetic_food101(tmp_path / "bad", **kw, **bad)


def test_image_text_cue_stripes_show_the_text_group():
    from modalink.classification.synthetic_food101 import _draw_image

    rng = np.random.default_rng(0)
    for t, axis in ((0, 1), (1, 0)):  # t=0: stripes across x (vertical), t=1: across y (horizontal)
        plain, cue = [], []
        for _ in range(8):
            state = rng.bit_generator.state
            img = np.asarray(_draw_image(2, 5, 64, rng, 0.0, t, 2), dtype=np.float64).mean(2)
            rng.bit_generator.state = state  # the same photo without the texture
            ref = np.asarray(_draw_image(2, 5, 64, rng, 0.0), dtype=np.float64).mean(2)
            g = np.abs(np.diff(img, axis=axis)).sum(), np.abs(np.diff(img, axis=1 - axis)).sum()
            g_ref = np.abs(np.diff(ref, axis=axis)).sum(), np.abs(np.diff(ref, axis=1 - axis)).sum()
            cue.append(g[0] - g[1])
            plain.append(g_ref[0] - g_ref[1])
        # the texture adds contrast across the stripes only: along `axis`, not along the other one
        assert np.mean(cue) - np.mean(plain) > 3 * np.std(plain) + 1000, (t, cue, plain)


def _centroid_accuracy(feats, labels):
    """Leave-one-out nearest-centroid accuracy."""
    correct = 0
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        cents = np.stack([feats[keep & (labels == c)].mean(0) for c in np.unique(labels)])
        correct += int(np.argmin(((cents - feats[i]) ** 2).sum(1)) == labels[i])
    return correct / len(labels)


def test_image_difficulty_makes_the_photo_harder_to_read():
    from modalink.classification.synthetic_food101 import _draw_image

    enc = PixelStats(size=32, thumb=4, cells=4)
    labels = np.repeat(np.arange(5), 16)
    acc = {}
    for d in (0.0, 1.0):
        rng = np.random.default_rng(1)
        feats = np.stack([enc.features(_draw_image(int(v), 5, 32, rng, d)) for v in labels])
        acc[d] = _centroid_accuracy(feats, labels)
    assert acc[0.0] >= 0.8 and acc[1.0] <= acc[0.0] - 0.2, acc


# ----------------------------------------------------------------------------- paths
def test_file_list_hash_relative_and_absolute_paths_agree(tmp_path, monkeypatch):
    """Relative paths are read as open() reads them (from the working folder), never joined to a
    relative root a second time (the bug that broke the SRMM quick start)."""
    img = tmp_path / "runs" / "data" / "images" / "a.jpg"
    img.parent.mkdir(parents=True)
    img.write_bytes(b"x")
    ref = file_list_hash([img], tmp_path / "runs" / "data")
    monkeypatch.chdir(tmp_path)
    assert file_list_hash(["runs/data/images/a.jpg"], "runs/data") == ref
    assert file_list_hash([img], "runs/data") == ref
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert file_list_hash(["../runs/data/images/a.jpg"], "../runs/data") == ref
    with pytest.raises(FileNotFoundError, match="runs/data/images/a.jpg"):
        file_list_hash(["runs/data/images/a.jpg"], "../runs/data")  # relative to here: absent


TINY_RUN = ["--cpu", "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=10",
            "data.synthetic.n_test_per_class=3", "data.synthetic.image_size=32", "prepare.progress=false",
            "engine.epochs=1", "engine.batch_size=16", "engine.progress=false", "text_encoder.options={dim: 32}",
            "model.stem_dim=16", "model.trunk_hidden=[16]", "model.embed_dim=8", "baseline.hidden=[16]",
            "baseline.embed_dim=8"]


def test_commands_take_relative_paths_from_any_folder(tmp_path, monkeypatch):
    train = load_script(RECIPE / "train.py")
    prepare = load_script(RECIPE / "prepare.py")
    evaluate = load_script(RECIPE / "evaluate.py")
    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    monkeypatch.chdir(work)
    res = train.main(["--output-dir", "runs/srmm", *TINY_RUN])  # relative output, synthetic data under it
    run = work / "runs" / "srmm"
    assert (run / "results.md").is_file() and (run / "srmm" / "best_model.pt").is_file()
    import yaml

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["output_dir"] == str(run)  # recorded absolute: the run folder works from anywhere
    # from another folder: a relative --data-root and --output-dir, then evaluate a relative run folder
    monkeypatch.chdir(other)
    prepare.main(["--data-root", "../work/runs/srmm/synthetic_data", "--output-dir", "prep",
                  "image_encoder.name=pixel-stats", "text_encoder.name=hashed-bow",
                  "text_encoder.options={dim: 32}", "prepare.progress=false"])
    assert (other / "prep" / "cache" / "test_image.npy").is_file()
    saved = yaml.safe_load((other / "prep" / "config.yaml").read_text())
    assert saved["data"]["root"] == str(work / "runs" / "srmm" / "synthetic_data")
    again = evaluate.main(["../work/runs/srmm", "--out", "re"])
    assert again["results"] == res["results"] and (other / "re" / "results.md").is_file()
    # and an absolute run folder, from a third place
    monkeypatch.chdir(tmp_path)
    assert evaluate.main([str(run), "--out", "re2"])["results"] == res["results"]


def test_bad_paths_end_in_one_message_before_anything_is_written(tmp_path, monkeypatch, capsys):
    train = load_script(RECIPE / "train.py")
    evaluate = load_script(RECIPE / "evaluate.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODALINK_DEBUG", raising=False)
    assert run_cli(train.main, ["--data-root", "no/such/food101", "--output-dir", "out"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # after the command's first progress line
    assert len(errors) == 1 and errors[0].startswith("error: --data-root ") and str(tmp_path / "no/such/food101") in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    assert run_cli(evaluate.main, ["runs/nothing"]) == 2
    assert "run folder runs/nothing does not exist" in capsys.readouterr().err
    assert run_cli(train.main, ["--output-dir", "out", "image_encoder.name=nope"]) == 2  # a user error too
    err = capsys.readouterr().err
    assert "image_encoder.name: unknown image encoder 'nope'" in err and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- missing weights
@pytest.fixture
def hub(monkeypatch):
    """Online mode with a fake Hugging Face hub: no socket may be opened, no file downloaded;
    ``hub.reachable`` decides what the one metadata probe answers."""
    import socket

    import huggingface_hub
    import timm.models._hub as timm_hub

    for k in ("MODALINK_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(k, raising=False)

    def no_socket(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    state = types.SimpleNamespace(reachable=False, probes=[], downloads=[])

    def metadata(url, timeout=None, **kw):
        state.probes.append((url, timeout))
        if not state.reachable:
            raise ConnectionError("[Errno -2] Name or service not known")
        return types.SimpleNamespace()

    def download(*a, **k):
        state.downloads.append((a, k))
        from huggingface_hub.errors import LocalEntryNotFoundError

        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(timm_hub, "hf_hub_download", download)
    return state


def test_missing_timm_weights_online_fail_fast_with_one_message(hub):
    from modalink.encoders import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError) as info:
        srmm_features.create_image_features("timm/test_resnet", pretrained=True,
                                            weights_option="image_encoder.weights")
    msg = str(info.value)
    assert len(hub.probes) == 1 and hub.probes[0][1] <= 10 and not hub.downloads  # one quick probe, no retries
    assert "timm/test_resnet.r160_in1k" in hub.probes[0][0]
    target = Path(os.environ["MODALINK_HOME"]) / "weights" / "timm" / "test_resnet" / "model.safetensors"
    assert "cannot be reached" in msg and "Name or service not known" in msg
    assert f"put it at:      {target}" in msg  # the exact place
    assert "image_encoder.weights=/path/to/model.safetensors" in msg  # the real setting
    assert "image_encoder.pretrained=false" in msg and "--" not in msg
    # the probe answers but the download fails: the same message, not the hub's traceback
    hub.reachable = True
    with pytest.raises(WeightsNotFoundError, match="the download failed") as info:
        srmm_features.create_image_features("timm/test_resnet", pretrained=True,
                                            weights_option="image_encoder.weights")
    assert hub.downloads and "image_encoder.weights=" in str(info.value)


def test_missing_timm_weights_offline_names_the_setting(monkeypatch, hub):
    from modalink.encoders import WeightsNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as info:
        srmm_features.create_image_features("timm/test_resnet", pretrained=True,
                                            weights_option="image_encoder.weights")
    msg = str(info.value)
    assert "offline mode forbids downloading" in msg and not hub.probes
    assert "image_encoder.weights=" in msg and "--*-weights" not in msg


def test_found_weights_in_the_named_place_need_no_network(tmp_path, hub):
    import timm
    from safetensors.torch import save_file

    target = Path(os.environ["MODALINK_HOME"]) / "weights" / "timm" / "test_resnet" / "model.safetensors"
    target.parent.mkdir(parents=True)
    save_file(timm.create_model("test_resnet", num_classes=0).state_dict(), str(target))
    enc = srmm_features.create_image_features("timm/test_resnet", pretrained=True)
    assert enc.encoder.weights_path == str(target) and not hub.probes


def test_train_with_missing_weights_writes_nothing(tmp_path, monkeypatch, capsys, hub):
    train = load_script(RECIPE / "train.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODALINK_DEBUG", raising=False)
    code = run_cli(train.main, ["--output-dir", "out", "image_encoder.name=timm/test_resnet", *TINY_RUN])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # after the command's first progress line
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: timm/test_resnet: pretrained weights not found")
    assert "image_encoder.weights=" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # no half-made run folder
    assert run_cli(train.main, ["--output-dir", "out", "image_encoder.name=timm/test_resnet",
                                "image_encoder.weights=w/nope.safetensors", *TINY_RUN]) == 2
    err = capsys.readouterr().err
    assert f"weights path {tmp_path / 'w' / 'nope.safetensors'}" in err and "image_encoder.weights=" in err


def test_missing_sentence_transformer_online_fail_fast(monkeypatch, hub):
    from modalink.encoders import WeightsNotFoundError

    class NeverST:
        def __init__(self, *a, **k):
            raise AssertionError("SentenceTransformer must not be called when the hub is unreachable")

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=NeverST))
    cfg = _tiny_cfg(Path("unused"), "text_encoder.name=sentence-transformers/all-MiniLM-L6-v2")
    cfg.text_encoder.options = {}
    with pytest.raises(WeightsNotFoundError) as info:
        srmm_core.build_text_encoder(cfg)
    msg = str(info.value)
    assert len(hub.probes) == 1 and "sentence-transformers/all-MiniLM-L6-v2" in hub.probes[0][0]
    assert "text_encoder.name=st:/path/to/all-MiniLM-L6-v2" in msg and "text_encoder.name=hashed-bow" in msg
    assert os.environ["HF_HOME"] in msg  # where the hub cache lives
