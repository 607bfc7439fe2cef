"""A tiny synthetic dataset in the REAL UPMC Food-101 layout, for tests and smoke runs.

Each class is a pair (visual group ``v``, textual group ``t``): ``class = v * n_text + t``.

* by default the photo shows the visual group only: a coloured shape (hue and shape from ``v``)
  on a noisy background, with jittered position, size and colour;
* by default the title shows the textual group only: 2-3 words from ``t``'s vocabulary mixed
  with common filler words ("easy", "homemade", ...), sometimes with a comma (so CSV quoting is
  exercised).

Then neither modality alone determines the class: an image-only model can reach at most
``1 / n_text`` accuracy (50 % with the default 2 text groups; chance is ``1 / n_classes``),
a text-only model at most ``1 / n_visual``; both together determine it. So missing text hurts
without zeroing the accuracy. Those ceilings are recorded in ``manifest.json``.

``evidence="complementary"`` names that setting and holds it: it refuses the redundancy options
below, records the setting in the manifest with the accuracy ceilings of the usual conditions
(complete 100 %; 30 % text ``0.3 + 0.7 / n_text`` = 65 % with 2 text groups; no text
``1 / n_text`` = 50 %), and :meth:`SyntheticFood101.ceiling` computes the ceiling of any
availability. :data:`COMPLEMENTARY` is the preset of the Chameleon recipe (12
classes, 64-px photos, 30 title words per text group so that the text must really be read).

Options (all off by default, which keeps the output unchanged) add the redundancy of real
Food-101, where each modality alone is strongly predictive: ``title_visual_hint`` (titles also
name the visual group), ``image_text_cue`` (the photo also shows the text group as a stripe
texture) and ``image_difficulty`` (clutter that makes the photo harder to read than the title).

Layout written (same as the release, read by :func:`modalink.classification.sources.food101.load_food101`)::

    <root>/images/{train,test}/<class>/<class>_N.jpg
    <root>/texts/{train,test}_titles.csv        headerless: image file, title, class
    <root>/manifest.json                         generator parameters (idempotence)

Deterministic (one seeded generator), idempotent (an existing folder with the same manifest is
left alone) and written atomically (a temporary folder renamed into place).
"""
from __future__ import annotations

import colorsys
import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from modalink.errors import InputError
from modalink.io import atomic_dir

__all__ = ["SyntheticFood101", "generate_synthetic_food101", "FILLER_WORDS", "COMPLEMENTARY", "EVIDENCE_SETTINGS"]

_VERSION = 1
FILLER_WORDS = (
    "recipe", "easy", "homemade", "best", "with", "and", "the", "quick", "classic", "delicious",
    "simple", "how", "to", "make", "my", "favourite", "style", "fresh", "healthy", "perfect",
)
EVIDENCE_SETTINGS = ("complementary",)
# Neither modality alone decides: 12 classes = 6 visual x 2 text groups; a large title vocabulary
# (30 words per text group, plus the 20 filler words) so that reading the text means telling many
# words apart, not spotting one of a few.
COMPLEMENTARY: dict[str, Any] = {"evidence": "complementary", "n_classes": 12, "n_text_groups": 2,
                                 "words_per_group": 30, "image_size": 64, "n_train_per_class": 100,
                                 "n_test_per_class": 50}
_SHAPES = ("disc", "square", "triangle", "diamond", "bar")
_SYLLABLES = ("ba", "ko", "ri", "mu", "zel", "tan", "vo", "pi", "sha", "lu", "dor", "qua", "ne", "fi", "gro")


@dataclass(frozen=True)
class SyntheticFood101:
    """What was generated: ``root``, ``classes``, each class's visual/text group, parameters."""

    root: Path
    classes: list[str]
    visual_group: list[int]
    text_group: list[int]
    vocabulary: list[list[str]]
    params: dict[str, Any]
    generated: bool

    @property
    def image_only_ceiling(self) -> float:
        cue = self.params.get("image_text_cue", 0.0)
        return cue + (1.0 - cue) / self.params["n_text_groups"]

    @property
    def text_only_ceiling(self) -> float:
        hint = self.params.get("title_visual_hint", 0.0)
        return hint + (1.0 - hint) / (self.params["n_classes"] // self.params["n_text_groups"])

    def ceiling(self, text: float = 1.0, image: float = 1.0) -> float:
        """Best possible accuracy when a share ``text`` of the samples keeps its title and a share
        ``image`` its photo (missing parts disjoint, as in :mod:`modalink.classification.missing`)."""
        return _ceiling(text, image, self.image_only_ceiling, self.text_only_ceiling, 1.0 / self.params["n_classes"])


def _ceiling(text: float, image: float, image_only: float, text_only: float, chance: float) -> float:
    if not (0.0 <= text <= 1.0 and 0.0 <= image <= 1.0):
        raise InputError(f"shares must be in [0, 1], got text={text}, image={image}")
    both = max(0.0, text + image - 1.0)
    none = max(0.0, 1.0 - text - image)
    return both + (text - both) * text_only + (image - both) * image_only + none * chance


def _group_vocabulary(n_text: int, words_per_group: int, rng: np.random.Generator,
                      exclude: list[list[str]] | None = None) -> list[list[str]]:
    used: set[str] = set(FILLER_WORDS) | {w for group in exclude or [] for w in group}
    vocab: list[list[str]] = []
    for _ in range(n_text):
        words: list[str] = []
        while len(words) < words_per_group:
            w = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4))))
            if w not in used:
                used.add(w)
                words.append(w)
        vocab.append(words)
    return vocab


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, half: float,
                colour: tuple[int, int, int]) -> None:
    box = (cx - half, cy - half, cx + half, cy + half)
    if shape == "disc":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, cy - half), (cx + half, cy), (cx, cy + half), (cx - half, cy)], fill=colour)
    else:
        draw.rectangle((cx - half, cy - half / 3, cx + half, cy + half / 3), fill=colour)


def _hsv_colour(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, sat, val)
    return (int(r * 255), int(g * 255), int(b * 255))


def _draw_image(v: int, n_visual: int, size: int, rng: np.random.Generator,
                difficulty: float = 0.0, t: int | None = None, n_text: int = 1) -> Image.Image:
    """The photo of visual group ``v``. ``difficulty`` > 0 adds clutter: a noisier, colour-cast
    background, distractor shapes of random groups, more hue/size/position jitter and a partial
    occluder. ``t`` (a text group) adds a stripe texture whose angle shows it. ``difficulty == 0``
    and ``t is None`` draw exactly the original images."""
    d = float(difficulty)
    bg = rng.normal(128, 20 + 25 * d, size=(size, size, 3)) + rng.normal(0, 25 + 35 * d, size=3)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    if d > 0:  # clutter behind the main object: distractor shapes of any group, smaller
        for _ in range(int(rng.poisson(4 * d))):
            u = int(rng.integers(n_visual))
            _draw_shape(draw, _SHAPES[u % len(_SHAPES)], *rng.uniform(0, size, size=2),
                        size * float(rng.uniform(0.08, 0.2)),
                        _hsv_colour(u / n_visual + rng.normal(0, 0.03), float(rng.uniform(0.5, 1.0)),
                                    float(rng.uniform(0.5, 1.0))))
    hue = (v / n_visual + rng.normal(0, 0.02 + 0.06 * d)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, float(rng.uniform(0.7 - 0.4 * d, 1.0)), float(rng.uniform(0.7 - 0.3 * d, 1.0)))
    colour = (int(r * 255), int(g * 255), int(b * 255))
    half = size * float(rng.uniform(0.2 - 0.06 * d, 0.32))
    cx, cy = (size / 2 + rng.uniform(-size * (0.12 + 0.1 * d), size * (0.12 + 0.1 * d), size=2))
    _draw_shape(draw, _SHAPES[v % len(_SHAPES)], cx, cy, half, colour)
    if t is not None:  # the text group as a stripe texture on the object (angle from t)
        mask = Image.new("L", (size, size), 0)
        _draw_shape(ImageDraw.Draw(mask), _SHAPES[v % len(_SHAPES)], cx, cy, half, 255)
        angle = np.pi * (t / n_text + rng.normal(0, 0.01 + 0.04 * d))
        period = float(rng.uniform(4.0, 6.0))
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period + rng.random()
        stripe = (np.asarray(mask) > 0) & (np.mod(phase, 1.0) < 0.5)
        arr = np.asarray(img, dtype=np.float64).copy()
        arr[stripe] *= float(rng.uniform(0.45, 0.7 + 0.2 * d))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
    if d > 0 and rng.random() < d:  # an occluder (a "plate edge", "cutlery") over part of the object
        ox, oy = cx + rng.uniform(-half, half), cy + rng.uniform(-half, half)
        grey = int(rng.integers(60, 200))
        draw.rectangle((ox - half * 0.6, oy - half * 0.6, ox + half * 0.6, oy + half * 0.6), fill=(grey,) * 3)
    arr = np.asarray(img, dtype=np.float64) + rng.normal(0, 6 + 14 * d, size=(size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _title(words: list[str], rng: np.random.Generator, hint_words: list[str] | None = None,
           hint: float = 0.0) -> str:
    k = int(rng.integers(2, 4))
    chosen = list(rng.choice(words, size=k, replace=True)) + \
        list(rng.choice(FILLER_WORDS, size=int(rng.integers(2, 6)), replace=False))
    if hint_words is not None and hint > 0 and rng.random() < hint:
        chosen.append(str(rng.choice(hint_words)))
    order = rng.permutation(len(chosen))
    tokens = [str(chosen[i]) for i in order]
    if rng.random() < 0.3:
        tokens[0] = tokens[0] + ","
    title = " ".join(tokens)
    return title[0].upper() + title[1:]


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def generate_synthetic_food101(
    root: str | os.PathLike,
    n_classes: int = 10,
    n_train_per_class: int = 40,
    n_test_per_class: int = 10,
    image_size: int = 64,
    seed: int = 0,
    n_text_groups: int = 2,
    words_per_group: int = 6,
    title_visual_hint: float = 0.0,
    image_difficulty: float = 0.0,
    image_text_cue: float = 0.0,
    evidence: str | None = None,
    overwrite: bool = False,
) -> SyntheticFood101:
    """Write (or find, if already there with the same parameters) a synthetic Food-101 copy.

    ``title_visual_hint``: probability that a title also names the photo's visual group (one
    word of a per-visual-group vocabulary). Real titles often describe what the photo shows;
    this redundancy lets a text+image model lean on the text for the visual part too, which is
    exactly what makes late-fusion models collapse when the text goes missing.

    ``image_difficulty`` (0 to 1): photo clutter — distractor shapes of other groups, a noisier
    colour-cast background, more colour/size/position jitter, partial occluders — so the image is
    informative but harder to read than the title (as in real Food-101, where the title often
    names the dish). 0 (default) draws the original, clean images.

    ``image_text_cue``: probability that the photo also shows the text group, as a stripe
    texture on the object (angle ``pi * t / n_text_groups``); with 1.0 the photo alone determines
    the class, like a real food photo (the image-only ceiling becomes
    ``image_text_cue + (1 - image_text_cue) / n_text_groups``). 0 (default): no texture.

    ``evidence``: ``None`` (default: the options above decide) or ``"complementary"``: neither
    modality alone decides (``title_visual_hint`` and ``image_text_cue`` must stay 0); the
    manifest then records the setting and the ceilings of complete / 30 % text / no text /
    30 % images (``generate_synthetic_food101(root, **COMPLEMENTARY)`` is the recipe's preset).

    ``n_classes`` must be a multiple of ``n_text_groups``. A non-empty ``root`` that was not
    made by this generator is never touched (error); ``overwrite=True`` regenerates ours.
    """
    if n_classes < 2 or n_text_groups < 1 or n_classes % n_text_groups:
        raise InputError(f"n_classes ({n_classes}) must be >= 2 and a multiple of n_text_groups ({n_text_groups})")
    if n_train_per_class < 1 or n_test_per_class < 1 or image_size < 16:
        raise InputError("need n_train_per_class >= 1, n_test_per_class >= 1 and image_size >= 16")
    root = Path(root)
    params = {"n_classes": n_classes, "n_train_per_class": n_train_per_class,
              "n_test_per_class": n_test_per_class, "image_size": image_size, "seed": seed,
              "n_text_groups": n_text_groups, "words_per_group": words_per_group}
    if not 0.0 <= title_visual_hint <= 1.0:
        raise InputError(f"title_visual_hint must be in [0, 1], got {title_visual_hint}")
    if title_visual_hint > 0:  # keeps manifests of hint-free sets unchanged
        params["title_visual_hint"] = title_visual_hint
    if not 0.0 <= image_difficulty <= 1.0:
        raise InputError(f"image_difficulty must be in [0, 1], got {image_difficulty}")
    if image_difficulty > 0:  # likewise
        params["image_difficulty"] = image_difficulty
    if not 0.0 <= image_text_cue <= 1.0:
        raise InputError(f"image_text_cue must be in [0, 1], got {image_text_cue}")
    if image_text_cue > 0:
        params["image_text_cue"] = image_text_cue
    if evidence is not None:
        if evidence not in EVIDENCE_SETTINGS:
            raise InputError(f"evidence must be None or one of {', '.join(EVIDENCE_SETTINGS)}, got {evidence!r}")
        if title_visual_hint > 0 or image_text_cue > 0:
            raise InputError("evidence='complementary' needs title_visual_hint=0 and image_text_cue=0 "
                             "(either would let one modality decide alone)")
        params["evidence"] = evidence  # only when set: manifests of other sets stay unchanged
    n_visual = n_classes // n_text_groups
    rng = np.random.default_rng(seed)
    vocab = _group_vocabulary(n_text_groups, words_per_group, rng)
    hint_vocab = _group_vocabulary(n_visual, 3, rng, exclude=vocab) if title_visual_hint > 0 else None
    visual = [c // n_text_groups for c in range(n_classes)]
    textual = [c % n_text_groups for c in range(n_classes)]
    classes = [f"food_v{v}_t{t}" for v, t in zip(visual, textual)]

    manifest = _read_manifest(root)
    if manifest is not None and manifest.get("generator") == "modalink.synthetic_food101" \
            and manifest.get("version") == _VERSION and manifest.get("params") == params and not overwrite:
        return SyntheticFood101(root, classes, visual, textual, vocab, params, generated=False)
    if root.exists() and any(root.iterdir()) and (manifest is None
                                                  or manifest.get("generator") != "modalink.synthetic_food101"):
        raise FileExistsError(f"{root} is not empty and was not made by generate_synthetic_food101; "
                              "choose an empty or new folder")

    with atomic_dir(root) as tmp:
        counter = [0] * n_classes
        for part, per_class in (("train", n_train_per_class), ("test", n_test_per_class)):
            rows: list[list[str]] = []
            for c, name in enumerate(classes):
                cdir = tmp / "images" / part / name
                cdir.mkdir(parents=True, exist_ok=True)
                for _ in range(per_class):
                    fname = f"{name}_{counter[c]}.jpg"
                    counter[c] += 1
                    cue = image_text_cue > 0 and rng.random() < image_text_cue
                    _draw_image(visual[c], n_visual, image_size, rng, image_difficulty,
                                textual[c] if cue else None, n_text_groups).save(cdir / fname, quality=90)
                    rows.append([fname, _title(vocab[textual[c]], rng,
                                                hint_vocab[visual[c]] if hint_vocab else None,
                                                title_visual_hint), name])
            order = rng.permutation(len(rows))  # the release's files are not sorted by class
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(rows[i] for i in order)
            (tmp / "texts").mkdir(exist_ok=True)
            (tmp / "texts" / f"{part}_titles.csv").write_text(buf.getvalue(), encoding="utf-8")
        manifest = {
            "generator": "modalink.synthetic_food101", "version": _VERSION, "params": params,
            "classes": classes, "visual_group": visual, "text_group": textual, "vocabulary": vocab,
            "image_only_ceiling": image_text_cue + (1.0 - image_text_cue) / n_text_groups,
            "text_only_ceiling": title_visual_hint + (1.0 - title_visual_hint) / n_visual,
            "chance": 1.0 / n_classes,
        }
        if evidence is not None:
            img_c, txt_c = manifest["image_only_ceiling"], manifest["text_only_ceiling"]
            manifest["ceilings"] = {c: _ceiling(t, i, img_c, txt_c, 1.0 / n_classes) for c, (t, i) in
                                    {"complete": (1.0, 1.0), "text=30%": (0.3, 1.0), "text=0%": (0.0, 1.0),
                                     "image=30%": (1.0, 0.3), "image=0%": (1.0, 0.0)}.items()}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return SyntheticFood101(root, classes, visual, textual, vocab, params, generated=True)
