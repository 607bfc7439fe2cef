"""``python -m challenge {write,validate,pack,score,norm,fuse}``: FAME submission files from the shell.

Exit codes: 0 success, 1 invalid submission (the errors are printed), 2 unusable input
(missing folder, malformed pair list, bad option).

The parser is built from :mod:`modalink.cli`'s shared pieces (help layout, ``--debug``), like
every recipe's, so ``--debug`` works before or after the subcommand and shows the traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from challenge.files import ChallengeError, read_pair_keys, read_score_values, write_scores
from challenge.naming import EDITIONS, VERSIONS, check_language_pair, condition_for, get_edition
from challenge.validate import ValidationReport, similarity_hint
from modalink.cli import add_subcommand, add_subcommands, command_parser
from modalink.errors import run_cli
from modalink.face_voice.layout import LIST_SUFFIX

EPILOG = ("Scores are DISTANCES: lower = same person. File names (2026 default): "
          "sub_score_<TestLang>_{heard,unheard}.txt, four per version.")


def _add_naming(p: argparse.ArgumentParser) -> None:
    p.add_argument("--edition", choices=sorted(EDITIONS), default="2026",
                   help="file-name scheme: 2026 sub_score_<TestLang>_<cond>.txt (default), "
                        "2024 sub_scores_<TestLang>_<cond>.txt")
    p.add_argument("--template", metavar="T", default=None,
                   help="custom file-name template with {test_lang}, {train_lang}, {condition} "
                        "(overrides --edition), e.g. 'team_{train_lang}_{test_lang}_{condition}.txt'")


def _add_langs(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ver", choices=sorted(VERSIONS), default=None,
                   help="FAME version: v1 English/Urdu, v2 English/Hindi, v3 English/German "
                        "(default: the two <Lang>_test.txt lists found)")
    g.add_argument("--langs", nargs="+", metavar="LANG", default=None,
                   help="the submission's languages, e.g. --langs English German")
    p.add_argument("--partial", action="store_true",
                   help="allow an incomplete submission (e.g. only one training language's two files)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m challenge``."""
    parser = command_parser("Write, validate, pack and score FAME challenge submissions.",
                            prog="python -m challenge", epilog=EPILOG)
    sub = add_subcommands(parser, dest="command", metavar="{write,validate,pack,score,norm,fuse}")

    w = add_subcommand(sub, "write", help="write one score file from a .npy / text file of scores",
                       description="Write one submission score file ('key score' lines) from scores aligned "
                                   "with a pair list: a .npy array, a text file with one number per line, "
                                   "or a 'key score' file (reordered to the pair list).", epilog=EPILOG)
    w.add_argument("scores", type=Path, help=".npy (1-D) or text file of scores, in pair-list order")
    w.add_argument("--pair-list", type=Path, required=True, metavar="FILE",
                   help="the pair list the scores belong to, e.g. splits/v3/German_test.txt")
    w.add_argument("-o", "--output", type=Path, required=True,
                   help="output .txt file, or a folder (the name then comes from the edition/template)")
    w.add_argument("--train-lang", default=None, help="language the model was trained on (needed for a folder output)")
    w.add_argument("--test-lang", default=None, help="test language (default: from the pair list name <Lang>_test.txt)")
    w.add_argument("--negate", action="store_true",
                   help="the input scores are similarities (higher = same person): write -score")
    w.add_argument("--ver", choices=sorted(VERSIONS), default=None,
                   help="FAME version, to check the languages against it (default: the pair list's folder "
                        "when it is named v1, v2 or v3, else any version)")
    w.add_argument("--force", action="store_true",
                   help="replace an existing file that another model (another --train-lang) or another tool wrote")
    _add_naming(w)

    v = add_subcommand(sub, "validate", help="check a submission folder or zip",
                       description="Check a submission folder or zip: file names, keys, numbers.", epilog=EPILOG)
    v.add_argument("submission", type=Path, help="submission folder or .zip")
    v.add_argument("--pairs", type=Path, required=True, metavar="DIR",
                   help="folder with the pair lists <Lang>_test.txt (or the root holding v1/ v2/ v3/ with --ver)")
    v.add_argument("--ground-truth", type=Path, default=None, metavar="DIR",
                   help="folder with ground-truth <Lang>_test.txt ('key label'): also checks score direction")
    _add_naming(v)
    _add_langs(v)

    k = add_subcommand(sub, "pack", help="validate a folder, then zip exactly its expected files",
                       description="Validate a submission folder, then zip exactly the expected score files "
                                   "at the zip root. Nothing is written when the folder is invalid.",
                       epilog=EPILOG)
    k.add_argument("folder", type=Path, help="submission folder")
    k.add_argument("--pairs", type=Path, required=True, metavar="DIR", help="folder with the pair lists <Lang>_test.txt")
    k.add_argument("-o", "--output", type=Path, required=True, help="zip file to write")
    k.add_argument("--allow-similarities", action="store_true",
                   help="pack a folder without manifest.json even when its scores look like similarities "
                        "(by default that is refused: the scorer reads distances)")
    _add_naming(k)
    _add_langs(k)

    s = add_subcommand(sub, "score", help="EER per file and the mean, as the organisers compute them",
                       description="Score a submission folder or zip against ground truth: EER per file "
                                   "(roc_curve(labels, -score), brentq) and the mean of the four.",
                       epilog=EPILOG)
    s.add_argument("submission", type=Path, help="submission folder or .zip")
    s.add_argument("--ground-truth", type=Path, required=True, metavar="DIR",
                   help="folder with <Lang>_test.txt files of 'key label' lines (1 = same person)")
    s.add_argument("--pairs", type=Path, default=None, metavar="DIR", help="also check against these pair lists")
    s.add_argument("--report", type=Path, default=None, metavar="JSON", help="write the scores as JSON")
    s.add_argument("--csv", type=Path, default=None, help="write the scores as CSV")
    s.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="draw DET curves (needs matplotlib; skipped with a message otherwise)")
    _add_naming(s)
    _add_langs(s)
    _add_combine_commands(sub)
    return parser


def _add_combine_commands(sub: argparse._SubParsersAction) -> None:
    """``norm`` and ``fuse``: new systems from FAME run folders (:mod:`challenge.combine`)."""
    n = add_subcommand(sub, "norm", help="S-norm / AS-norm a run's submission with its training cohort",
                       description="Normalise a FAME run's submission (S-norm, or AS-norm over the top-k closest "
                                   "cohort entries) with the cohort embeddings the run exported "
                                   "(<run>/<ver>_<Lang>/scoring.npz); scores stay distances. Writes OUT/submission "
                                   "and the validation EER before and after, so the choice can be made on "
                                   "validation.", epilog=EPILOG)
    n.add_argument("run", type=Path, help="run folder of recipes/fame/train.py (holding submission/ and <ver>_<Lang>/)")
    n.add_argument("-o", "--output", type=Path, required=True, help="output folder (new, or an earlier output)")
    n.add_argument("--method", choices=("snorm", "asnorm"), default="snorm")
    n.add_argument("--top-k", type=int, default=None, help="asnorm: cohort entries kept (closest to each side)")
    n.add_argument("--cohort", choices=("identity_means", "all"), default="identity_means",
                   help="one mean embedding per training identity, or every training row")
    n.add_argument("--pairs", type=Path, default=None, metavar="DIR", help="check the keys against these pair lists")
    _add_naming(n)

    f = add_subcommand(sub, "fuse", help="fuse several runs' submissions into one",
                       description="Fuse the submissions of several runs (or submission folders) file by file: "
                                   "mean of z-normalised scores, or linear logistic-regression fusion with weights "
                                   "learned on the runs' validation trials. Inputs must hold the same files, pair "
                                   "keys and FAME version. The fused submission's manifest names every input.",
                       epilog=EPILOG)
    f.add_argument("inputs", type=Path, nargs="+", help="run folders (or submission folders, for --method mean)")
    f.add_argument("-o", "--output", type=Path, required=True, help="output folder (new, or an earlier output)")
    f.add_argument("--method", choices=("mean", "logreg"), default="mean")
    f.add_argument("--pairs", type=Path, default=None, metavar="DIR", help="check the keys against these pair lists")
    _add_naming(f)


def _cmd_combine(args: argparse.Namespace) -> int:
    from challenge.combine import fuse_runs, normalise_run, write_combined

    if args.template:
        raise ChallengeError("--template is not supported by norm/fuse: the output uses --edition names")
    if args.command == "norm":
        from modalink.score_norm import NormSpec

        if args.method == "asnorm" and args.top_k is None:
            raise ChallengeError("--method asnorm needs --top-k (cohort entries kept)")
        combined = normalise_run(args.run, NormSpec(args.method, args.cohort,
                                                    args.top_k if args.method == "asnorm" else None))
    else:
        combined = fuse_runs(args.inputs, args.method)
    out = write_combined(args.output, combined, edition=args.edition, pairs_dir=args.pairs)
    for lang, row in combined["record"].get("validation_eer", {}).items():
        shown = {k: " / ".join(f"{x:.2f}" for x in v) if isinstance(v, list) else f"{v:.2f}" for k, v in row.items()}
        print(f"{lang}: validation EER (%) " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    print(f"wrote {out / 'submission'} and {out / 'combine.json'}")
    return 0


def _print_issues(report: ValidationReport) -> None:
    for issue in report.issues:
        print(issue, file=sys.stderr if issue.severity == "error" else sys.stdout)


def _cmd_write(args: argparse.Namespace) -> int:
    keys = read_pair_keys(args.pair_list)
    scores = read_score_values(args.scores, keys)
    if args.negate:
        scores = -scores
    out: Path = args.output
    if out.is_dir() or out.suffix == "" or str(out).endswith(("/", "\\")):
        test = args.test_lang
        if test is None:
            name = args.pair_list.name
            if not name.endswith(LIST_SUFFIX):
                raise ChallengeError(f"cannot tell the test language from {name!r}; pass --test-lang")
            test = name[: -len(LIST_SUFFIX)]
        if args.train_lang is None:
            raise ChallengeError("writing into a folder needs --train-lang (the language the model was trained on)")
        ver = args.ver or _version_of_folder(args.pair_list.parent)
        try:
            train, test = check_language_pair(args.train_lang, test, ver)
        except ValueError as err:
            raise ChallengeError(f"{err}; nothing written") from None
        out = out / get_edition(args.edition, args.template).file_name(train, test)
        cond = condition_for(train, test)
        what = f" (trained on {train}, tested on {test}: {cond})"
        _write_into_folder(out, keys, scores, train, test, cond, args)
    else:
        what = ""
        write_scores(out, keys, scores)
    print(f"wrote {out}{what}: {len(keys)} scores")
    hint = similarity_hint(scores)
    if hint:
        print(f"warning: {hint}")
    return 0


def _version_of_folder(folder: Path) -> str | None:
    """The FAME version a pair-list folder is named after (``.../v3/``), else None."""
    name = folder.resolve().name.lower()
    return name if name in VERSIONS else None


def _write_into_folder(out: Path, keys: list[str], scores, train: str, test: str, cond: str,
                       args: argparse.Namespace) -> None:
    """Write one score file into a submission folder and record it in the folder's manifest;
    refuse to replace a file another model (or tool) wrote unless ``--force``."""
    from challenge.files import format_scores
    from challenge.manifest import file_record, read_manifest, write_manifest
    from modalink.io import atomic_write_text

    folder = out.parent
    for stale in folder.glob(f".{out.name}.*.tmp"):  # left by a killed earlier write of this file
        stale.unlink(missing_ok=True)
    manifest = read_manifest(folder) or {"files": {}}
    record = manifest["files"].get(out.name)
    if out.exists() and not args.force:
        if record is None:
            raise ChallengeError(f"{out} exists and was not written by `challenge write` into this folder (no "
                                 f"record in manifest.json); pass --force to replace it")
        if record.get("train_lang") != train:
            raise ChallengeError(f"{out} was written for the model trained on {record.get('train_lang')}, not "
                                 f"{train}; pass --force to replace it")
    text = format_scores(keys, scores, where=str(args.scores))
    atomic_write_text(out, text)
    files = dict(manifest["files"])
    files[out.name] = file_record(text.encode("utf-8"), train, test, cond, source=str(args.scores.resolve()))
    info = {k: v for k, v in manifest.items() if k not in ("files", "format", "written")}
    write_manifest(folder, files, **info)


def _cmd_validate(args: argparse.Namespace) -> int:
    from challenge.validate import validate_submission

    report = validate_submission(args.submission, args.pairs, edition=args.edition, template=args.template,
                                 ver=args.ver, langs=args.langs, ground_truth_dir=args.ground_truth,
                                 partial=args.partial)
    _print_issues(report)
    summary = report.format().splitlines()[-1]
    print(summary, file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def _cmd_pack(args: argparse.Namespace) -> int:
    from challenge.pack import pack_submission

    path, report = pack_submission(args.folder, args.output, args.pairs, edition=args.edition,
                                   template=args.template, ver=args.ver, langs=args.langs, partial=args.partial,
                                   allow_similarities=args.allow_similarities)
    _print_issues(report)
    print(f"wrote {path}: {', '.join(sorted(report.present))}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from challenge.score import MatplotlibMissing, score_submission

    result = score_submission(args.submission, args.ground_truth, pairs_dir=args.pairs, edition=args.edition,
                              template=args.template, ver=args.ver, langs=args.langs, partial=args.partial)
    for w in result.warnings:
        print(w)
    print(result.table())
    if args.report:
        print(f"wrote {result.save_json(args.report)}")
    if args.csv:
        print(f"wrote {result.save_csv(args.csv)}")
    if args.plot:
        try:
            print(f"wrote {result.plot(args.plot)}")
        except MatplotlibMissing as err:
            print(f"skipping --plot: {err}", file=sys.stderr)
    return 0


def _run(argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run one subcommand; an invalid submission prints its issues (exit 1)."""
    from challenge.validate import SubmissionError

    args = build_parser().parse_args(argv)
    handler = {"write": _cmd_write, "validate": _cmd_validate, "pack": _cmd_pack, "score": _cmd_score,
               "norm": _cmd_combine, "fuse": _cmd_combine}[args.command]
    try:
        return handler(args)
    except SubmissionError as err:
        _print_issues(err.report)
        print(f"{args.command}: {err.report.n_errors} error(s), see above; nothing written"
              if args.command == "pack" else f"{args.command}: {err.report.n_errors} error(s), see above",
              file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 invalid submission, 2 unusable input, and 1 with
    an 'internal error' line for a bug), under modalink's one error style (:func:`run_cli`:
    ``--debug`` or ``MODALINK_DEBUG=1`` shows tracebacks)."""
    return run_cli(_run, argv)


def cli() -> None:
    """Console entry point: :func:`main`."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
