"""Chameleon text-as-image classifier, the multi-branch baseline and the recipe (tiny, CPU)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modalink.models import create_model
from modalink.models.image_classifier import (ChameleonClassifier, MultiBranchClassifier, classification_loss,
                                              drop_sampler)

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "chameleon"
ARCH = "test_resnet"  # a tiny timm ResNet, random weights


def _batch(b: int = 6, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    photos = torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)
    texts = torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)
    return photos, texts


# ----------------------------------------------------------------------------- models
def test_chameleon_joint_uses_only_available_inputs() -> None:
    torch.manual_seed(0)
    m = ChameleonClassifier(5, ARCH).eval()
    photos, texts = _batch()
    has_img = torch.tensor([1, 1, 0, 1, 1, 0], dtype=torch.bool)
    has_txt = torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool)
    with torch.no_grad():
        out = m(photos, texts, has_img, has_txt)
        f_photo, f_text = m.backbone(photos), m.backbone(texts)  # eval mode: per-row independent
    both = has_img & has_txt
    expected = torch.where(both[:, None], (f_photo + f_text) / 2, torch.where(has_img[:, None], f_photo, f_text))
    torch.testing.assert_close(out["logits"], m.head(expected), rtol=1e-4, atol=1e-5)
    # what a masked input contains must not matter
    with torch.no_grad():
        junk_p, junk_t = _batch(seed=1)
        out2 = m(torch.where(has_img.view(-1, 1, 1, 1), photos, junk_p),
                 torch.where(has_txt.view(-1, 1, 1, 1), texts, junk_t), has_img, has_txt)
        text_none = m(photos, None)  # no text tensor at all: the photo path only
    torch.testing.assert_close(out2["logits"], out["logits"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(text_none["logits"], m.head(f_photo), rtol=1e-4, atol=1e-5)
    assert out["has_text"].tolist() == has_txt.tolist()


def test_chameleon_backward_with_missing_modalities_and_dropout() -> None:
    torch.manual_seed(0)
    m = ChameleonClassifier(4, ARCH, drop_text=0.5, drop_image=0.3).train()
    photos, texts = _batch(8)
    y = torch.arange(8) % 4
    out = m(photos, texts, torch.tensor([1] * 7 + [0], dtype=torch.bool), torch.tensor([0] + [1] * 7, dtype=torch.bool))
    assert not bool((~out["has_image"] & ~out["has_text"]).any()), "a sample lost both inputs"
    loss = F.cross_entropy(out["logits"], y) + F.cross_entropy(out["logits_text"][out["has_text"]],
                                                               y[out["has_text"]])
    loss.backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert m.head.weight.grad.abs().sum() > 0


def test_chameleon_fused_band_and_blank_inputs() -> None:
    m = ChameleonClassifier(3, ARCH, mode="fused", band_height=8).eval()
    photos, texts = _batch(3)
    band = texts[:, :, :8]
    fused = m.fuse(photos, band, torch.tensor([True, False, True]), torch.tensor([True, True, False]))
    torch.testing.assert_close(fused[0, :, :24], photos[0, :, :24].float() / 255)
    torch.testing.assert_close(fused[0, :, 24:], band[0].float() / 255)
    assert fused[1, :, :24].abs().sum() == 0 and fused[1, :, 24:].abs().sum() > 0  # image missing
    assert fused[2, :, 24:].abs().sum() == 0  # text missing: blank band
    assert m(photos, band)["logits"].shape == (3, 3)
    with pytest.raises(ValueError, match="band"):
        m.fuse(photos, texts[:, :, :10], torch.ones(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool))


def test_modality_dropout_is_exclusive_and_matches_rates() -> None:
    torch.manual_seed(0)
    n = 20000
    ones = torch.ones(n, 2, dtype=torch.bool)  # columns: image, text
    kept = drop_sampler(0.3, 0.2)(ones)
    img, txt = kept[:, 0], kept[:, 1]
    assert not bool((~img & ~txt).any())
    assert abs((~txt).float().mean().item() - 0.3) < 0.02 and abs((~img).float().mean().item() - 0.2) < 0.02
    part = ones.clone()
    part[:10, 0] = False  # samples already missing their image keep their text
    kept = drop_sampler(0.9, 0.0)(part)
    assert bool(kept[:10, 1].all())
    with pytest.raises(ValueError):
        drop_sampler(0.7, 0.5)


def test_multi_branch_missing_text_is_a_zero_vector() -> None:
    torch.manual_seed(0)
    m = MultiBranchClassifier(4, 12, ARCH, embed_dim=16, hidden=(16,)).eval()
    photos, _ = _batch(5)
    text = torch.randn(5, 12)
    has_txt = torch.tensor([1, 0, 1, 0, 1], dtype=torch.bool)
    with torch.no_grad():
        out = m(photos, text, None, has_txt)
        zeroed = m(photos, text * has_txt[:, None].float(), None, None)
        none = m(photos, None)
    torch.testing.assert_close(out["logits"], zeroed["logits"])
    missing = ~has_txt
    torch.testing.assert_close(out["logits"][missing], none["logits"][missing])
    assert not torch.allclose(out["logits"][~missing], none["logits"][~missing])
    with pytest.raises(ValueError, match="width"):
        m(photos, torch.randn(5, 7))


def test_registry_and_losses() -> None:
    m = create_model("chameleon", num_classes=3, backbone=ARCH)
    assert isinstance(m, ChameleonClassifier)
    assert isinstance(create_model("multi_branch_classifier", num_classes=3, text_dim=8, backbone=ARCH),
                      MultiBranchClassifier)
    plain = create_model("image_classifier", num_classes=3, backbone=ARCH).eval()
    photos, _ = _batch(2)
    with torch.no_grad():
        out = plain(photos)
        manual = plain.head(plain.backbone.net((photos.float() / 255 - plain.backbone.mean) / plain.backbone.std))
    torch.testing.assert_close(out["logits"], manual)
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
    y = torch.tensor([0, 2])
    ref = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 2]) / 2
    torch.testing.assert_close(classification_loss(logits, y), ref)
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    p = torch.sigmoid(logits)
    ref = -(multi * p.log() + (1 - multi) * (1 - p).log()).mean()
    torch.testing.assert_close(classification_loss(logits, multi, multilabel=True), ref)
    with pytest.raises(ValueError, match="multilabel"):
        classification_loss(logits, multi)


# ----------------------------------------------------------------------------- recipe
@pytest.fixture(scope="module")
def recipe_modules():
    from conftest import load_script

    from modalink.classification import chameleon as core
    from modalink.classification import evaluation

    core.score = evaluation.score  # the tests below reach both through one name
    yield (core, load_script(RECIPE / "train.py"),
           load_script(RECIPE / "evaluate.py"))


def test_score_hand_checked(recipe_modules) -> None:
    core = recipe_modules[0]
    labels = np.array([0, 1, 1, 0])
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    res = core.score(labels, logits, "binary")
    assert res["accuracy"] == pytest.approx(50.0)
    # P(class 1): 0.12, 0.73, 0.27, 0.95 → positives {0.73, 0.27} vs negatives {0.12, 0.95}: 2 of 4 pairs
    assert res["auroc"] == pytest.approx(50.0)
    ml = core.score(np.array([[1, 0], [1, 1]]), np.array([[1.0, -1.0], [-1.0, 1.0]]), "multilabel")
    # predictions [[1,0],[0,1]]: class 0 tp=1 fn=1 → F1 2/3; class 1 tp=1 → F1 1
    assert ml["f1_macro"] == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert ml["f1_micro"] == pytest.approx(100 * 2 * 2 / (2 * 2 + 0 + 1))


def test_recipe_smoke_train_then_evaluate(tmp_path: Path, recipe_modules) -> None:
    core, train_script, evaluate_script = recipe_modules
    out = tmp_path / "run"
    args = ["--output-dir", str(out), "--cpu", "chameleon.backbone=test_resnet", "data.image_size=32",
            "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=10", "data.synthetic.n_test_per_class=5",
            "data.synthetic.image_size=32", "text_image.dim=12", "text_image.superpixel=4", "engine.epochs=2",
            "engine.batch_size=8", "engine.progress=false", "baseline.embed_dim=16", "baseline.hidden=[16]"]
    res = train_script.main(args)
    conds = ["complete", "text=70%", "text=30%", "text=0%", "image=30%"]
    assert res["conditions"] == conds and set(res["results"]) == {"chameleon", "multi_branch"}
    for method in res["results"].values():
        for c in conds:
            assert 0.0 <= method[c]["accuracy"] <= 100.0
    assert res["counts"]["test"] == 20
    table = (out / "results.md").read_text()
    assert "Chameleon" in table and "Multi-branch" in table and "text=30%" in table and "ceiling" in table
    assert res["ceiling"]["complete"] == 100.0 and res["ceiling"]["text=0%"] == pytest.approx(100.0)  # cue 1.0
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"] == res["results"]
    for kind in ("chameleon", "multi_branch"):
        assert (out / kind / "best_model.pt").is_file()
        assert any((out / kind / "checkpoints").iterdir())
        assert (out / kind / "model" / "model.safetensors").is_file()  # the exported model evaluate.py loads
    assert "wall" not in json.dumps(saved) and json.loads((out / "timings.json").read_text())["seconds"] >= 0
    mask = json.loads((out / "masks" / "test_text30pct.json").read_text())
    assert len(mask["missing"]["text"]) == 14 and mask["missing"]["image"] == []  # 70 % of 20 lose text

    from modalink.runs import open_run

    run = open_run(out)
    assert (run.recipe, run.methods) == ("chameleon", ["chameleon", "multi_branch"])
    assert type(run.load_network("chameleon")).__name__ == "ChameleonClassifier"
    ev = evaluate_script.main(["--run-dir", str(out), "--conditions", "complete", "text=30%", "image=50%"])
    for kind in ("chameleon", "multi_branch"):  # same weights, same masks → same figures
        for c in ("complete", "text=30%"):
            assert ev["results"][kind][c] == res["results"][kind][c]
        assert "image=50%" in ev["results"][kind]
    assert (out / "eval.md").is_file()

    # running again resumes from the last checkpoints: nothing left to train, same results
    again = train_script.main(args)
    assert again["results"] == res["results"]


def test_lazy_and_in_memory_photos_give_the_same_batches(tmp_path: Path, recipe_modules) -> None:
    core = recipe_modules[0]
    from modalink.config import load_config

    base = [f"output_dir={tmp_path}", "data.image_size=24", "data.synthetic.n_classes=2",
            "data.synthetic.n_train_per_class=6", "data.synthetic.n_test_per_class=3", "data.synthetic.image_size=32",
            "text_image.dim=12", "text_image.superpixel=4", "missing.train=text=50%"]
    lazy = core.load_data(load_config(core.ChameleonRecipeConfig, None, base + ["data.in_memory=false"]), False)
    ram = core.load_data(load_config(core.ChameleonRecipeConfig, None, base + ["data.in_memory=true"]), False)
    assert lazy.train.photos is None and ram.train.photos is not None
    assert len(lazy.train) + len(lazy.val) == 12 and int((~lazy.train.has_text).sum()) == round(len(lazy.train) / 2)
    cfg = load_config(core.ChameleonRecipeConfig, None, base)
    for kind in core.METHODS:
        _, collate, _ = core.method_collates(kind, cfg, {})
        idx = list(range(len(lazy.train)))
        a = collate([lazy.train[i] for i in idx])
        b = collate(ram.train.__getitems__(idx))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k])
        assert a["image"].shape == (len(idx), 3, 24, 24) and a["image"].dtype == torch.uint8
        if kind == "chameleon":  # missing text → a blank text image
            assert a["text_image"][~a["has_text"]].sum() == 0 and a["text_image"][a["has_text"]].sum() > 0


def test_config_errors(recipe_modules) -> None:
    from modalink.errors import UserError

    _, train_script, _ = recipe_modules
    with pytest.raises(UserError, match="methods"):
        train_script.main(["methods=[chameleon,clip]"])
    with pytest.raises(UserError, match="condition"):
        train_script.main(["missing.eval=[complete,text=130%]"])


# ----------------------------------------------------------------------------- complementary evidence
def test_complementary_setting_has_computable_ceilings(tmp_path: Path) -> None:
    from modalink.classification.synthetic_food101 import COMPLEMENTARY, generate_synthetic_food101

    made = generate_synthetic_food101(tmp_path / "c", **{**COMPLEMENTARY, "n_train_per_class": 2,
                                                           "n_test_per_class": 1, "image_size": 16})
    manifest = json.loads((made.root / "manifest.json").read_text())
    assert manifest["params"]["evidence"] == "complementary"
    assert manifest["ceilings"] == pytest.approx({"complete": 1.0, "text=30%": 0.65, "text=0%": 0.5,
                                                  "image=30%": 0.3 + 0.7 / 6, "image=0%": 1 / 6})
    assert made.ceiling(0.65, 0.65) == pytest.approx(0.3 + 0.35 * 0.5 + 0.35 / 6)
    # neither modality decides alone: every visual group has every text group and vice versa
    pairs = {(v, t) for v, t in zip(made.visual_group, made.text_group)}
    assert len(pairs) == 12 and len(set(made.visual_group)) == 6 and len(set(made.text_group)) == 2
    with pytest.raises(ValueError, match="complementary"):
        generate_synthetic_food101(tmp_path / "bad", evidence="complementary", image_text_cue=0.5)
    with pytest.raises(ValueError, match="evidence"):
        generate_synthetic_food101(tmp_path / "bad", evidence="redundant")
