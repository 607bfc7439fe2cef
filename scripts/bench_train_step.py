"""Training-step throughput (face–voice PAIRS/s) of the FAME models on 4096-D face / 512-D voice inputs.

Times forward + backward + optimizer step of the recipe's objective
(:class:`modalink.face_voice.objective.FaceVoiceObjective`: FOP = CE + OPL on the fused vector; SBNet = its
single-modality rows in the ``fvfv`` layout, CE + OPL; sbnet_stems = both modalities through
stems and trunk) on random tensors already in memory (no data loading), after warm-up, for a few
batch sizes of pairs; prints a markdown table.

    python scripts/bench_train_step.py --steps 30 --batch-sizes 32 256
"""
from __future__ import annotations

import argparse
import time

import torch

from modalink.face_voice import FaceVoiceLossConfig, FaceVoiceModelConfig, FaceVoiceObjective, build_face_voice_model


def bench(name: str, batch: int, steps: int, n_classes: int = 50, device: str = "cpu",
          precision: str = "fp32") -> float:
    """Training pairs/s of ``name`` at ``batch`` pairs on ``device`` (``precision`` fp32 or bf16 autocast)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_face_voice_model(FaceVoiceModelConfig(name=name), 4096, 512, n_classes).to(dev).train()
    objective = FaceVoiceObjective(model, FaceVoiceLossConfig(), n_classes).to(dev)
    opt = torch.optim.AdamW(objective.parameters(), lr=1e-3)
    batch_data = {"face": torch.rand(batch, 4096, device=dev), "voice": torch.randn(batch, 512, device=dev),
                  "label": torch.randint(0, n_classes, (batch,), device=dev)}

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = objective(batch_data)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed steps per setting")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    p.add_argument("--models", nargs="+", default=["fop", "fop_enhanced", "sbnet", "sbnet_stems"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("| model | batch (pairs) | train pairs/s |\n|---|---|---|")
    for name in a.models:
        for b in a.batch_sizes:
            print(f"| {name} | {b} | {bench(name, b, a.steps):,.0f} |", flush=True)


if __name__ == "__main__":
    main()
