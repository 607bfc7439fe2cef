"""Check a FAME submission (folder or zip) before it is sent: names, keys, numbers.

Errors (the organisers' scorer would fail or score the wrong thing):

* the expected file set: a missing file (unless ``partial``), an unexpected file (with a
  hint at the expected name: wrong language, other edition's name, case), subfolders in a zip;
* each line is exactly ``key score``: no blank lines, no 1 or 3+ fields;
* the score is a finite decimal number; every pair-list key appears exactly once; no key
  outside the pair list (a key of the other language's list is pointed out);
* with ground truth: ground truth and pair list hold the same keys.

Warnings: scores that look like similarities (:func:`similarity_hint`, or, with ground
truth, AUC of ``-score`` below 0.5: same-person pairs have the HIGHER scores), separators
other than one space, CRLF line ends, a UTF-8 BOM, ignored files in a folder.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from challenge.manifest import MANIFEST_NAME, ManifestError, check_manifest, parse_manifest
from challenge.files import (NUMBER_RE, ChallengeError, find_lists, ground_truth_lines, read_ground_truth,
                             read_pairs)
from challenge.naming import VERSIONS, Edition, SubmissionEntry, get_edition

__all__ = [
    "Issue", "ValidationReport", "Reference", "SubmissionError", "validate_submission",
    "validate_against", "similarity_hint", "load_references", "load_ground_truth",
]

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Issue:
    """One finding: ``severity`` ("error"/"warning"), a short ``code``, where, and what."""

    severity: str
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = self.file or "submission"
        if self.line is not None:
            where += f":{self.line}"
        key = f" key {self.key!r}:" if self.key is not None else ""
        return f"{self.severity}: {where}:{key} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "file": self.file, "line": self.line,
                "key": self.key, "message": self.message}


@dataclass
class Reference:
    """The keys one language's test list holds, and where (for messages)."""

    lang: str
    path: Path
    keys: list[str]
    lines: dict[str, int]


@dataclass
class ValidationReport:
    """Result of :func:`validate_submission`. ``ok`` is True when there is no error."""

    submission: str
    edition: Edition
    langs: list[str]
    expected: dict[str, SubmissionEntry]
    partial: bool = False
    present: dict[str, SubmissionEntry] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    n_errors: int = 0
    n_warnings: int = 0
    scores: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == WARNING]

    @property
    def ok(self) -> bool:
        return self.n_errors == 0

    @property
    def complete(self) -> bool:
        """All expected files are present."""
        return set(self.present) == set(self.expected)

    def format(self) -> str:
        """Human-readable summary (issues first, then the verdict)."""
        lines = [str(i) for i in self.issues]
        files = ", ".join(self.present) or "none"
        state = "OK" if self.ok else "INVALID"
        lines.append(
            f"{state}: {self.submission} ({self.edition.name} names, languages {', '.join(self.langs)}; "
            f"{len(self.present)}/{len(self.expected)} files: {files}; "
            f"{self.n_errors} error(s), {self.n_warnings} warning(s))")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission": self.submission, "edition": self.edition.name, "template": self.edition.template,
            "langs": self.langs, "ok": self.ok, "complete": self.complete, "partial": self.partial,
            "files": {n: e._asdict() for n, e in self.present.items()},
            "n_errors": self.n_errors, "n_warnings": self.n_warnings,
            "issues": [i.to_dict() for i in self.issues],
        }


class SubmissionError(ChallengeError):
    """An invalid submission; ``report`` holds the details."""

    def __init__(self, report: ValidationReport, action: str = "submission is invalid"):
        self.report = report
        errs = report.errors
        head = "\n".join(str(i) for i in errs[:10])
        more = f"\n... {report.n_errors - 10} more error(s)" if report.n_errors > 10 else ""
        super().__init__(f"{action}: {report.n_errors} error(s) in {report.submission}\n{head}{more}")


class _Collector:
    """Collects issues, keeping the first ``cap`` of each (file, code) and counting the rest."""

    def __init__(self, cap: int):
        self.cap = cap
        self.issues: list[Issue] = []
        self.counts: Counter[tuple[str, str | None, str]] = Counter()

    def add(self, severity: str, code: str, message: str, file: str | None = None,
            line: int | None = None, key: str | None = None) -> None:
        slot = (severity, file, code)
        self.counts[slot] += 1
        if self.counts[slot] <= self.cap:
            self.issues.append(Issue(severity, code, message, file, line, key))

    def finish(self, report: ValidationReport) -> None:
        for (severity, file, code), n in self.counts.items():
            if n > self.cap:
                self.issues.append(Issue(severity, code, f"... and {n - self.cap} more '{code}' {severity}s "
                                         "not shown", file))
        report.issues = self.issues
        report.n_errors = sum(n for (s, _, _), n in self.counts.items() if s == ERROR)
        report.n_warnings = sum(n for (s, _, _), n in self.counts.items() if s == WARNING)


def similarity_hint(scores: Sequence[float] | np.ndarray) -> str | None:
    """Why ``scores`` look like similarities rather than distances, or None.

    Distances (cosine distance ``1 - cos``, Euclidean) are never negative, and for
    L2-normalised embeddings they spread over [0, 2]. Two signatures of similarities:

    * all scores in [-1, 1] and at least 1 % of them negative (cosine similarity);
    * all scores in [0, 1] and at least 25 % of them >= 0.9 (probabilities / similarities
      with a mass near 1).

    Needs 20+ finite scores. A heuristic: distances that happen to match get a warning only.
    """
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size < 20:
        return None
    lo, hi = float(s.min()), float(s.max())
    eps = 1e-6
    neg = float((s < 0).mean())
    if lo >= -1 - eps and hi <= 1 + eps and neg >= 0.01:
        return (f"all scores lie in [-1, 1] and {100 * neg:.0f}% are negative: this looks like cosine "
                "SIMILARITY, but the scorer reads a DISTANCE (lower = same person); write 1 - s "
                "(or -s) unless these already are negated similarities")
    high = float((s >= 0.9).mean())
    if lo >= 0 and hi <= 1 + eps and high >= 0.25:
        return (f"all scores lie in [0, 1] and {100 * high:.0f}% are >= 0.9: this looks like a "
                "similarity or same-person probability, but the scorer reads a DISTANCE "
                "(lower = same person); write 1 - s unless these are distances")
    return None


# ---------------------------------------------------------------------------------------------
# reading the submission (folder or zip)
# ---------------------------------------------------------------------------------------------
def _open_submission(path: Path, col: _Collector) -> dict[str, Callable[[], bytes]]:
    """``{file name: reader}`` of the submission's candidate files; notes odd entries."""
    if path.is_dir():
        out: dict[str, Callable[[], bytes]] = {}
        for entry in sorted(path.iterdir()):
            if entry.name.startswith("."):
                col.add(WARNING, "ignored", "hidden file ignored (not part of the submission)", entry.name)
            elif entry.is_dir():
                col.add(WARNING, "ignored", "subfolder ignored (not part of the submission)", entry.name)
            elif entry.suffix.lower() == ".zip":
                col.add(WARNING, "ignored", "zip file ignored when validating the folder", entry.name)
            elif entry.is_file():
                out[entry.name] = entry.read_bytes
        return out
    if path.is_file():
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise ChallengeError(f"{path}: not a zip file (give a folder or a .zip)") from None
        out = {}
        try:
            with zf:
                names = Counter(i.filename for i in zf.infolist())
                for info in zf.infolist():
                    name = info.filename
                    if info.is_dir() or "/" in name.rstrip("/") or "\\" in name:
                        col.add(ERROR, "subfolder", "zip entry is not at the zip root (files must sit at the "
                                "root, no folders; repack with `python -m challenge pack`)", name)
                        continue
                    if names[name] > 1:
                        col.add(ERROR, "duplicate-file", f"zip holds {names[name]} entries with this name", name)
                        continue
                    out[name] = (lambda data: (lambda: data))(zf.read(info))
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise ChallengeError(f"{path}: the zip file is damaged ({exc}); pack it again with "
                                 f"`python -m challenge pack`") from None
        return out
    raise ChallengeError(f"submission not found: {path}")


# ---------------------------------------------------------------------------------------------
# one score file
# ---------------------------------------------------------------------------------------------
def _check_score_file(name: str, data: bytes, ref: Reference, key_owner: Mapping[str, str],
                      col: _Collector) -> dict[str, float] | None:
    """Check one file's lines against its reference keys; return ``{key: score}`` or None."""
    if data.startswith(b"\xef\xbb\xbf"):
        col.add(WARNING, "bom", "file starts with a UTF-8 byte-order mark; some parsers read it into "
                "the first key", name, 1)
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        col.add(ERROR, "encoding", f"not UTF-8 text ({err.reason} at byte {err.start})", name, line)
        return None
    if not text.strip():
        col.add(ERROR, "empty-file", f"file is empty; expected {len(ref.keys)} lines 'key score'", name)
        return None
    if "\r" in text:
        col.add(WARNING, "line-ends", "file has CR/CRLF line ends; prefer plain \\n", name)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    scores: dict[str, float] = {}
    first_line: dict[str, int] = {}
    ok = True
    odd_sep_reported = False
    bad_line_keys: set[str] = set()  # keys on lines already reported; not reported again as missing
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        fields = line.split()
        if not fields:
            col.add(ERROR, "blank-line", "blank line (every line must be 'key score')", name, lineno)
            ok = False
            continue
        key = fields[0]
        bad_line_keys.add(key)  # removed again once the line is accepted
        if len(fields) != 2:
            col.add(ERROR, "field-count", f"expected 2 fields 'key score', found {len(fields)}: "
                    f"{line.strip()[:80]!r}", name, lineno, key)
            ok = False
            continue
        if not odd_sep_reported and line != f"{fields[0]} {fields[1]}":
            col.add(WARNING, "separator", "fields should be separated by exactly one space, without "
                    "leading/trailing spaces", name, lineno, key)
            odd_sep_reported = True
        raw_score = fields[1]
        if not NUMBER_RE.match(raw_score):
            if raw_score.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                col.add(ERROR, "non-finite", f"score is {raw_score!r}; scores must be finite numbers",
                        name, lineno, key)
            else:
                col.add(ERROR, "bad-number", f"score field {raw_score!r} is not a number", name, lineno, key)
            ok = False
            continue
        value = float(raw_score)
        if not np.isfinite(value):
            col.add(ERROR, "non-finite", f"score {raw_score!r} overflows to infinity", name, lineno, key)
            ok = False
            continue
        if key not in ref.lines:
            owner = key_owner.get(key)
            hint = (f"; it belongs to {owner} — is this file for the right test language?"
                    if owner and owner != ref.path.name else "")
            col.add(ERROR, "unknown-key", f"key is not in the pair list {ref.path.name}{hint}", name, lineno, key)
            ok = False
            continue
        if key in first_line:
            col.add(ERROR, "duplicate-key", f"duplicate key (first on line {first_line[key]})", name, lineno, key)
            ok = False
            continue
        first_line[key] = lineno
        scores[key] = value
    bad_line_keys.difference_update(scores)
    missing = [k for k in ref.keys if k not in scores and k not in bad_line_keys]
    for key in missing:
        col.add(ERROR, "missing-key", f"no score for this key of {ref.path.name} (line {ref.lines[key]})",
                name, None, key)
    if missing or bad_line_keys:
        ok = False
    hint = similarity_hint(list(scores.values()))
    if hint:
        col.add(WARNING, "similarity", hint, name)
    else:
        for code, message in distribution_warnings(list(scores.values())):
            col.add(WARNING, code, message, name)
    return scores if ok else None


def distribution_warnings(scores: Sequence[float] | np.ndarray) -> list[tuple[str, str]]:
    """Warnings about a score distribution that no ground truth is needed to see."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size < 2:
        return []
    out = []
    if float(s.max() - s.min()) <= 1e-12 * max(1.0, abs(float(s.max()))):
        out.append(("constant", f"all {s.size} scores are equal ({s[0]:g}): the scorer cannot rank the pairs and "
                                f"will report an EER of about 50 %; was the model trained?"))
    elif s.size >= 20 and s.min() >= 0 and s.max() <= 1 + 1e-6:
        out.append(("direction", "all scores lie in [0, 1], as cosine SIMILARITIES of non-negative embeddings "
                                 "do; the scorer reads DISTANCES (lower = same person). If these are "
                                 "similarities write 1 - s; check the direction with --ground-truth on "
                                 "labelled pairs"))
    return out


# ---------------------------------------------------------------------------------------------
# the whole submission
# ---------------------------------------------------------------------------------------------
def load_references(pairs_dir: str | os.PathLike, ver: str | None = None,
                    langs: Sequence[str] | None = None) -> dict[str, Reference]:
    """Read the pair lists ``<Lang>_test.txt`` of a submission's languages (see :func:`find_lists`)."""
    out = {}
    for lang, path in find_lists(pairs_dir, ver=ver, langs=langs, what="pair list").items():
        pairs = read_pairs(path)
        out[lang] = Reference(lang, path, [p.key for p in pairs], {p.key: p.line for p in pairs})
    return out


def load_ground_truth(gt_dir: str | os.PathLike, ver: str | None = None,
                      langs: Sequence[str] | None = None) -> dict[str, tuple[Reference, dict[str, int]]]:
    """Read the ground-truth files ``<Lang>_test.txt``: ``{Lang: (Reference, {key: label})}``."""
    out = {}
    for lang, path in find_lists(gt_dir, ver=ver, langs=langs, what="ground-truth file").items():
        labels = read_ground_truth(path)
        out[lang] = (Reference(lang, path, list(labels), ground_truth_lines(path)), labels)
    return out


def _entry_problems(manifest: Mapping[str, Any], expected: Mapping[str, SubmissionEntry],
                    langs: Sequence[str]) -> list[tuple[str, str]]:
    """``[(file, problem)]`` for manifest records whose (training language, test language,
    condition) is not what the file name stands for in this submission: a model trained on a
    language the version does not have, or a file written for another language pair."""
    out = []
    known = {lang.lower() for lang in langs}
    versions = [v for v, pair in VERSIONS.items() if {x.lower() for x in pair} == known]
    scope = f"FAME {versions[0]} ({'/'.join(langs)})" if versions else f"a submission over {'/'.join(langs)}"
    recorded = {x for rec in manifest["files"].values() for x in (rec["train_lang"], rec["test_lang"])}
    other = [v for v, pair in VERSIONS.items() if {x.lower() for x in pair} == {x.lower() for x in recorded}]
    if other and {x.lower() for x in recorded} != known:
        return [(MANIFEST_NAME, f"manifest.json records a FAME {other[0]} submission ({'/'.join(sorted(recorded))}), "
                                f"checked here as {scope}: check that --ver / --langs / --pairs name the version "
                                "it was written for")]
    for name, rec in sorted(manifest["files"].items()):
        train, test, cond = rec["train_lang"], rec["test_lang"], rec["condition"]
        bad = [x for x in (train, test) if x.lower() not in known]
        if bad:
            out.append((name, f"manifest.json records a model trained on {train}, tested on {test}, but {bad[0]} is "
                              f"not a language of {scope}; write the file again with the right --train-lang "
                              "(and --ver)"))
            continue
        entry = expected.get(name)
        if entry is not None and (train.lower(), test.lower(), cond) != (
                entry.train_lang.lower(), entry.test_lang.lower(), entry.condition):
            out.append((name, f"manifest.json records train={train}, test={test} ({cond}), but in {scope} this "
                              f"file is train={entry.train_lang}, test={entry.test_lang} ({entry.condition}); "
                              "write it again with the right --train-lang"))
    return out


def validate_against(path: str | os.PathLike, refs: Mapping[str, Reference], *,
                     edition: str | Edition | None = None, template: str | None = None,
                     partial: bool = False,
                     ground_truth: Mapping[str, tuple[Reference, Mapping[str, int]]] | None = None,
                     max_issues: int = 20) -> ValidationReport:
    """Validate a submission against already-loaded reference key lists (one per language)."""
    path = Path(path)
    ed = get_edition(edition, template)
    langs = list(refs)
    expected = ed.expected_files(langs)
    report = ValidationReport(str(path), ed, langs, expected, partial=partial)
    col = _Collector(max_issues)
    files = _open_submission(path, col)
    if MANIFEST_NAME in files:
        try:
            manifest = parse_manifest(files.pop(MANIFEST_NAME)())
        except ManifestError as exc:
            col.add(ERROR, "manifest", str(exc), MANIFEST_NAME)
        else:
            for fname, kind, problem in check_manifest(manifest, {n: r() for n, r in files.items()}):
                # a partial submission may leave out files of the set on purpose
                col.add(WARNING if kind == "missing" and partial else ERROR, "manifest", problem, fname)
            for fname, problem in _entry_problems(manifest, expected, langs):
                col.add(ERROR, "manifest-entry", problem, fname)
    key_owner: dict[str, str] = {}
    for ref in refs.values():
        for key in ref.keys:
            key_owner.setdefault(key, ref.path.name)

    foreign: set[str] = set()  # languages of unexpected files that this submission does not have
    for name in files:
        if name not in expected:
            col.add(ERROR, "unexpected-file", f"unexpected file; {ed.suggest(name, langs)}", name)
            match = ed.pattern().match(name)
            if match:
                foreign.update(g for k, g in match.groupdict().items()
                               if k in ("test_lang", "train_lang") and g and g.lower() not in
                               {lang.lower() for lang in langs})
    for name, entry in expected.items():
        if name not in files:
            if partial:
                col.add(WARNING, "missing-file", f"not present (partial submission): model trained on "
                        f"{entry.train_lang}, tested on {entry.test_lang} ({entry.condition})", name)
            elif foreign:
                col.add(ERROR, "missing-file", f"missing file for the model trained on {entry.train_lang}, "
                        f"tested on {entry.test_lang} ({entry.condition}); the submission has files for "
                        f"{', '.join(sorted(foreign))} instead: check that --ver / --langs / --pairs name the "
                        f"version it was written for (here: {', '.join(langs)})", name)
            else:
                col.add(ERROR, "missing-file", f"missing file for the model trained on {entry.train_lang}, "
                        f"tested on {entry.test_lang} ({entry.condition}); use --partial to allow "
                        "an incomplete submission", name)
            continue
        report.present[name] = entry
        scores = _check_score_file(name, files[name](), refs[entry.test_lang], key_owner, col)
        if scores is not None:
            report.scores[name] = scores
    if not report.present:
        col.add(ERROR, "no-files", f"no expected score file found; expected: {', '.join(expected)}")

    if ground_truth is not None:
        gt_by_lower = {k.lower(): v for k, v in ground_truth.items()}
        for lang, ref in refs.items():
            if lang.lower() not in gt_by_lower:
                raise ChallengeError(f"no ground truth for {lang} (have: {', '.join(ground_truth)})")
            gt_ref, labels = gt_by_lower[lang.lower()]
            extra = [k for k in gt_ref.keys if k not in ref.lines]
            lacking = [k for k in ref.keys if k not in labels]
            for key in extra[:3]:
                col.add(ERROR, "gt-mismatch", f"ground-truth key is not in the pair list {ref.path.name}",
                        str(gt_ref.path), gt_ref.lines.get(key), key)
            for key in lacking[:3]:
                col.add(ERROR, "gt-mismatch", f"pair-list key (line {ref.lines[key]}) has no ground-truth label",
                        str(gt_ref.path), None, key)
            if extra or lacking:
                continue
            for name, entry in report.present.items():
                if entry.test_lang != lang or name not in report.scores:
                    continue
                from modalink.metrics import roc_auc

                y = np.array([labels[k] for k in ref.keys])
                s = np.array([report.scores[name][k] for k in ref.keys])
                auc = roc_auc(y, -s)
                if auc < 0.5:
                    col.add(WARNING, "similarity",
                            f"same-person pairs have HIGHER scores than different-person pairs (AUC of "
                            f"-score = {auc:.3f} < 0.5): the scores look like similarities, and the "
                            f"scorer would report about 100 - EER; submit distances (e.g. 1 - s)", name)
    col.finish(report)
    return report


def validate_submission(path: str | os.PathLike, pairs_dir: str | os.PathLike, *,
                        edition: str | Edition | None = None, template: str | None = None,
                        ver: str | None = None, langs: Sequence[str] | None = None,
                        ground_truth_dir: str | os.PathLike | None = None, partial: bool = False,
                        max_issues: int = 20) -> ValidationReport:
    """Validate a submission folder or zip against the pair lists in ``pairs_dir``.

    Languages come from ``langs``, else ``ver`` (``v1``/``v2``/``v3``), else the two
    ``<Lang>_test.txt`` files in ``pairs_dir``. File names follow ``edition`` (``"2026"``
    default, ``"2024"``) or a custom ``template``. With ``ground_truth_dir`` the labels are
    also used (key-set agreement; AUC check for similarity-like scores). ``partial`` turns
    missing files into warnings. At most ``max_issues`` issues of one kind per file are
    listed (all are counted).

    Returns a :class:`ValidationReport`; raises :class:`ChallengeError` (or ValueError)
    when the inputs themselves are unusable (missing folders, malformed pair lists, bad template).
    """
    refs = load_references(pairs_dir, ver=ver, langs=langs)
    gt = None
    if ground_truth_dir is not None:
        gt = load_ground_truth(ground_truth_dir, ver=ver, langs=None if ver else list(refs))
    return validate_against(path, refs, edition=edition, template=template, partial=partial,
                            ground_truth=gt, max_issues=max_issues)
