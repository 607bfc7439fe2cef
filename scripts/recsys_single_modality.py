#!/usr/bin/env python
"""Do single-modality cold items keep their content in the item tower? A table over seeds.

    python scripts/recsys_single_modality.py                    # 3 seeds, 120 items, ~1-2 min per seed on 2 CPUs
    python scripts/recsys_single_modality.py --seeds 0 --input-norms center --json out.json

For each seed: a real-media catalogue (``modalink.recsys.demo_catalogue``: 120 items cut from six
scikit-image photos = six content groups; speech from espeak-ng when installed, each group read
by its own voice, else tones; texts drawn partly from the group's words), then the recsys recipe
(``recipes/recsys/train.py``, random-weight encoders, MF off) once per ``tower.input_norm``.
Each cold item of the split (never trained on) is embedded from ONE modality through the exported
tower, as ``query.py`` does for a new item (from the run's cached media vectors); so is every other item, and the cold item's
nearest neighbour among them (cosine) is checked for the same group. The reference is the same
nearest-neighbour accuracy on the raw, L2-normalised media vectors (what the tower's input can
separate). Also printed: the mean pairwise cosine of the cold items' vectors (near 1 = collapsed)
and, as a user would query, the same-group share of the 5 nearest items of the run's catalogue
index (``item_index.npz``: every item with all its modalities) for each one-modality cold query.
Cells are mean ± sample standard deviation over the seeds. Work files go to ``--work-dir`` (a temporary folder by default).
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODALITIES = (("image", "photo only"), ("audio", "audio only"), ("text", "text only"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="catalogue + training seeds")
    p.add_argument("--items-per-photo", type=int, default=20, help="items per group (default: %(default)s)")
    p.add_argument("--users", type=int, default=200, help="users (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (default: %(default)s)")
    p.add_argument("--input-norms", nargs="+", default=["none", "center"], choices=["none", "center", "standardize"],
                   help="tower.input_norm settings compared (default: none center)")
    p.add_argument("--audio", choices=["auto", "speech", "tone"], default="auto",
                   help="item audio: espeak-ng speech, tones, or speech when espeak-ng is installed (default)")
    p.add_argument("--image-encoder", default="timm/resnet18", help="media.image_encoder (default: %(default)s)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more recipe overrides")
    p.add_argument("--work-dir", help="where catalogues and runs go (default: a temporary folder)")
    p.add_argument("--json", help="also write the per-seed figures to this file")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="print the table of earlier --json reports (e.g. one per seed, run in parallel) and stop")
    args = p.parse_args(argv)
    if args.items_per_photo < 5:
        p.error("--items-per-photo must be at least 5")
    return args


def _recipe() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("recsys_train", ROOT / "recipes" / "recsys" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def one_modality_vectors(tower: Any, modality: str, x: Any) -> Any:
    """Tower vectors of items that have only ``modality`` (rows of ``x``, L2-normalised media
    vectors): no other content, no tags, no ID, no interactions — what ``ColdItemEncoder.embed``
    builds for a new item given one file, without embedding the file again."""
    import torch

    from modalink.recsys.data import Bags, ItemFeatures

    n = x.shape[0]
    dense = {m: torch.from_numpy(x) if m == modality else torch.zeros(n, w) for m, w in tower.dense_dims.items()}
    bags = {m: Bags.from_lists([[] for _ in range(n)], size) for m, size in tower.bag_sizes.items()}
    return tower.embed_catalogue(ItemFeatures(n, dense, bags), missing="error").cpu().numpy()


def measure_seed(seed: int, args: argparse.Namespace, work: Path, audio: str, recipe: Any) -> dict[str, Any]:
    """Figures of one seed: ``{"raw": {modality: stats}, "<input_norm>": {modality: stats}}``."""
    import numpy as np

    from modalink.config import load_config
    from modalink.recsys import Interactions, MediaConfig, extract_media, read_catalogue, split_recsys
    from modalink.recsys.raw_items import ColdItemEncoder
    from modalink.recsys.catalogue import l2_rows
    from modalink.recsys.config import DataConfig
    from modalink.recsys.demo_catalogue import write_demo_catalogue
    from modalink.recsys.evaluate import content_neighbours

    root = work / f"catalogue_seed{seed}"
    if not (root / "items.csv").is_file():
        write_demo_catalogue(root, items_per_photo=args.items_per_photo, n_users=args.users, broken=False,
                             audio=audio, seed=seed)
    cache = work / f"media_cache_seed{seed}"
    overrides = ["media.pretrained=false", f"media.image_encoder={args.image_encoder}", "mf.enabled=false",
                 "engine.progress=false", f"engine.epochs={args.epochs}", f"engine.seed={seed}",
                 f"data.cache_dir={cache}", *args.set]
    rows = list(csv.DictReader(open(root / "items.csv", encoding="utf-8")))
    groups = np.array([r["item_id"].rsplit("_", 1)[0] for r in rows], dtype=object)
    # the recipe's split (same config, same seed): its cold items were never trained on
    cat = read_catalogue(root)
    d = DataConfig()
    split = split_recsys(Interactions(cat.users, cat.items, len(cat.user_ids), cat.n_items),
                         cold_item_frac=d.cold_item_frac, cold_user_frac=d.cold_user_frac, val_frac=d.val_frac,
                         test_frac=d.test_frac, fold_in_frac=d.fold_in_frac, seed=d.split_seed)
    index_of = {r["item_id"]: k for k, r in enumerate(rows)}
    cold = set(np.concatenate([split.cold_val_items, split.cold_test_items]).tolist())
    out: dict[str, Any] = {"seed": seed, "items": len(rows), "cold_items": len(cold)}

    def index_top5(enc: Any, vectors: np.ndarray, ids: list[str]) -> float:
        """Cold items queried with one modality against the run's catalogue index (every item with
        all its modalities, as served): the same-group share of the 5 nearest other items."""
        import torch

        scores, found = enc.index.search_ids(torch.from_numpy(vectors), 6)
        share = [np.mean([groups[index_of[j]] == groups[index_of[i]] for j in row if j != i][:5])
                 for i, row in zip(ids, found) if index_of[i] in cold]
        return float(np.mean(share))

    def stats(vectors: np.ndarray, m: str) -> dict[str, float]:
        have = [k for k, r in enumerate(rows) if r[m]]
        queries = [j for j, k in enumerate(have) if k in cold]
        if len(queries) < 2:
            raise SystemExit(f"seed {seed}: fewer than two cold items have {m}; use more --items-per-photo")
        return content_neighbours(vectors[have], groups[have], queries)

    raw: dict[str, Any] = {}
    for norm in args.input_norms:
        run = work / f"run_seed{seed}_{norm}"
        recipe.main(["--data-root", str(root), "--output-dir", str(run), f"tower.input_norm={norm}", *overrides])
        enc = ColdItemEncoder.from_run(run)
        if not raw:
            # the reference: the raw media vectors of the run's own encoders (read back from its cache)
            media = load_config(MediaConfig, defaults=enc.contract["media"]["config"])
            raw, _, _ = extract_media(cat, media, cache)
            out["raw"] = {m: stats(l2_rows(raw[m]), m) for m, _ in MODALITIES if m in raw}
        out[norm] = {}
        for m, _ in MODALITIES:
            if m not in raw:
                continue
            vecs = np.zeros((len(rows), enc.tower.embed_dim), dtype=np.float32)
            have = [k for k, r in enumerate(rows) if r[m]]
            v = one_modality_vectors(enc.tower, m, l2_rows(raw[m])[have])
            vecs[have] = v
            out[norm][m] = stats(vecs, m)
            out[norm][m]["index_top5_same_group"] = index_top5(enc, v, [rows[k]["item_id"] for k in have])
    return out


def table(results: list[dict[str, Any]], norms: list[str], audio: str) -> str:
    """The markdown table: mean ± std over seeds of neighbour accuracy and mean cosine."""
    import numpy as np

    def cell(key: str, m: str, what: str) -> str:
        vals = [r[key][m][what] for r in results if m in r.get(key, {})]
        return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1) if len(vals) > 1 else 0.0:.3f}" if vals else "–"

    head = ["cold items from", "raw features: same-group NN (reference)", "raw: mean cos"]
    for n in norms:
        head += [f"tower, input_norm={n}: same-group NN", "mean cos", "query → index: same group in top 5"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    labels = {"image": "photo only", "audio": "speech only" if audio == "speech" else "audio (tones) only",
              "text": "text only"}
    for m, _ in MODALITIES:
        if not any(m in r["raw"] for r in results):
            continue
        n_q = int(np.mean([r["raw"][m]["n"] for r in results if m in r["raw"]]))
        row = [f"{labels[m]} ({n_q} cold items)", cell("raw", m, "neighbour_accuracy"), cell("raw", m, "mean_cosine")]
        for n in norms:
            row += [cell(n, m, "neighbour_accuracy"), cell(n, m, "mean_cosine"), cell(n, m, "index_top5_same_group")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.merge:
        reports = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.merge]
        results = [r for rep in reports for r in rep["per_seed"]]
        norms = [n for n in ("none", "center", "standardize") if all(n in r for r in results)]
        text = table(results, norms, reports[0]["audio"])
        print(f"# merged {len(results)} seed(s): {[r['seed'] for r in results]}, audio: {reports[0]['audio']}")
        print(text)
        return {"per_seed": results, "table": text}
    import logging

    from modalink.recsys.demo_catalogue import espeak_available

    logging.getLogger("modalink").setLevel(logging.WARNING)
    audio = args.audio if args.audio != "auto" else ("speech" if espeak_available() else "tone")
    recipe = _recipe()
    with tempfile.TemporaryDirectory(prefix="recsys_single_modality_") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = [measure_seed(s, args, work, audio, recipe) for s in args.seeds]
    text = table(results, list(args.input_norms), audio)
    print(f"# single-modality cold items, {results[0]['items']} items / 6 groups, audio: {audio}, "
          f"image encoder: {args.image_encoder} (random weights), seeds {args.seeds}, {args.epochs} epochs")
    print(text)
    report = {"audio": audio, "image_encoder": args.image_encoder, "seeds": args.seeds, "epochs": args.epochs,
              "per_seed": results, "table": text}
    if args.json:
        from modalink.io import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
