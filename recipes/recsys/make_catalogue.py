#!/usr/bin/env python
"""Write a small real-media catalogue (photos from scikit-image, audio clips, texts, tags).

    python recipes/recsys/make_catalogue.py --output runs/catalogue
    python recipes/recsys/train.py --data-root runs/catalogue --output-dir runs/recsys_catalogue media.pretrained=false

Items are crops and mirror images of six photos shipped with scikit-image; users prefer one or
two photos, so content predicts interactions (see ``modalink.recsys.demo_catalogue``). A few
inputs are broken on purpose (a missing image, a non-image file, a silent clip, unknown item ids)
to show how bad input is counted. Writes ``items.csv``, ``interactions.csv``, ``images/``, ``audio/``.
"""
from __future__ import annotations

import sys

from modalink.cli import command_parser
from modalink.errors import run_cli
from modalink.progress import announce


def main(argv: list[str] | None = None) -> dict:
    p = command_parser(__doc__)
    p.add_argument("--output", default="runs/catalogue", help="folder to write (default: %(default)s)")
    p.add_argument("--items-per-photo", type=int, default=30)
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-broken", action="store_true", help="leave out the deliberately broken inputs")
    args = p.parse_args(argv)
    announce(f"writing the demo catalogue (photos, clips, texts, interactions) to {args.output} ...")
    from modalink.recsys.demo_catalogue import write_demo_catalogue

    info = write_demo_catalogue(args.output, items_per_photo=args.items_per_photo, n_users=args.users,
                                seed=args.seed, broken=not args.no_broken)
    print(f"wrote {info['items']} items, {info['users']} users, {info['interactions']} interactions to {args.output}")
    return info


if __name__ == "__main__":
    sys.exit(run_cli(main))
