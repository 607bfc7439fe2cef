"""Models give the same outputs compiled and eager, and every exported model loads in a fresh
interpreter with its model card's two lines."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modalink.hub import save_pretrained
from modalink.models import create_model
from model_cases import SMALL
from test_hub import _card_lines
from test_models import _build, _inputs


@pytest.mark.parametrize("name", ["fop", "sbnet", "sbnet_stems"])
def test_torch_compile_graph_capture(name: str) -> None:
    """Models trace under torch.compile (aot_eager backend: checks capture without a C++ build)."""
    torch.manual_seed(0)
    model = _build(name).eval()
    compiled = torch.compile(model, backend="aot_eager")
    x = _inputs(model)
    torch.testing.assert_close(compiled(*x)["logits"], model(*x)["logits"])


def test_every_exported_model_loads_from_a_fresh_interpreter_with_the_model_cards_two_lines(tmp_path: Path) -> None:
    """Each registered model, exported here, loads in its own fresh interpreter with exactly the
    snippet its model card shows: no task package has to be imported first."""
    import subprocess
    import sys

    from modalink.models import list_models

    jobs = {}
    for name in list_models():
        torch.manual_seed(0)
        folder = save_pretrained(create_model(name, **SMALL[name]), tmp_path / name)
        script = _card_lines(folder) + f"assert model.export_config['name'] == {name!r}\nprint(type(model).__name__)\n"
        jobs[name] = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=tmp_path)
    for name, job in jobs.items():
        out, err = job.communicate(timeout=300)
        assert job.returncode == 0, f"{name}: {err.strip().splitlines()[-1:]}"
        assert out.strip()
