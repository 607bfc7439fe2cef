"""The same run whatever the process count: recipes, losses and errors under two CPU (gloo) processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, launch_2proc
from modalink.losses import InfoNCE
from test_fame_recipe import DIMS, FAST, feats_root  # noqa: F401 - feats_root is a fixture

CHAMELEON = REPO / "recipes" / "chameleon"
FAME = REPO / "recipes" / "fame"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_two_processes(tmp_path: Path) -> None:
    """``accelerate launch`` with 2 CPU (gloo) processes: one run folder, both ranks checkpointed."""
    import os
    import subprocess

    cfg = tmp_path / "accelerate.yaml"
    cfg.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nnum_machines: 1\n"
                   "num_processes: 2\nmachine_rank: 0\nmixed_precision: 'no'\nuse_cpu: true\n")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg), "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--dynamo_backend", "no", "--main_process_port", "29541",
           str(CHAMELEON / "train.py"), "--output-dir", str(out), "chameleon.backbone=test_resnet", "data.image_size=32",
           "data.synthetic.n_classes=4", "data.synthetic.n_train_per_class=10", "data.synthetic.n_test_per_class=5",
           "data.synthetic.image_size=32", "text_image.dim=12", "text_image.superpixel=4", "engine.epochs=1",
           "engine.batch_size=8", "engine.progress=false", "baseline.embed_dim=16", "baseline.hidden=[16]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "results.json").is_file()
    assert (out / "log.txt").read_text().count("run folder:") == 1
    for kind in ("chameleon", "multi_branch"):
        ckpt = sorted((out / kind / "checkpoints").iterdir())[-1]
        assert (ckpt / "random_states_1.pkl").is_file(), "not 2 processes"
    res = json.loads((out / "results.json").read_text())
    assert res["counts"]["test"] == 20 and set(res["results"]) == {"chameleon", "multi_branch"}


def test_two_processes_match_one(feats_root: Path, tmp_path: Path) -> None:
    """1 vs 2 processes: same global batches (split_batches); LayerNorm, no dropout and losses that
    decompose over processes (per-sample CE; InfoNCE with negatives gathered across processes)
    make the computation identical up to float rounding. (OPL's within-batch pairs do not
    decompose: with it, N processes see N half-batches of pairs, a small, expected difference.)"""
    same = ["--train-lang", "English", "--config", str(FAME / "hparams" / "sbnet_stems.yaml"), *DIMS, *FAST,
            "model.norm=layer", "model.dropout=0.0", "loss.opl=0", "loss.infonce=1.0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    subprocess.run([sys.executable, str(FAME / "train.py"), "--feats-root", str(feats_root), "--output-dir",
                    str(one), *same], check=True, env=env, capture_output=True, timeout=300)
    two = tmp_path / "two"
    r = subprocess.run([*launch_2proc(tmp_path), str(FAME / "train.py"), "--feats-root", str(feats_root),
                        "--output-dir", str(two), *same], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a = json.loads((one / "results.json").read_text())
    b = json.loads((two / "results.json").read_text())
    assert b["processes"] == 2 and a["processes"] == 1
    for x, y in zip(a["eer"], b["eer"]):
        assert x["eer"] == pytest.approx(y["eer"], abs=0.5)
    ha = [json.loads(line) for line in (one / "v3_English" / "metrics.jsonl").read_text().splitlines()]
    hb = [json.loads(line) for line in (two / "v3_English" / "metrics.jsonl").read_text().splitlines()]
    for x, y in zip(ha, hb):
        assert x["train/loss"] == pytest.approx(y["train/loss"], rel=1e-4)


def _gather_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        g = torch.Generator().manual_seed(0)
        a_full = torch.randn(8, 5, dtype=torch.float64, generator=g)
        b_full = torch.randn(8, 5, dtype=torch.float64, generator=g)
        labels_full = torch.tensor([0, 1, 2, 2, 3, 4, 1, 5])
        sl = slice(0, 5) if rank == 0 else slice(5, 8)  # uneven shards exercise the padding
        a = a_full[sl].clone().requires_grad_(True)
        b = b_full[sl].clone().requires_grad_(True)
        loss = InfoNCE(temperature=0.1, learnable=False, gather=True).double()(a, b, labels_full[sl])
        loss.backward()
        torch.save({"loss": loss.detach(), "ga": a.grad, "gb": b.grad}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_infonce_gathers_negatives_across_processes(tmp_path):
    import torch.multiprocessing as mp

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_gather_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 5, dtype=torch.float64, generator=g).requires_grad_(True)
    b = torch.randn(8, 5, dtype=torch.float64, generator=g).requires_grad_(True)
    labels = torch.tensor([0, 1, 2, 2, 3, 4, 1, 5])
    an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)
    drop = (labels[:, None] == labels[None, :]) & ~torch.eye(8, dtype=torch.bool)
    lab = (an @ bn.t() / 0.1).masked_fill(drop, float("-inf"))
    lba = (bn @ an.t() / 0.1).masked_fill(drop, float("-inf"))
    ce_ab = F.cross_entropy(lab, torch.arange(8), reduction="none")
    ce_ba = F.cross_entropy(lba, torch.arange(8), reduction="none")
    shards = [slice(0, 5), slice(5, 8)]
    per_rank = [0.5 * (ce_ab[s].mean() + ce_ba[s].mean()) for s in shards]
    for r in range(2):
        assert res[r]["loss"].item() == pytest.approx(per_rank[r].item(), abs=1e-10)
    # each process's inputs receive the gradient of the SUM of all processes' losses
    sum(per_rank).backward()
    for r, s in enumerate(shards):
        torch.testing.assert_close(res[r]["ga"], a.grad[s], atol=1e-10, rtol=0)
        torch.testing.assert_close(res[r]["gb"], b.grad[s], atol=1e-10, rtol=0)
    # and the global negatives matter: a single-shard loss differs
    local = InfoNCE(temperature=0.1, learnable=False).double()(a[:5], b[:5], labels[:5])
    assert local.item() != pytest.approx(per_rank[0].item(), abs=1e-4)


def test_two_process_error_is_one_line_and_last(tmp_path: Path, two_process_launcher: list[str]) -> None:
    r = subprocess.run([*two_process_launcher, str(FAME / "train.py"), "--output-dir", str(tmp_path / "r"),
                        "engine.grad_accum=0"], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    ours = [ln for ln in r.stderr.splitlines() if "grad_accum: 0 is out of range" in ln]
    assert ours and ours[0].startswith("error: ")  # printed once by the main process ...
    assert sum(ln.startswith("error: ") for ln in r.stderr.splitlines()) == 1
    last = [ln for ln in r.stderr.splitlines() if ln.strip() and not set(ln.strip()) <= {"="}][-1]
    assert "grad_accum: 0 is out of range" in last  # ... and again at the end of the launcher's summary


def _rows_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from modalink.data.processes import Processes

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        procs = Processes.current()
        full = torch.arange(7 * 3, dtype=torch.float32).reshape(7, 3)
        mine = procs.share(7)
        got = procs.gather_rows(full[torch.as_tensor(mine)] * 10, 7)  # uneven blocks: 3 and 4 rows
        few = procs.gather_rows(full[torch.as_tensor(procs.share(1))], 1)  # fewer rows than processes
        torch.save({"mine": mine.tolist(), "got": got, "few": few}, os.path.join(out_dir, f"rows{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_rows_split_in_blocks_and_gather_back_in_order(tmp_path):
    """Validation rows are split into one contiguous block per process and gathered back: every
    process holds what one process computing every row would."""
    import torch.multiprocessing as mp

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_rows_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    res = [torch.load(tmp_path / f"rows{r}.pt") for r in range(2)]
    full = torch.arange(7 * 3, dtype=torch.float32).reshape(7, 3)
    assert res[0]["mine"] == [0, 1, 2] and res[1]["mine"] == [3, 4, 5, 6]
    for r in res:
        assert torch.equal(r["got"], full * 10) and torch.equal(r["few"], full[:1])


def _ranking_inputs():
    import numpy as np

    from modalink.recsys.data import Interactions

    g = torch.Generator().manual_seed(0)
    users = np.arange(0, 40, 2)  # 20 evaluated users of 40
    rng = np.random.default_rng(0)
    rel_u, rel_i = rng.integers(0, 40, 120), rng.integers(0, 30, 120)
    seen_u, seen_i = rng.integers(0, 40, 60), rng.integers(0, 30, 60)
    return (torch.randn(users.size, 6, generator=g), users, torch.randn(30, 6, generator=g),
            Interactions(rel_u, rel_i, 40, 30), [Interactions(seen_u, seen_i, 40, 30)])


def _ranking_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from modalink.data.processes import Processes
    from modalink.recsys.evaluate import rank_metrics

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        uv, users, iv, rel, seen = _ranking_inputs()
        res = rank_metrics(uv, users, iv, rel, seen=seen, k=5, batch_size=3, processes=Processes.current())
        torch.save(res, os.path.join(out_dir, f"rank{rank}_metrics.pt"))
    finally:
        dist.destroy_process_group()


def test_recsys_ranking_split_across_processes_matches_one(tmp_path):
    """Recsys validation ranks each process's block of users and gathers the sums: every process
    gets the one-process metrics."""
    import torch.multiprocessing as mp

    from modalink.recsys.evaluate import rank_metrics

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_ranking_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    uv, users, iv, rel, seen = _ranking_inputs()
    one = rank_metrics(uv, users, iv, rel, seen=seen, k=5, batch_size=3)
    for r in range(2):
        two = torch.load(tmp_path / f"rank{r}_metrics.pt")
        assert two.keys() == one.keys() and two["users"] == one["users"]
        for key in one:
            assert two[key] == pytest.approx(one[key], rel=1e-12), key
