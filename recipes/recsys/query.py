#!/usr/bin/env python
"""Embed NEW items from their raw files with a trained item tower and query the exported index.

    python recipes/recsys/query.py --run-dir runs/recsys_catalogue --image photo.jpg --text "espresso cup"
    python recipes/recsys/query.py --run-dir runs/recsys_catalogue --items new_items.csv -k 5

A new item needs no interactions and no ID: it is embedded from its text, tags, image and/or audio
by the same media encoders as the catalogue (the run's ``tower_model/`` contract names them), then
its nearest catalogue items are read from ``item_index.npz`` (inner product). ``--items`` takes a
CSV in the ``items.csv`` layout (paths relative to that file's folder). Prints one JSON object per
new item: the neighbours with scores, the modalities used and any problem (missing or unreadable
file, unknown tag). Errors end in one line (``--debug`` shows the traceback).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from modalink.cli import command_parser
from modalink.errors import InputError, run_cli


def main(argv: list[str] | None = None) -> list[dict]:
    p = command_parser(__doc__)
    p.add_argument("--run-dir", required=True, help="a finished train.py run folder on a catalogue")
    p.add_argument("--items", help="CSV of new items (item_id, text, tags, image, audio columns)")
    p.add_argument("--text")
    p.add_argument("--tags", help="|-separated tags")
    p.add_argument("--image")
    p.add_argument("--audio")
    p.add_argument("-k", type=int, default=10, help="neighbours per item (default: %(default)s)")
    args = p.parse_args(argv)
    from modalink.recsys.raw_items import ColdItemEncoder

    if args.items:
        import csv

        path = Path(args.items)
        if not path.is_file():
            raise FileNotFoundError(f"--items {path}: file not found")
        with open(path, newline="", encoding="utf-8-sig") as fh:
            items = [dict(r) for r in csv.DictReader(fh)]
        if not items:
            raise InputError(f"--items {path}: no rows after the header")
        base = path.parent
    else:
        item = {k: getattr(args, k) for k in ("text", "tags", "image", "audio") if getattr(args, k)}
        if not item:
            raise InputError("give the new item's files: --image, --audio, --text and/or --tags (or --items FILE)")
        items, base = [item], Path.cwd()
    enc = ColdItemEncoder.from_run(args.run_dir)
    results = enc.query(items, k=args.k, base_dir=base)
    for it, res in zip(items, results):
        print(json.dumps({"item": it.get("item_id") or {k: v for k, v in it.items() if v}, **res}))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
