"""The first minutes of each command, run as a user runs it (subprocesses): what it says before the
slow work, the README's catalogue line, the command line in the log."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import REPO as ROOT
from conftest import load_script


def test_train_says_what_it_does_before_generating_the_synthetic_set(tmp_path):
    """The first lines come before the (one-minute) synthetic set: the process is killed where the
    generation starts, and what it printed by then is read."""
    env = {**os.environ, "MODALINK_FAILPOINTS": "synthetic_fame.generate:1", "MODALINK_PROGRESS": "0"}
    res = subprocess.run([sys.executable, "recipes/fame/train.py", "--output-dir", str(tmp_path / "run")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    lines = res.stderr.splitlines()
    assert lines[0].startswith("FAME train.py: run folder") and "synthetic set" in lines[0], lines
    assert any(ln.startswith("synthetic MAV-Celeb-like v3 set in") for ln in lines), lines
    assert not list((tmp_path / "run").rglob("*.csv"))  # nothing generated yet: the line came first


def test_the_recsys_readme_gives_what_make_catalogue_prints(tmp_path, capsys):
    make = load_script(ROOT / "recipes/recsys/make_catalogue.py")
    info = make.main(["--output", str(tmp_path / "cat")])
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    readme = (ROOT / "recipes/recsys/README.md").read_text()
    assert f"`{printed.split(' to ')[0]}`" in readme and f"{info['interactions']:,} interactions" in readme


def test_srmm_log_names_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["recipes/srmm/train.py"])  # what `python recipes/srmm/train.py` sees
    train = load_script(ROOT / "recipes/srmm/train.py")
    train.main(["--output-dir", "run", "--cpu", "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=6",
                "data.synthetic.n_test_per_class=2", "data.synthetic.image_size=32", "prepare.progress=false",
                "engine.epochs=1", "engine.batch_size=16", "engine.progress=false", "text_encoder.options={dim: 16}",
                "model.stem_dim=8", "model.trunk_hidden=[8]", "model.embed_dim=8", "baseline.enabled=false"])
    command = [ln for ln in (tmp_path / "run" / "log.txt").read_text().splitlines() if "command: " in ln]
    assert command and command[0].split("command: ", 1)[1].startswith("recipes/srmm/train.py --output-dir run")


def test_the_command_refuses_an_unknown_encoder_in_one_line(tmp_path):
    out = tmp_path / "R"
    proc = subprocess.run([sys.executable, str(ROOT / "recipes" / "recsys" / "train.py"), "--output-dir", str(out),
                           "media.image_encoder=no-such-encoder"], capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "media.image_encoder: 'no-such-encoder'" in lines[0] and "ecapa_voxceleb" in lines[0]
    assert "timm/<architecture>" in lines[0]
    assert not out.exists()


def test_the_package_does_not_import_the_hub():
    """``modalink.recsys`` (what the model registry imports for ``recsys_item_tower``) does not
    need ``modalink.hub``, so loading an exported tower never goes round an import cycle."""
    code = ("import sys, modalink.recsys, modalink.recsys.towers\n"
            "assert 'modalink.hub' not in sys.modules and 'modalink.recsys.raw_items' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('modalink'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
