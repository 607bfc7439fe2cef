"""A new user's first minutes: ``--help`` without the heavy imports and wrapped by paragraph,
a line on screen before the synthetic set is made, layout and config mistakes answered in one
line that says what was found and what to use, and overrides that win over a preset."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import load_script
from modalink.errors import run_cli

ROOT = Path(__file__).resolve().parents[2]
FAME = ROOT / "recipes" / "fame"
#: the recipes' commands: scripts with a ``__main__`` block (shared modules have none)
COMMANDS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "recipes").glob("*/*.py")
                  if '__name__ == "__main__"' in p.read_text(encoding="utf-8"))
HEAVY = ("torch", "speechbrain", "timm", "accelerate", "torchvision", "torchaudio", "facenet_pytorch")
#: runs a command's --help in this interpreter, then prints the heavy modules it imported
PROBE = textwrap.dedent("""
    import runpy, sys
    target, sys.argv = sys.argv[1], sys.argv[1:]
    try:
        if target == "-m":
            sys.argv = sys.argv[1:]
            runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
        else:
            sys.path.insert(0, __import__("os").path.dirname(target))
            runpy.run_path(target, run_name="__main__")
    except SystemExit as e:
        code = e.code
    print("HEAVY:" + ",".join(m for m in %r if m in sys.modules), file=sys.stderr)
""" % (HEAVY,))
#: commands whose --help still imports torch (none)
HELP_IMPORTS_TORCH: set[str] = set()


@pytest.mark.parametrize("cmd", [*COMMANDS, "-m challenge"])
def test_help_does_not_import_the_heavy_libraries(cmd):
    if cmd in HELP_IMPORTS_TORCH:
        pytest.xfail(f"{cmd} defines its config with torch-importing classes at module level")
    res = subprocess.run([sys.executable, "-c", PROBE, *cmd.split(), "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.stdout.startswith("usage:"), res.stdout[:300] + res.stderr[-2000:]
    heavy = res.stderr.rsplit("HEAVY:", 1)[-1].strip()
    assert heavy == "", f"{cmd} --help imported {heavy}"


def test_help_reflows_paragraphs_and_keeps_examples():
    from modalink.cli import reflow

    doc = ("Train a model on features and write the submission files, with a first sentence long\n"
           "enough to pass the width. Then a second line.\n\n"
           "    python recipes/fame/train.py --config recipes/fame/hparams/fop.yaml engine.epochs=10   # example\n\n"
           "* a bullet whose text runs on for long enough that it has to be wrapped onto a second\n"
           "  line, with its hanging indent kept.\n")
    lines = reflow(doc, 60)
    paragraph = lines[: lines.index("")]
    assert paragraph == textwrap.wrap("Train a model on features and write the submission files, with a first "
                                      "sentence long enough to pass the width. Then a second line.", 60)
    assert "    python recipes/fame/train.py --config recipes/fame/hparams/fop.yaml engine.epochs=10   # example" \
        in lines  # a command example is never broken
    bullet = lines[lines.index("* a bullet whose text runs on for long enough that it has to") :]
    assert len(bullet) == 3 and all(b.startswith("  ") and len(b) <= 60 for b in bullet[1:])
    assert all(len(ln) <= 60 for ln in lines if not ln.startswith("    "))


def test_train_help_is_wrapped_by_paragraph():
    res = subprocess.run([sys.executable, "recipes/fame/train.py", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "COLUMNS": "80"})
    text = res.stdout
    assert "accelerate launch recipes/fame/train.py                      # synthetic data, default config" in text
    # the paragraph is refilled: no line of it stops short of the width in mid-sentence
    para = text[text.index("For each training language"):].split("\n\n", 1)[0].splitlines()
    assert all(len(a) + 1 + len(b.split()[0]) > 78 for a, b in zip(para, para[1:])), para


# ----------------------------------------------------------------------------- FAME layout
@pytest.fixture(scope="module")
def tiny_fame(tmp_path_factory) -> Path:
    from modalink.face_voice import generate_synthetic_fame

    root = tmp_path_factory.mktemp("fame") / "synthetic_data"
    generate_synthetic_fame(root, ver="v3", seed=0, n_train_ids=3, n_test_ids=2, rows_per_id=3, n_test_pairs=4,
                            face_dim=8, voice_dim=4)
    return root


def _layout_error(root: Path, ver: str) -> str:
    from modalink.face_voice import FameFeatures, FameLayoutError

    with pytest.raises(FameLayoutError) as info:
        FameFeatures.load(root, ver, "English", use_cache=False, face_dim=8, voice_dim=4)
    text = str(info.value)
    assert "\n" not in text and "[Errno" not in text
    return text


def test_feats_root_one_level_too_deep_names_the_folder_to_use(tiny_fame):
    text = _layout_error(tiny_fame / "feats", "v3")
    assert str(tiny_fame / "feats" / "feats" / "v3" / "English_feats" / "English_faces_train.csv") in text
    assert "one level down" in text and text.endswith(f"use --feats-root {tiny_fame}")


def test_feats_root_one_level_too_high_names_the_folder_to_use(tiny_fame):
    text = _layout_error(tiny_fame.parent, "v3")
    assert f"use --feats-root {tiny_fame}" in text


def test_wrong_version_names_the_versions_there(tiny_fame):
    text = _layout_error(tiny_fame, "v1")
    assert "this folder has versions v3 only; use --ver v3" in text


def test_folder_without_the_layout_says_what_it_needs(tmp_path):
    text = _layout_error(tmp_path, "v3")
    assert "has no feats/ folder" in text and "face_voice_association_splits/" in text


def test_train_answers_a_wrong_feats_root_in_one_line(tiny_fame, tmp_path, capsys):
    train = load_script(FAME / "train.py")
    code = run_cli(train.main, ["--feats-root", str(tiny_fame / "feats"), "--output-dir", str(tmp_path / "run"),
                                "data.face_dim=8", "data.voice_dim=4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: no FAME v3 training features at "), err
    assert err[-1].endswith(f"use --feats-root {tiny_fame}")
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_evaluate_names_a_missing_run_folder(tmp_path, capsys):
    evaluate = load_script(FAME / "evaluate.py")
    assert run_cli(evaluate.main, ["--run-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: no run folder at {tmp_path / 'nope'}") and "config.yaml" not in err


# ----------------------------------------------------------------------------- --config
RECIPE_CONFIGS = [("recipes/fame/train.py", "fame_train", "fop.yaml"),
                  ("recipes/srmm/train.py", "srmm_train", "food101.yaml"),
                  ("recipes/srmm/prepare.py", "srmm_prepare", "food101.yaml"),
                  ("recipes/chameleon/train.py", "chameleon_train", "food101.yaml"),
                  ("recipes/recsys/train.py", "recsys_train", "default.yaml")]


@pytest.mark.parametrize("script,name,config", RECIPE_CONFIGS)
def test_config_name_suggests_the_recipe_hparams_file(script, name, config, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    module = load_script(ROOT / script)
    code = run_cli(module.main, ["--config", config, "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    hparams = Path(script).parent / "hparams" / config
    assert code == 2 and err == f"error: config file not found: {config}; did you mean {hparams.as_posix()}?"
    assert not (tmp_path / "run").exists()


def test_config_name_without_a_match_lists_the_recipe_configs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    train = load_script(ROOT / "recipes/srmm/train.py")
    assert run_cli(train.main, ["--config", "fop.yaml", "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("error: config file not found: fop.yaml; the recipe's configs in recipes/srmm/hparams/ are: "
                   "default.yaml, food101.yaml")


# ----------------------------------------------------------------------------- presets
def _chameleon_config(*overrides: str):
    train = load_script(ROOT / "recipes/chameleon/train.py")
    return train.load_config(train.parse_args(["--output-dir", "unused", *overrides]))


def test_overrides_win_over_the_synthetic_preset():
    from modalink.classification.chameleon import synthetic_kwargs
    from modalink.classification.synthetic_food101 import COMPLEMENTARY

    cfg = _chameleon_config("data.synthetic.preset=complementary", "data.synthetic.n_classes=4",
                            "data.synthetic.n_train_per_class=8", "engine.seed=3", "data.synthetic.seed=2")
    got = synthetic_kwargs(cfg.data.synthetic)
    assert got["n_classes"] == 4 and got["n_train_per_class"] == 8 and got["seed"] == 2  # the overrides
    assert got["evidence"] == "complementary" and got["n_test_per_class"] == COMPLEMENTARY["n_test_per_class"]
    assert got["image_size"] == COMPLEMENTARY["image_size"]  # the preset beats the config file's 48 px
    assert got["title_visual_hint"] == 0 and got["image_text_cue"] == 0  # ... and its redundancy knobs
    assert cfg.data.synthetic.preset is None  # the saved config holds what is generated


def test_the_preset_alone_gives_the_generator_preset():
    from modalink.classification.chameleon import synthetic_kwargs
    from modalink.classification.synthetic_food101 import COMPLEMENTARY

    got = synthetic_kwargs(_chameleon_config("data.synthetic.preset=complementary").data.synthetic)
    assert {k: got[k] for k in COMPLEMENTARY} == COMPLEMENTARY and got["seed"] == 0


# ----------------------------------------------------------------------------- smaller items
def test_the_plot_hint_works_from_a_clone(monkeypatch):
    from challenge.score import MatplotlibMissing, ScoreReport

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "not installed"
    report = ScoreReport.__new__(ScoreReport)
    with pytest.raises(MatplotlibMissing) as info:
        report.plot("unused.png")
    assert 'pip install -e ".[plot]"' in str(info.value) and "modalink[plot]" not in str(info.value)


# ----------------------------------------------------------------------------- thread count
def test_engine_num_threads_pins_torch_threads():
    import torch

    from modalink.config import load_config
    from modalink.engine import EngineConfig, process_state

    before = torch.get_num_threads()
    try:
        process_state(EngineConfig(num_threads=1))
        assert torch.get_num_threads() == 1
        process_state(EngineConfig())  # 0: torch's count is left as it is
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    from modalink.face_voice.config import FameConfig

    for name in ("default", "fop", "sbnet", "sbnet_stems"):  # the README's FAME rows hold on any machine
        assert load_config(FameConfig, FAME / "hparams" / f"{name}.yaml").engine.num_threads == 1
    from modalink.classification.srmm import SRMMConfig

    srmm = load_config(SRMMConfig, ROOT / "recipes/srmm/hparams/default.yaml")
    assert srmm.engine.num_threads == 1  # ... and the SRMM table
    with pytest.raises(Exception, match="num_threads"):
        load_config(FameConfig, None, ["engine.num_threads=-1"])
