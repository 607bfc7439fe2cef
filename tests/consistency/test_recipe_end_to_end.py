"""Recipes end to end on layouts and media made to fail: a bad Chameleon layout, the Hateful Memes
layout, an item model of other weights, a WAV rewritten in place."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script
from modalink.errors import run_cli
from test_fame_prepare import _copy_raw_and_cache, _wav, prepare_mod, prepared, read_csv  # noqa: F401
from test_chameleon import recipe_modules  # noqa: F401 - a fixture
from test_recipes_real_layouts import (CHAMELEON_TINY, RECIPES, _all_values, _run_chameleon, write_ferramenta,
                                       write_hateful_memes)
from test_user_errors import LAYOUTS
from test_verify_contract import (Exported, InputContractError, _contract, _embedder, _settings,  # noqa: F401
                                  check_model_inputs, checkpoints)


@pytest.mark.parametrize("dataset", sorted(LAYOUTS))
def test_chameleon_on_a_bad_layout_ends_in_one_error_line_exit_2(dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MODALINK_DEBUG", raising=False)
    path, _ = LAYOUTS[dataset](tmp_path / dataset, "bad_label")
    train = load_script(RECIPES / "chameleon" / "train.py")
    out = tmp_path / "run"
    capsys.readouterr()
    code = run_cli(train.main, ["--dataset", dataset, "--data-root", str(tmp_path / dataset), "--output-dir",
                                str(out), *CHAMELEON_TINY])
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("error:")]  # train.py announces itself first
    assert code == 2 and len(errors) == 1 and errors[0] == err[-1] and errors[0].startswith(f"error: {path}"), err
    assert not (out / "chameleon" / "best_model.pt").exists()


def test_chameleon_hateful_memes_layout(tmp_path: Path) -> None:
    root = write_hateful_memes(tmp_path / "hateful_memes")
    # 2 DataLoader workers: the lazy (decode on the fly) photo path of real runs, in worker processes
    res, out = _run_chameleon(tmp_path, "hateful_memes", root, ("engine.num_workers=2",))
    assert res["task"] == "binary" and res["metrics"] == ["auroc", "accuracy"]
    assert res["counts"]["train"] == 16 and res["counts"]["test"] == 8 and res["num_classes"] == 2
    for metric in ("auroc", "accuracy"):
        vals = _all_values(res, metric)
        assert len(vals) == 12 and all(0.0 <= v <= 100.0 for v in vals), (metric, vals)
    assert "AUROC" in (out / "results.md").read_text()
    metrics = [json.loads(x) for x in (out / "chameleon" / "metrics.jsonl").read_text().splitlines()]
    assert all("val/auroc" in m for m in metrics), "validation (dev_seen) AUROC not logged"


def test_other_weights_refused_naming_both_sides_and_the_override(checkpoints):
    trained = _settings(voice_weights=str(checkpoints["a"]))
    emb_a = _embedder(trained)
    model = Exported(_contract(trained, emb_a))
    emb_b = _embedder(_settings(voice_weights=str(checkpoints["b"])))
    with pytest.raises(InputContractError) as info:
        check_model_inputs(model, emb_b, "runs/x/v1_English/model")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("runs/x/v1_English/model (voice input)")
    assert msg.count("embedding_model.ckpt blake2b:") >= 2 and "--allow-encoder-mismatch" in msg
    # the same bytes elsewhere (another machine's copy) are the same weights
    assert check_model_inputs(model, _embedder(_settings(voice_weights=str(checkpoints["copy"])))) == []
    # random weights where the model was trained on a checkpoint: refused as well
    with pytest.raises(InputContractError, match="random_weights False vs True"):
        check_model_inputs(model, _embedder(_settings(random_weights=True)))
    # with the override: no error, one line per differing input, for the caller to show
    lines = check_model_inputs(model, emb_b, "m", allow_mismatch=True)
    assert len(lines) == 1 and lines[0].startswith("m (voice input)") and "make them with" not in lines[0]


def test_wav_rewritten_in_place_with_same_size_and_mtime_is_embedded_again(prepared, tmp_path):
    """The raw-media cache is content-checked: other samples in a file of the same size and
    mtime give another row identity, so the file is embedded again, not served from the cache."""
    import os

    root, _, argv = _copy_raw_and_cache(prepared, tmp_path)
    wav = root / "mavceleb_v1_test" / "voices" / "English" / "00001.wav"
    st = wav.stat()
    _wav(wav, seed=999)
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert wav.stat().st_size == st.st_size and wav.stat().st_mtime_ns == st.st_mtime_ns
    run = tmp_path / "run"
    assert prepare_mod.main([*argv, "--parts", "test", "--run-dir", str(run)]) == 0
    ex = json.loads((run / "summary.json").read_text())["extraction"]
    assert ex["test_voices"]["extracted"] == 1 and ex["test_voices"]["cached"] == 5
    rel = "preExtracted_vggFace_utteranceLevel_Features/v1/English/English_voices_test.csv"
    old, new = read_csv(prepared["out"] / rel), read_csv(tmp_path / "out" / rel)
    np.testing.assert_array_equal(new[[0, 2]], old[[0, 2]])
    assert not np.allclose(new[1], old[1])


def test_chameleon_reads_the_text_on_complementary_data(tmp_path: Path, recipe_modules) -> None:
    """Classes need both modalities (no text: at most 50 %): the trained network must use the text
    image, i.e. be clearly better with it than without it, and keep the photo-only ceiling."""
    _, train_script, _ = recipe_modules
    args = ["--output-dir", str(tmp_path / "run"), "--cpu", "--methods", "chameleon",
            "chameleon.backbone=test_resnet", "data.image_size=32", "data.synthetic.evidence=complementary",
            "data.synthetic.title_visual_hint=0", "data.synthetic.image_text_cue=0", "data.synthetic.image_difficulty=0",
            "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=40", "data.synthetic.n_test_per_class=20",
            "data.synthetic.image_size=32", "text_image.dim=12", "text_image.superpixel=4",
            "text_image.layout=tiles", "engine.epochs=6", "engine.batch_size=16", "engine.lr=0.003",
            "engine.progress=false", "missing.eval=[complete,text=0%]"]
    res = train_script.main(args)["results"]["chameleon"]
    assert res["complete"]["accuracy"] >= res["text=0%"]["accuracy"] + 25.0, res
    assert res["text=0%"]["accuracy"] >= 35.0, res  # the photo alone still decides its half


def test_chameleon_ferramenta_layout(tmp_path: Path) -> None:
    root = write_ferramenta(tmp_path / "ferramenta")
    res, out = _run_chameleon(tmp_path, "ferramenta", root)
    assert res["task"] == "multiclass" and res["metrics"] == ["accuracy"] and res["num_classes"] == 3
    assert res["counts"]["test"] == 9 and res["counts"]["train"] == 27  # 30 train rows, 10 % held out for validation
    vals = _all_values(res, "accuracy")
    assert all(0.0 <= v <= 100.0 for v in vals)
