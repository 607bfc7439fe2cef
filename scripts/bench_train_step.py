"""Training-step throughput (samples/s) of FOP and SBNet on 4096-D face / 512-D voice inputs.

Times forward + backward + AdamW step on random tensors already in memory (no data loading),
after warm-up, for a few batch sizes; prints a markdown table.

    python scripts/bench_train_step.py --steps 30 --batch-sizes 32 256
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from modalink.losses import OrthogonalProjectionLoss
from modalink.models import create_model


def bench(name: str, batch: int, steps: int, n_classes: int = 50) -> float:
    torch.manual_seed(0)
    kw = dict(num_classes=n_classes)
    if name == "sbnet":
        kw.update(input_dims={"face": 4096, "voice": 512}, modality_subsets={"face": 1, "voice": 1})
    model = create_model(name, **kw).train()
    opl = OrthogonalProjectionLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    face, voice = torch.rand(batch, 4096), torch.randn(batch, 512)
    y = torch.randint(0, n_classes, (batch,))

    def step() -> None:
        if name == "sbnet":
            out = model({"face": face, "voice": voice})
            loss = F.cross_entropy(out["logits_face"], y) + F.cross_entropy(out["logits_voice"], y)
            loss = loss + opl(torch.cat([out["face"], out["voice"]]), torch.cat([y, y]))
        else:
            out = model(face, voice)
            loss = F.cross_entropy(out["logits"], y) + opl(out["fused"], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed steps per setting")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    p.add_argument("--models", nargs="+", default=["fop", "fop_enhanced", "sbnet"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("| model | batch | train samples/s |\n|---|---|---|")
    for name in a.models:
        for b in a.batch_sizes:
            print(f"| {name} | {b} | {bench(name, b, a.steps):,.0f} |", flush=True)


if __name__ == "__main__":
    main()
