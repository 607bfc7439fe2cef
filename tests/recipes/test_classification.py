"""modalink.classification: condition vocabulary, the one results shape, the run contract and the
export → evaluate.py round trip of the SRMM recipe (tiny, CPU)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_script
from modalink.classification import (EmbeddingSet, MissingModalityModule, collate_embeddings, evaluate_conditions,
                                     format_table, parse_condition, text_condition)
from modalink.classification.conditions import check_conditions, condition_shares, mask_file_name
from modalink.models import create_model

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "srmm"
TINY = ["--cpu", "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=8", "data.synthetic.n_test_per_class=3",
        "data.synthetic.image_size=32", "prepare.progress=false", "engine.epochs=1", "engine.batch_size=16",
        "engine.progress=false", "text_encoder.options={dim: 32}", "model.stem_dim=16", "model.trunk_hidden=[16]",
        "model.embed_dim=8", "baseline.hidden=[16]", "baseline.embed_dim=8"]


def test_condition_vocabulary() -> None:
    assert parse_condition("complete") == ("none", {})
    assert parse_condition("text=30%") == ("text", {"text": pytest.approx(0.7)})
    assert parse_condition("image=0%")[1] == {"image": 1.0}
    assert condition_shares("text=30%") == pytest.approx((0.3, 1.0))
    assert condition_shares("text=65%,image=65%") == pytest.approx((0.65, 0.65))
    assert [text_condition(r) for r in (1.0, 0.7, 0.0)] == ["complete", "text=70%", "text=0%"]
    assert mask_file_name("test", "text=30%") == "test_text30pct.json"
    for bad in ("text=130%", "audio=30%", "30% text"):
        with pytest.raises(ValueError):
            check_conditions(["complete", bad])
    with pytest.raises(ValueError):
        text_condition(1.5)


def test_one_results_shape_for_every_method() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 20
    data = EmbeddingSet(rng.normal(size=(n, 4)), rng.normal(size=(n, 3)), np.arange(n) % 3)
    models = {}
    for name, kw in (("srmm", {"stem_dim": 8, "trunk_hidden": [8]}), ("late_fusion", {"hidden": [8]})):
        net = create_model(name, input_dims={"image": 4, "text": 3}, embed_dim=8, num_classes=3, **kw)
        models[name] = (MissingModalityModule(net, "embeddings").eval(), collate_embeddings)
    res = evaluate_conditions(models, {"test": data, "train": data}, ["complete", "text=30%", "image=50%"],
                              task="multiclass", metrics=("accuracy",), info={"dataset": "random",
                                                                              "train_condition": "complete"})
    assert res["split"] == "test" and res["counts"] == {"test": n, "train": n}
    for table in (res["results"], res["other_splits"]["train"]):
        assert set(table) == {"srmm", "late_fusion"}
        for per_condition in table.values():
            assert list(per_condition) == ["complete", "text=30%", "image=50%"]
            assert all(set(v) == {"accuracy"} and 0 <= v["accuracy"] <= 100 for v in per_condition.values())
    md = format_table(res, {"srmm": "SRMM"})
    assert "| SRMM |" in md and "train split" in md and "text=30%" in md


def test_run_contract_export_and_evaluate(tmp_path: Path, capsys) -> None:
    from modalink.errors import run_cli

    train = load_script(RECIPE / "train.py")
    evaluate = load_script(RECIPE / "evaluate.py")
    out = tmp_path / "run"
    res = train.main(["--output-dir", str(out), *TINY])
    first = (out / "results.json").read_bytes()
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert "seconds" in json.loads((out / "timings.json").read_text()) and b"wall" not in first
    # another config into the finished folder: refused before anything is written
    assert run_cli(train.main, ["--output-dir", str(out), *TINY, "engine.lr=0.5"]) != 0
    err = capsys.readouterr().err
    assert "another config" in err and "engine.lr" in err
    assert (out / "results.json").read_bytes() == first
    assert "0.5" not in (out / "config.yaml").read_text().split("lr:")[1].splitlines()[0]
    # the exported models, loaded by evaluate.py only through modalink.hub.from_pretrained
    again = evaluate.main([str(out), "--out", str(tmp_path / "re")])
    assert again["results"] == res["results"]
    from modalink.runs import open_run

    run = open_run(out)
    assert (run.recipe, run.methods, run.results["results"]) == ("srmm", ["srmm", "late_fusion"], res["results"])
    assert type(run.load_network("late_fusion")).__name__ == "LateFusion"
    # --overwrite starts again; the same seeds give the same file
    train.main(["--output-dir", str(out), "--overwrite", *TINY])
    assert (out / "results.json").read_bytes() == first
