"""Zip a validated submission folder: exactly the expected files, at the zip root."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

from challenge.files import ChallengeError
from challenge.manifest import MANIFEST_NAME
from challenge.naming import Edition
from challenge.validate import SubmissionError, ValidationReport, validate_submission

__all__ = ["pack_submission"]

#: Fixed member timestamp, so the same files always give the same zip bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def pack_submission(folder: str | os.PathLike, zip_path: str | os.PathLike, pairs_dir: str | os.PathLike, *,
                    edition: str | Edition | None = None, template: str | None = None,
                    ver: str | None = None, langs: Sequence[str] | None = None,
                    ground_truth_dir: str | os.PathLike | None = None,
                    partial: bool = False, allow_similarities: bool = False) -> tuple[Path, ValidationReport]:
    """Validate ``folder`` and write ``zip_path`` holding exactly its expected score files.

    Members sit at the zip root (no folders), sorted by name, with a fixed timestamp
    (reproducible bytes). The zip is written atomically and checked again after writing.
    Raises :class:`SubmissionError` (and writes nothing) when the folder is invalid, and
    :class:`ChallengeError` when a folder without ``manifest.json`` holds scores that look like
    similarities (the scorer reads distances) unless ``allow_similarities``.
    Returns ``(zip path, validation report of the folder)``.
    """
    from modalink.io import atomic_path

    folder = Path(folder)
    zip_path = Path(zip_path)
    if not folder.is_dir():
        raise ChallengeError(f"pack needs a submission folder, got {folder}")
    if zip_path.suffix.lower() != ".zip":
        raise ChallengeError(f"output must end in .zip, got {zip_path}")
    report = validate_submission(folder, pairs_dir, edition=edition, template=template, ver=ver, langs=langs,
                                 ground_truth_dir=ground_truth_dir, partial=partial)
    if not report.ok:
        raise SubmissionError(report, action=f"not packing {folder}")
    similar = sorted({i.file for i in report.warnings if i.code == "similarity" and i.file})
    if similar and not allow_similarities and not (folder / MANIFEST_NAME).is_file():
        raise ChallengeError(
            f"not packing {folder}: the scores of {', '.join(similar)} look like similarities (higher = same "
            f"person), but the scorer reads distances; write them again with `python -m challenge write "
            f"--negate`, or pass --allow-similarities if they are distances")
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(report.present):
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, (folder / name).read_bytes())
        check = validate_submission(tmp, pairs_dir, edition=edition, template=template, ver=ver,
                                    langs=langs, partial=partial)
        if not check.ok:  # pragma: no cover - would mean a bug in the packer
            raise SubmissionError(check, action=f"packed zip failed validation, not writing {zip_path}")
    return zip_path, report

