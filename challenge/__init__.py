"""FAME challenge submissions: write, validate, pack and score score files locally.

Command line: ``python -m challenge {write,validate,pack,score} --help`` (also installed as
``modalink-challenge``). Library::

    from challenge import write_submission, validate_submission, pack_submission, score_submission

Scores are DISTANCES (lower = same person), as the organisers' scorer expects.
"""
from challenge.files import (ChallengeError, FormatError, find_lists, read_ground_truth, read_pair_keys,
                             read_pairs, read_score_values, write_scores)
from challenge.naming import (CONDITIONS, EDITIONS, HEARD, UNHEARD, VERSIONS, Edition, SubmissionEntry,
                              condition_for, get_edition, version_langs)
from challenge.pack import pack_submission
from challenge.score import FileScore, MatplotlibMissing, ScoreReport, score_submission
from challenge.validate import (Issue, SubmissionError, ValidationReport, similarity_hint,
                                validate_submission)
from challenge.writer import write_submission

__all__ = [
    "ChallengeError", "FormatError", "SubmissionError", "MatplotlibMissing",
    "Edition", "SubmissionEntry", "EDITIONS", "VERSIONS", "CONDITIONS", "HEARD", "UNHEARD",
    "get_edition", "condition_for", "version_langs",
    "read_pairs", "read_pair_keys", "read_ground_truth", "read_score_values", "find_lists",
    "write_scores", "write_submission",
    "Issue", "ValidationReport", "validate_submission", "similarity_hint",
    "pack_submission", "FileScore", "ScoreReport", "score_submission",
]
