"""Score a FAME submission locally, the way the organisers do: EER per file, then the mean.

Each file's EER is :func:`modalink.metrics.fame_eer` (``roc_curve(labels, -score)`` and a
``brentq`` root, in percent): scores are DISTANCES. The leaderboard number is the mean of
the four EERs; a partial submission gets the mean of the files it has, flagged incomplete.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from challenge.files import ChallengeError
from challenge.naming import Edition
from challenge.validate import (Issue, SubmissionError, ValidationReport, load_ground_truth, load_references,
                                validate_against)

__all__ = ["FileScore", "ScoreReport", "score_submission", "MatplotlibMissing"]


class MatplotlibMissing(ChallengeError):
    """``--plot`` asked for, but matplotlib is not installed."""


@dataclass
class FileScore:
    """EER of one score file (percent) with its trial counts; ``auc`` is the AUC of ``-score``."""

    file: str
    train_lang: str
    test_lang: str
    condition: str
    eer: float
    auc: float
    n_pairs: int
    n_pos: int
    n_neg: int


@dataclass
class ScoreReport:
    """Result of :func:`score_submission`."""

    submission: str
    edition: str
    template: str
    langs: list[str]
    files: list[FileScore]
    mean_eer: float
    complete: bool
    n_expected: int
    warnings: list[Issue] = field(default_factory=list)
    trials: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def table(self) -> str:
        """Plain-text table: file, train, test, condition, EER; then the mean."""
        head = ("file", "train", "test", "condition", "EER (%)")
        rows = [(f.file, f.train_lang, f.test_lang, f.condition, f"{f.eer:.2f}") for f in self.files]
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" if i < 4 else f"{{:>{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*r) for r in rows]
        label = (f"mean EER of {len(self.files)} files" if self.complete
                 else f"mean EER of {len(self.files)} of {self.n_expected} files (PARTIAL, not a leaderboard score)")
        lines.append(f"{label}: {self.mean_eer:.2f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission": self.submission, "edition": self.edition, "template": self.template,
            "langs": self.langs, "complete": self.complete, "n_files": len(self.files),
            "n_expected": self.n_expected, "mean_eer": self.mean_eer,
            "files": [asdict(f) for f in self.files],
            "warnings": [w.to_dict() for w in self.warnings],
        }

    def to_csv(self) -> str:
        """One row per file, then a ``MEAN`` row (eer column only)."""
        buf = io.StringIO()
        cols = ["file", "train_lang", "test_lang", "condition", "eer", "auc", "n_pairs", "n_pos", "n_neg"]
        writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        for f in self.files:
            row = asdict(f)
            row["eer"] = f"{f.eer:.6f}"
            row["auc"] = f"{f.auc:.6f}"
            writer.writerow(row)
        writer.writerow({"file": "MEAN", "eer": f"{self.mean_eer:.6f}"})
        return buf.getvalue()

    def save_json(self, path: str | os.PathLike) -> Path:
        from modalink.io import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def save_csv(self, path: str | os.PathLike) -> Path:
        from modalink.io import atomic_write_text

        return atomic_write_text(path, self.to_csv())

    def plot(self, path: str | os.PathLike) -> Path:
        """Save DET curves (one per file, normal-deviate axes) to ``path``.

        Raises :class:`MatplotlibMissing` when matplotlib cannot be imported.
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise MatplotlibMissing("matplotlib is not installed: `pip install matplotlib` (or, in a clone of "
                                    "modalink, `pip install -e \".[plot]\"`) to draw DET curves") from None
        from scipy.stats import norm

        from modalink.io import atomic_path
        from modalink.metrics import det_curve

        path = Path(path)
        fig, ax = plt.subplots(figsize=(6, 6))
        lim = 1e-3
        for f in self.files:
            labels, scores = self.trials[f.file]
            p_miss, p_fa, _ = det_curve(labels, scores)
            ax.plot(norm.ppf(np.clip(p_fa, lim, 1 - lim)), norm.ppf(np.clip(p_miss, lim, 1 - lim)),
                    label=f"{f.file} (EER {f.eer:.2f}%)")
        ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 0.99, 0.999])
        ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        ax.plot([norm.ppf(lim), norm.ppf(1 - lim)], [norm.ppf(lim), norm.ppf(1 - lim)], "k:", lw=0.8)
        ax.set_xlabel("false alarm rate (%)")
        ax.set_ylabel("miss rate (%)")
        ax.set_title(f"DET, mean EER {self.mean_eer:.2f}%")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        fmt = path.suffix.lstrip(".").lower() or "png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path


def score_submission(path: str | os.PathLike, ground_truth_dir: str | os.PathLike, *,
                     pairs_dir: str | os.PathLike | None = None, edition: str | Edition | None = None,
                     template: str | None = None, ver: str | None = None, langs: Sequence[str] | None = None,
                     partial: bool = False) -> ScoreReport:
    """Validate and score a submission folder or zip against ``<ground_truth_dir>/<Lang>_test.txt``.

    Languages come from ``langs``, else ``ver``, else the two ground-truth files found.
    With ``pairs_dir`` the submission is also checked against the pair lists. Raises
    :class:`SubmissionError` when the submission is invalid (nothing is scored then).
    """
    from modalink.metrics import fame_eer, roc_auc

    gt = load_ground_truth(ground_truth_dir, ver=ver, langs=langs)
    if pairs_dir is not None:
        refs = load_references(pairs_dir, ver=ver, langs=None if ver else list(gt))
    else:  # the ground-truth files list the keys too
        refs = {lang: ref for lang, (ref, _) in gt.items()}
    report: ValidationReport = validate_against(path, refs, edition=edition, template=template,
                                                partial=partial, ground_truth=gt)
    if not report.ok:
        raise SubmissionError(report, action="cannot score")
    gt_by_lower = {k.lower(): v for k, v in gt.items()}
    files: list[FileScore] = []
    trials: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, entry in report.present.items():
        ref, labels = gt_by_lower[entry.test_lang.lower()]
        y = np.array([labels[k] for k in ref.keys], dtype=np.int64)
        s = np.array([report.scores[name][k] for k in ref.keys], dtype=np.float64)
        files.append(FileScore(name, entry.train_lang, entry.test_lang, entry.condition,
                               eer=fame_eer(y, s), auc=roc_auc(y, -s), n_pairs=int(y.size),
                               n_pos=int(y.sum()), n_neg=int(y.size - y.sum())))
        trials[name] = (y, s)
    mean = float(np.mean([f.eer for f in files]))
    return ScoreReport(str(path), report.edition.name, report.edition.template, report.langs, files, mean,
                       complete=report.complete, n_expected=len(report.expected),
                       warnings=report.warnings, trials=trials)
