"""What a recsys run reports: ``split.json``, ``media_report.json``, ``results.json`` and the
``results.md`` tables (tower vs popularity vs BPR-MF, cold items with subsets of their content,
the item media)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from modalink.io import atomic_write_text
from modalink.recsys.data import RecsysData, RecsysSplit
from modalink.recsys.evaluate import format_table

__all__ = ["SPLIT_FILE", "MEDIA_REPORT_FILE", "RESULTS_FILE", "RESULTS_TABLE_FILE", "split_summary",
           "write_data_reports", "results_markdown", "results_payload", "write_results"]

SPLIT_FILE = "split.json"
MEDIA_REPORT_FILE = "media_report.json"
RESULTS_FILE = "results.json"
RESULTS_TABLE_FILE = "results.md"

Results = Mapping[str, Mapping[str, Mapping[str, float]]]


def split_summary(data: RecsysData, split: RecsysSplit) -> dict[str, Any]:
    """The data set's size and the split's part sizes (what ``split.json`` holds)."""
    return {"dataset": data.name, "n_users": data.interactions.n_users, "n_items": data.interactions.n_items,
            "interactions": len(data.interactions), **split.summary()}


def write_data_reports(run_dir: str | Path, summary: Mapping[str, Any], info: Mapping[str, Any]) -> None:
    """Write ``split.json`` and, for a catalogue, ``media_report.json`` (catalogue and media counts)."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / SPLIT_FILE, json.dumps(summary, indent=2) + "\n")
    if "media" in info:
        media_report = {"catalogue": info["catalogue"], "media": info["media"]}
        atomic_write_text(run_dir / MEDIA_REPORT_FILE, json.dumps(media_report, indent=2) + "\n")


def results_markdown(dataset: str, k: int, results: Results, missing: Results, info: Mapping[str, Any],
                     seconds: Mapping[str, float]) -> str:
    """``results.md``: the test table, the cold-item table per content subset (``missing``), the
    item media (catalogue) and the training times (``seconds``: ``tower``, ``mf``, ``total``)."""
    lines = [f"# Recsys results ({dataset}, test split, K={k})", "", format_table(results, k), ""]
    if missing:
        lines += ["## Item-cold-start, tower with a subset of the content modalities", "",
                  f"| item modalities | NDCG@{k} | Recall@{k} | Cov@{k} |", "|---|---|---|---|"]
        lines += [f"| {n} | {r[f'ndcg@{k}']:.4f} | {r[f'recall@{k}']:.4f} | {r[f'coverage@{k}']:.3f} |"
                  for n, r in missing.items() if r]
        lines.append("")
    if "media" in info:
        lines += ["## Item media", "", "| modality | encoder | items with a file/text | embedded | missing files | "
                  "unreadable |", "|---|---|---|---|---|---|"]
        lines += [f"| {m} | {r['encoder']} | {r['with_source']} | {r['embedded']} | {r.get('missing_files', 0)} | "
                  f"{r['unreadable']} |" for m, r in info["media"].items()]
        c = info["catalogue"]
        lines += ["", f"Interactions skipped: {c['skipped_unknown_items']} naming unknown items, "
                      f"{c['skipped_below_min_rating']} below data.min_rating (details: media_report.json).", ""]
    lines.append(f"Training time: tower {seconds['tower']:.0f} s, BPR-MF {seconds['mf']:.0f} s; "
                 f"total {seconds['total']:.0f} s.")
    return "\n".join(lines) + "\n"


def results_payload(dataset: str, k: int, summary: Mapping[str, Any], results: Results, missing: Results,
                    info: Mapping[str, Any], seconds: Mapping[str, float]) -> dict[str, Any]:
    """``results.json``: the split, the test results per model and part, the cold-item results per
    content subset, the seconds and, for a catalogue, the media and catalogue reports."""
    payload = {"dataset": dataset, "k": k, "split": dict(summary), "results": results,
               "missing_modalities_item_cold": missing,
               "seconds": {n: round(float(v), 1) for n, v in seconds.items()}}
    if "media" in info:
        payload["media"] = info["media"]
        payload["catalogue"] = info["catalogue"]
    return payload


def write_results(run_dir: str | Path, summary: Mapping[str, Any], k: int, results: Results, missing: Results,
                  info: Mapping[str, Any], seconds: Mapping[str, float]) -> tuple[dict[str, Any], str]:
    """Write ``results.json`` and ``results.md`` (``summary``: :func:`split_summary`); returns
    ``(payload, markdown)``."""
    run_dir = Path(run_dir)
    dataset = str(summary["dataset"])
    payload = results_payload(dataset, k, summary, results, missing, info, seconds)
    report = results_markdown(dataset, k, results, missing, info, seconds)
    atomic_write_text(run_dir / RESULTS_FILE, json.dumps(payload, indent=2) + "\n")
    atomic_write_text(run_dir / RESULTS_TABLE_FILE, report)
    return payload, report
