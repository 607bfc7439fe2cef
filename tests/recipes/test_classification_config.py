"""Chameleon and SRMM configs are checked when they are loaded (``validate_config`` run by
``load_config``): a wrong name or choice ends the command in ONE ``error:`` line naming the key
and the known names, exit code 2, before any data is read or a run folder is made."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import load_script
from modalink.config import ConfigError, load_config, save_config
from modalink.errors import run_cli

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

# (recipe, override, the key the message names, a known name it lists)
REGISTRY_TYPOS = [
    ("chameleon", "data.dataset=food-10l", "data.dataset", "food101"),
    ("chameleon", "chameleon.backbone=resnet1B", "chameleon.backbone", "timm/resnet18"),
    ("chameleon", "baseline.backbone=resnet1B", "baseline.backbone", "timm/resnet18"),
    ("chameleon", "baseline.text_encoder=no-such", "baseline.text_encoder", "hashed-bow"),
    ("srmm", "image_encoder.name=no-such", "image_encoder.name", "pixel-stats"),
    ("srmm", "image_encoder.name=timm/resnet5O", "image_encoder.name", "timm/resnet50"),
    ("srmm", "text_encoder.name=no-such", "text_encoder.name", "word-vectors"),
]
CHOICE_TYPOS = [
    ("chameleon", "methods=[chameleon, multibranch]", "methods[1]", "multi_branch"),
    ("chameleon", "text_image.mode=join", "text_image.mode", "fused"),
    ("chameleon", "text_image.layout=tile", "text_image.layout", "tiles"),
    ("chameleon", "baseline.fusion=sum", "baseline.fusion", "concat"),
    ("chameleon", "data.synthetic.preset=complement", "data.synthetic.preset", "complementary"),
    ("chameleon", "missing.eval=[complete, text=130%]", "missing.eval", "outside 0..100"),
    ("srmm", "model.switching=sometimes", "model.switching", "per_batch"),
    ("srmm", "model.norm=group", "model.norm", "layer"),
    ("srmm", "baseline.fusion=sum", "baseline.fusion", "mlp"),
    ("srmm", "missing.splits=[tests]", "missing.splits[0]", "test"),
    ("srmm", "missing.train=text=30", "missing.train", "bad condition"),
]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("error:")]  # train.py announces itself first
    assert len(errors) == 1 and errors[0] == err[-1] and "internal error" not in errors[0], err
    return errors[0]


# every command that reads a recipe config: both train.py files, and SRMM's prepare.py
CONFIG_COMMANDS = [(script, *case) for case in REGISTRY_TYPOS + CHOICE_TYPOS
                   for script in ("train", "prepare") if (RECIPES / case[0] / f"{script}.py").exists()]


@pytest.mark.parametrize("script,recipe,override,key,known", CONFIG_COMMANDS)
def test_a_typo_in_a_config_key_is_one_error_line_before_a_run_folder(script, recipe, override, key, known, tmp_path,
                                                                      capsys, monkeypatch):
    monkeypatch.delenv("MODALINK_DEBUG", raising=False)
    module = load_script(RECIPES / recipe / f"{script}.py")
    out = tmp_path / "run"
    capsys.readouterr()
    assert run_cli(module.main, ["--output-dir", str(out), override]) == 2
    line = _one_error_line(capsys)
    assert f": {key}: " in line and known in line, line
    assert not out.exists()


@pytest.mark.parametrize("recipe,override,key,known", [c for c in REGISTRY_TYPOS + CHOICE_TYPOS if "missing" in c[1]
                                                       or c[2] in ("data.dataset", "baseline.text_encoder",
                                                                   "text_encoder.name", "model.switching")])
def test_evaluate_checks_the_run_config_and_its_overrides_the_same_way(recipe, override, key, known, tmp_path,
                                                                       capsys, monkeypatch):
    monkeypatch.delenv("MODALINK_DEBUG", raising=False)
    if recipe == "chameleon":
        from modalink.classification.chameleon import ChameleonRecipeConfig as Config
    else:
        from modalink.classification.srmm import SRMMConfig as Config
    run = tmp_path / "run"
    save_config(load_config(Config, RECIPES / recipe / "hparams" / "default.yaml", [f"output_dir={run}"]),
                run / "config.yaml")
    before = sorted(p.name for p in run.iterdir())
    evaluate = load_script(RECIPES / recipe / "evaluate.py")
    argv = ["--run-dir", str(run), override] if recipe == "chameleon" else [str(run), override]
    capsys.readouterr()
    assert run_cli(evaluate.main, argv) == 2
    line = _one_error_line(capsys)
    assert f": {key}: " in line and known in line, line
    assert sorted(p.name for p in run.iterdir()) == before


def test_chameleon_evaluate_checks_the_conditions_it_is_given(tmp_path, capsys, monkeypatch):
    from modalink.classification.chameleon import ChameleonRecipeConfig

    monkeypatch.delenv("MODALINK_DEBUG", raising=False)
    run = tmp_path / "run"
    save_config(load_config(ChameleonRecipeConfig, overrides=[f"output_dir={run}"]), run / "config.yaml")
    evaluate = load_script(RECIPES / "chameleon" / "evaluate.py")
    capsys.readouterr()
    assert run_cli(evaluate.main, ["--run-dir", str(run), "--conditions", "complete", "text=65%,image=65%",
                                   "txt=30%"]) == 2
    line = _one_error_line(capsys)
    assert ": missing.eval: bad condition 'txt=30%'" in line, line
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_load_config_runs_the_checks_and_the_old_check_calls_are_gone():
    from modalink.classification import chameleon, srmm

    with pytest.raises(ConfigError, match=r"^command-line overrides: baseline\.text_encoder: unknown text encoder "
                                          r"'no-such'; known text encoders: .*hashed-bow"):
        load_config(chameleon.ChameleonRecipeConfig, overrides=["baseline.text_encoder=no-such"])
    cfg = load_config(chameleon.ChameleonRecipeConfig, overrides=["data.dataset=Food-101",
                                                                  "baseline.text_encoder=st:/models/minilm"])
    assert cfg.data.dataset == "Food-101"  # the loaders' spellings are accepted as they are
    assert load_config(srmm.SRMMConfig, overrides=["text_encoder.name=auto"]).text_encoder.name == "auto"
    assert not hasattr(chameleon.ChameleonRecipeConfig, "check") and not hasattr(srmm, "check")
    assert chameleon.METHODS == ("chameleon", "multi_branch")


def test_a_malformed_word_vector_file_is_one_error_line_before_a_run_folder(tmp_path, capsys, monkeypatch):
    from modalink.errors import FileFormatError
    from modalink.text.word_vectors import WordVectors, WordVectorsFormatError

    monkeypatch.delenv("MODALINK_DEBUG", raising=False)
    vectors = tmp_path / "vec.txt"
    vectors.write_text("apple 0.1 0.2\npear 0.3\n", encoding="utf-8")
    assert issubclass(WordVectorsFormatError, FileFormatError)
    capsys.readouterr()
    assert run_cli(lambda argv: WordVectors.load(vectors), []) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {vectors}:2: ") and "internal error" not in line, line
    prepare = load_script(RECIPES / "srmm" / "prepare.py")
    out, config = tmp_path / "run", tmp_path / "glove.yaml"
    config.write_text((RECIPES / "srmm" / "hparams" / "default.yaml").read_text(encoding="utf-8").replace(
        "name: hashed-bow\n  options: {dim: 1024, ngrams: 2}", f"name: word-vectors\n  options: {{path: {vectors}}}"),
        encoding="utf-8")
    assert "word-vectors" in config.read_text(encoding="utf-8")
    assert run_cli(prepare.main, ["--config", str(config), "--output-dir", str(out)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: text_encoder: ") and f"{vectors}:2: " in line, line
    assert not out.exists()
