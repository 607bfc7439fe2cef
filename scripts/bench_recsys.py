#!/usr/bin/env python
"""Benchmark the item-tower serving path: embed a catalogue, then exact top-k retrieval.

    python scripts/bench_recsys.py                        # 100,000 items, 10,000 users, top-10
    python scripts/bench_recsys.py --items 20000 --users 2000 --threads 2

Times (1) ``ItemTower.embed_catalogue`` over a synthetic catalogue with text (384-D), image
(512-D) and genre-tag modalities (random-weight tower, eval mode, CPU) and (2) top-k inner-product
retrieval for the users with :class:`modalink.recsys.InnerProductIndex` (exact search; FAISS
``IndexFlatIP`` when installed and ``--faiss``), optionally masking each user's seen items.
Prints items/s, queries/s and a check against brute-force search on a sample of users.
"""
from __future__ import annotations

import argparse
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=100_000, help="catalogue size (default: %(default)s)")
    p.add_argument("--users", type=int, default=10_000, help="number of queries (default: %(default)s)")
    p.add_argument("--k", type=int, default=10, help="top-k (default: %(default)s)")
    p.add_argument("--embed-dim", type=int, default=64, help="tower output width (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=4096, help="catalogue batch size (default: %(default)s)")
    p.add_argument("--seen", type=int, default=20, help="seen items masked per user (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--faiss", action="store_true", help="use FAISS when installed (default: exact torch search)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    import numpy as np
    import torch

    from modalink.recsys import Bags, InnerProductIndex, ItemFeatures, ItemTower

    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    n = args.items
    text = torch.randn(n, 384, generator=g)
    image = torch.randn(n, 512, generator=g)
    image[torch.rand(n, generator=g) < 0.2] = 0.0  # 20 % of items have no image
    rng = np.random.default_rng(args.seed)
    genres = Bags.from_lists([rng.choice(20, size=rng.integers(1, 4), replace=False) for _ in range(n)], 20)
    feats = ItemFeatures(n, {"text": text, "image": image}, {"genres": genres})
    tower = ItemTower.from_features(feats, embed_dim=args.embed_dim).eval()

    t = time.perf_counter()
    vecs = tower.embed_catalogue(feats, batch_size=args.batch_size, progress=True)
    t_embed = time.perf_counter() - t

    users = torch.nn.functional.normalize(torch.randn(args.users, args.embed_dim, generator=g), dim=1)
    exclude = [rng.choice(n, size=args.seen, replace=False).tolist() for _ in range(args.users)] if args.seen else None
    t = time.perf_counter()
    index = InnerProductIndex(vecs, use_faiss=True if args.faiss else False)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    scores, pos = index.search(users, args.k, exclude=exclude)
    t_search = time.perf_counter() - t

    # correctness on a sample: brute force with the same masking
    sample = list(range(min(50, args.users)))
    brute = (users[sample] @ vecs.T).numpy()
    if exclude is not None:
        for r in sample:
            brute[r, exclude[r]] = -np.inf
    ok = all(set(np.argsort(-brute[r])[:args.k].tolist()) == set(pos[r].tolist()) for r in sample)

    res = {"items": n, "users": args.users, "k": args.k, "embed_s": t_embed, "items_per_s": n / t_embed,
           "index_build_s": t_build, "search_s": t_search, "queries_per_s": args.users / t_search,
           "backend": index.backend, "threads": torch.get_num_threads(), "matches_brute_force": ok}
    print(f"catalogue embedding: {n:,} items in {t_embed:.2f} s ({n / t_embed:,.0f} items/s, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads)")
    print(f"top-{args.k} retrieval ({index.backend}): {args.users:,} users x {n:,} items in {t_search:.2f} s "
          f"({args.users / t_search:,.0f} queries/s; {args.seen} seen items masked per user); "
          f"index build {t_build:.3f} s")
    print(f"matches brute force on {len(sample)} users: {ok}")
    return res


if __name__ == "__main__":
    main()
