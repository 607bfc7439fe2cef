"""recipes/srmm/train.py under ``accelerate launch`` with 2 CPU processes: the processes split the
embedding extraction (a collective build of the shared cache) and write the cache one process
writes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import launch_2proc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ["data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=10", "data.synthetic.n_test_per_class=3",
        "data.synthetic.image_size=32", "engine.epochs=1", "engine.batch_size=16", "prepare.progress=false",
        "engine.progress=false"]


def test_two_processes_build_the_cache_one_process_builds(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = str(ROOT / "recipes" / "srmm" / "train.py")
    for prefix, name in (([sys.executable], "one"), (launch_2proc(tmp_path), "two")):
        res = subprocess.run([*prefix, script, "--output-dir", str(tmp_path / name), *TINY], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
    arrays = sorted((tmp_path / "one" / "cache").glob("*.npy"))
    assert [p.name for p in arrays] == ["test_image.npy", "test_text.npy", "train_image.npy", "train_text.npy"]
    for one in arrays:
        two = np.load(tmp_path / "two" / "cache" / one.name)
        np.testing.assert_allclose(two, np.load(one), rtol=1e-5, atol=1e-6, err_msg=one.name)
    assert not (tmp_path / "two" / "cache" / ".shards").exists()
