"""FAME submission file names: editions, versions, heard/unheard conditions.

A FAME submission for one version (e.g. v3 = English + German) holds one score file per
(training language, test language) pair. The model trained on language ``L`` is tested on
``L`` ("heard") and on every other language of the version ("unheard"). With two
languages that makes four files. An :class:`Edition` turns such an entry into a file name:

* ``2026`` (default): ``sub_score_{test_lang}_{condition}.txt``
* ``2024``:           ``sub_scores_{test_lang}_{condition}.txt``
* custom templates with the placeholders ``{test_lang}``, ``{train_lang}``, ``{condition}``.
"""
from __future__ import annotations



import difflib
import re
import string
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

from modalink.face_voice.layout import FAME_VERSIONS
from modalink.errors import InputError

__all__ = [
    "HEARD", "UNHEARD", "CONDITIONS", "VERSIONS", "EDITIONS", "PLACEHOLDERS",
    "Edition", "SubmissionEntry", "condition_for", "get_edition", "version_langs", "check_language_pair",
]

HEARD = "heard"
UNHEARD = "unheard"
CONDITIONS = (HEARD, UNHEARD)

#: FAME / MAV-Celeb versions and their two languages (English first, as the organisers list them).
VERSIONS: dict[str, tuple[str, str]] = dict(FAME_VERSIONS)

#: Placeholders a file-name template may use.
PLACEHOLDERS = ("test_lang", "train_lang", "condition")


class SubmissionEntry(NamedTuple):
    """One score file of a submission: the model's training language, the test language, and
    the condition (``heard`` when they are equal, ``unheard`` otherwise)."""

    train_lang: str
    test_lang: str
    condition: str


def condition_for(train_lang: str, test_lang: str) -> str:
    """``"heard"`` when the model is tested on its training language, else ``"unheard"``."""
    return HEARD if train_lang.lower() == test_lang.lower() else UNHEARD


def version_langs(ver: str) -> tuple[str, ...]:
    """The languages of a FAME version (``v1``, ``v2``, ``v3``); ValueError names the known ones."""
    key = ver.strip().lower()
    if key not in VERSIONS:
        raise InputError(f"unknown FAME version {ver!r}; known: {', '.join(VERSIONS)}")
    return VERSIONS[key]


@dataclass(frozen=True)
class Edition:
    """A naming scheme for submission files.

    ``template`` is a :meth:`str.format` pattern over ``{test_lang}``, ``{train_lang}`` and
    ``{condition}``. The names must be plain file names (they sit at the root of the zip).
    """

    name: str
    template: str

    def __post_init__(self) -> None:
        fields = [f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None]
        unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
        if unknown:
            raise InputError(
                f"file-name template {self.template!r} uses unknown placeholder(s) "
                f"{', '.join('{' + u + '}' for u in unknown)}; allowed: "
                f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        if "/" in self.template or "\\" in self.template:
            raise InputError(f"file-name template {self.template!r} must be a plain file name (no folders)")
        if "test_lang" not in fields and "train_lang" not in fields:
            raise InputError(f"file-name template {self.template!r} must use {{test_lang}} or {{train_lang}}")

    def file_name(self, train_lang: str, test_lang: str, condition: str | None = None) -> str:
        """The file name for one entry; ``condition`` is derived (and checked) from the languages."""
        expected = condition_for(train_lang, test_lang)
        if condition is not None and condition != expected:
            raise InputError(
                f"condition {condition!r} does not match train_lang={train_lang!r}, "
                f"test_lang={test_lang!r} (expected {expected!r})")
        return self.template.format(train_lang=train_lang, test_lang=test_lang, condition=expected)

    def entries(self, langs: Sequence[str], train_langs: Iterable[str] | None = None) -> list[SubmissionEntry]:
        """All entries of a submission over ``langs``, grouped by training language
        (for each training language: heard first, then the unheard languages)."""
        if len(langs) < 2:
            raise InputError(f"a FAME submission needs at least two languages, got {list(langs)}")
        if len({lang.lower() for lang in langs}) != len(langs):
            raise InputError(f"languages must be distinct, got {list(langs)}")
        trains = list(langs) if train_langs is None else list(train_langs)
        out = []
        for train in trains:
            out.append(SubmissionEntry(train, train, HEARD))
            out.extend(SubmissionEntry(train, test, UNHEARD) for test in langs if test != train)
        return out

    def expected_files(self, langs: Sequence[str]) -> dict[str, SubmissionEntry]:
        """``{file name: entry}`` for a full submission over ``langs``; ValueError when the
        template gives two entries the same name (e.g. no ``{train_lang}`` with 3+ languages)."""
        out: dict[str, SubmissionEntry] = {}
        for entry in self.entries(langs):
            name = self.file_name(*entry)
            if name in out:
                raise InputError(
                    f"file-name template {self.template!r} gives the same name {name!r} to "
                    f"{out[name]} and {entry}; add {{train_lang}} to the template")
            out[name] = entry
        return out

    def pattern(self) -> re.Pattern[str]:
        """A regex matching any name this template can produce (named groups per placeholder)."""
        parts = []
        seen: set[str] = set()
        for literal, field, _, _ in string.Formatter().parse(self.template):
            parts.append(re.escape(literal))
            if field is None:
                continue
            if field in seen:
                parts.append(f"(?P={field})")
            else:
                seen.add(field)
                body = "heard|unheard" if field == "condition" else "[A-Za-z][A-Za-z-]*"
                parts.append(f"(?P<{field}>{body})")
        return re.compile("^" + "".join(parts) + "$", re.IGNORECASE)

    def suggest(self, name: str, langs: Sequence[str]) -> str:
        """A hint for a file name that is not one of the expected names."""
        expected = self.expected_files(langs)
        lower = {n.lower(): n for n in expected}
        if name.lower() in lower:
            return f"did you mean {lower[name.lower()]!r}? (names are case-sensitive)"
        for other in EDITIONS.values():
            if other.template == self.template:
                continue
            try:
                other_names = other.expected_files(langs)
            except ValueError:
                continue
            if name in other_names:
                entry = other_names[name]
                return (f"this is the FAME {other.name} name for {_describe(entry)}; "
                        f"the {self.name} name is {self.file_name(*entry)!r} "
                        f"(or validate with --edition {other.name})")
        match = self.pattern().match(name)
        if match:
            groups = match.groupdict()
            known = {lang.lower() for lang in langs}
            bad = [groups[k] for k in ("test_lang", "train_lang") if groups.get(k) and groups[k].lower() not in known]
            if bad:
                return (f"language {bad[0]!r} is not part of this submission "
                        f"(languages: {', '.join(langs)}); expected one of: {', '.join(expected)}")
            return f"the languages and condition do not fit together; expected one of: {', '.join(expected)}"
        close = difflib.get_close_matches(name, list(expected), n=1, cutoff=0.6)
        if close:
            return f"did you mean {close[0]!r}? expected: {', '.join(expected)}"
        return f"expected: {', '.join(expected)}"


def _describe(entry: SubmissionEntry) -> str:
    return f"train={entry.train_lang}, test={entry.test_lang} ({entry.condition})"


EDITIONS: dict[str, Edition] = {
    "2026": Edition("2026", "sub_score_{test_lang}_{condition}.txt"),
    "2024": Edition("2024", "sub_scores_{test_lang}_{condition}.txt"),
}


def get_edition(edition: str | Edition | None = None, template: str | None = None) -> Edition:
    """Resolve an edition name (``"2026"``, ``"2024"``), an :class:`Edition`, or a custom
    ``template`` (which wins over ``edition``) to an :class:`Edition`; default 2026."""
    if template is not None:
        return Edition("custom", template)
    if isinstance(edition, Edition):
        return edition
    key = "2026" if edition is None else str(edition).strip()
    if key not in EDITIONS:
        raise InputError(f"unknown FAME edition {edition!r}; known: {', '.join(EDITIONS)} "
                         "(or pass a custom template)")
    return EDITIONS[key]


def known_language(lang: str, what: str = "language", ver: str | None = None) -> str:
    """``lang`` spelled as FAME spells it (case-insensitive match); ValueError with the known
    languages (of ``ver`` when given) and the closest one otherwise."""
    pool = list(version_langs(ver)) if ver else sorted({x for pair in VERSIONS.values() for x in pair})
    by_lower = {x.lower(): x for x in pool}
    hit = by_lower.get(lang.strip().lower())
    if hit is not None:
        return hit
    close = difflib.get_close_matches(lang.strip().lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
    scope = f"of FAME {ver}" if ver else "of any FAME version"
    raise InputError(f"{what} {lang!r} is not a language {scope}; known: {', '.join(pool)}{hint}")


def check_language_pair(train_lang: str, test_lang: str, ver: str | None = None) -> tuple[str, str]:
    """Normalise a (training, test) language pair and check that one FAME version holds both."""
    train = known_language(train_lang, "--train-lang", ver)
    test = known_language(test_lang, "test language", ver)
    if ver is None and not any(train in pair and test in pair for pair in VERSIONS.values()):
        raise InputError(f"no FAME version has both {train} and {test} "
                         f"({'; '.join(f'{v}: {a}/{b}' for v, (a, b) in VERSIONS.items())})")
    return train, test
