"""FAME / MAV-Celeb feature data: readers, cache, loaders, splits, synthetic generator."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from modalink.face_voice import (FAME_VERSIONS, FeatureCache, FeatureFileError, FameFeatures, FameLayout,
                           generate_synthetic_fame, load_fame_test, load_fame_train,
                           make_verification_trials, normalize_language, other_language,
                           read_feature_csv, read_ground_truth, read_pairs, remap_labels,
                           split_train_val)
from modalink.face_voice import synthetic as synthetic_fame

FD, VD = 24, 8   # small feature widths for speed
SMALL = dict(n_train_ids=6, n_test_ids=3, rows_per_id=4, n_test_pairs=20, face_dim=FD, voice_dim=VD)


def write_rows(path: Path, rows: list[str], newline: str = "\n", bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = newline.join(rows) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def matrix_rows(x: np.ndarray, labels=None) -> list[str]:
    out = []
    for i, r in enumerate(x):
        cells = [repr(float(v)) for v in r]
        if labels is not None:
            cells.append(str(labels[i]))
        out.append(",".join(cells))
    return out


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("fame")
    return generate_synthetic_fame(root / "feats_root", "v3", seed=3, **SMALL)


def clone(syn, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(syn.root, dst, ignore=shutil.ignore_patterns(".modalink_cache"))
    return dst


# --------------------------------------------------------------------------- read_feature_csv

def test_read_feature_csv_values_and_int_labels(tmp_path):
    x = np.random.default_rng(0).random((10, 5)).astype(np.float32)
    p = write_rows(tmp_path / "a.csv", matrix_rows(x, [7, 7, 3, 3, 3, 9, 9, 9, 9, 1]))
    for chunk in (3, 1024):   # chunking must not change anything
        feats, labels = read_feature_csv(p, 5, True, chunk_rows=chunk)
        assert feats.dtype == np.float32 and feats.shape == (10, 5)
        np.testing.assert_array_equal(feats, x)
        assert labels.dtype == np.int64 and labels.tolist() == [7, 7, 3, 3, 3, 9, 9, 9, 9, 1]


def test_read_feature_csv_label_kinds_and_widths(tmp_path):
    p = write_rows(tmp_path / "s.csv", ["1,2,id01", "3,4,id02"])
    feats, labels = read_feature_csv(p, 2, True)
    assert labels.tolist() == ["id01", "id02"] and feats.tolist() == [[1, 2], [3, 4]]
    p = write_rows(tmp_path / "f.csv", ["1,2,3.0", "3,4,5.0"])
    assert read_feature_csv(p, 2, True)[1].tolist() == [3, 5]
    # test files: width dim (no label) or dim + 1 (label ignored by loaders)
    p = write_rows(tmp_path / "nolab.csv", ["1,2", "3,4"])
    feats, labels = read_feature_csv(p, 2, None)
    assert labels is None and feats.shape == (2, 2)
    assert read_feature_csv(p, 2, False)[1] is None
    p = write_rows(tmp_path / "lab.csv", ["1,2,0", "3,4,1"])
    feats, labels = read_feature_csv(p, 2, None)
    assert feats.tolist() == [[1, 2], [3, 4]] and labels.tolist() == [0, 1]


def test_read_feature_csv_crlf_bom_trailing_blank(tmp_path):
    p = write_rows(tmp_path / "w.csv", ["1.5,2,0", "3,4e-1,1", "", ""], newline="\r\n", bom=True)
    feats, labels = read_feature_csv(p, 2, True)
    np.testing.assert_allclose(feats, [[1.5, 2], [3, 0.4]])
    assert labels.tolist() == [0, 1]
    p = write_rows(tmp_path / "noeol.csv", ["1,2,0", "3,4,1"])
    p.write_bytes(p.read_bytes().rstrip(b"\n"))
    assert read_feature_csv(p, 2, True)[0].shape == (2, 2)


def test_read_feature_csv_non_numeric_cell_names_line_and_column(tmp_path):
    rows = matrix_rows(np.ones((9, 4)), [0] * 9)
    rows[6] = "1,1,oops,1,0"
    p = write_rows(tmp_path / "bad.csv", rows)
    for chunk in (4, 1024):
        with pytest.raises(FeatureFileError) as exc:
            read_feature_csv(p, 4, True, chunk_rows=chunk)
        assert (exc.value.line, exc.value.column) == (7, 3)
        msg = str(exc.value)
        assert "bad.csv" in msg and "line 7" in msg and "column 3" in msg and "oops" in msg
    rows[6] = "1,,1,1,0"   # empty cell
    with pytest.raises(FeatureFileError, match=r"line 7, column 2"):
        read_feature_csv(write_rows(tmp_path / "empty_cell.csv", rows), 4, True)


def test_read_feature_csv_wrong_width(tmp_path):
    good = matrix_rows(np.ones((6, 4)), [1] * 6)
    rows = list(good)
    rows[4] = "1,1,1,1"      # label missing on line 5
    for chunk in (2, 1024):
        with pytest.raises(FeatureFileError) as exc:
            read_feature_csv(write_rows(tmp_path / "w.csv", rows), 4, True, chunk_rows=chunk)
        assert exc.value.line == 5 and "found 4 columns, expected 5" in str(exc.value)
    # first line decides; a train file without label column is refused with the expectation
    with pytest.raises(FeatureFileError, match=r"line 1: found 4 columns, expected 5 \(4 features \+ 1 label\)"):
        read_feature_csv(write_rows(tmp_path / "nolabel.csv", ["1,1,1,1"]), 4, True)
    with pytest.raises(FeatureFileError, match="found 3 columns, expected 4 .* or 5"):
        read_feature_csv(write_rows(tmp_path / "narrow.csv", ["1,1,1"]), 4, None)
    rows = ["1,1,1,1"] * 3 + ["1,1,1,1,1"]   # test file: must be consistent
    with pytest.raises(FeatureFileError, match="line 4: found 5 columns, expected 4"):
        read_feature_csv(write_rows(tmp_path / "mixed.csv", rows), 4, None)


def test_read_feature_csv_empty_blank_missing_nonfinite(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(FeatureFileError, match="empty.csv: file is empty"):
        read_feature_csv(tmp_path / "empty.csv", 4, True)
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(FeatureFileError, match="no data rows"):
        read_feature_csv(tmp_path / "blank.csv", 4, True)
    p = write_rows(tmp_path / "hole.csv", ["1,2,0", "", "3,4,1"])
    with pytest.raises(FeatureFileError, match="line 2: blank line inside the data"):
        read_feature_csv(p, 2, True)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_feature_csv(tmp_path / "nope.csv", 4, True)
    p = write_rows(tmp_path / "nan.csv", ["1,2,0", "3,nan,1"])
    with pytest.raises(FeatureFileError, match=r"line 2, column 2: non-finite"):
        read_feature_csv(p, 2, True)
    p = write_rows(tmp_path / "lab.csv", ["1,2,0", "3,4,0.5"])
    with pytest.raises(FeatureFileError, match=r"line 2: identity label must be an integer"):
        read_feature_csv(p, 2, True)


# --------------------------------------------------------------------------- pair lists

def test_read_pairs_and_errors(tmp_path):
    p = write_rows(tmp_path / "English_test.txt", [
        "k1 voices/English/00000.wav faces/English/00000.jpg",
        "k2  voices/English/00001.wav\tfaces/English/00001.jpg", ""])
    pairs = read_pairs(p)
    assert [tuple(x)[:3] for x in pairs] == [("k1", "voices/English/00000.wav", "faces/English/00000.jpg"),
                                        ("k2", "voices/English/00001.wav", "faces/English/00001.jpg")]
    assert pairs[1].face_path == "faces/English/00001.jpg"
    bad = write_rows(tmp_path / "bad.txt", ["k1 v f", "k2 v_only"])
    with pytest.raises(FeatureFileError, match=r"bad.txt, line 2: expected 3 fields"):
        read_pairs(bad)
    dup = write_rows(tmp_path / "dup.txt", ["k1 v f", "k2 v f", "k1 v2 f2"])
    with pytest.raises(FeatureFileError, match=r"line 3: duplicate key 'k1' \(first on line 1\)"):
        read_pairs(dup)
    hole = write_rows(tmp_path / "hole.txt", ["k1 v f", "", "k2 v f"])
    assert [p.line for p in read_pairs(hole)] == [1, 3]  # skipped by default, lines kept
    with pytest.raises(FeatureFileError, match="line 2: blank line"):
        read_pairs(hole, blank_lines="error")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(FeatureFileError, match="pair list is empty"):
        read_pairs(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_pairs(tmp_path / "missing.txt")


def test_read_ground_truth(tmp_path):
    assert read_ground_truth(write_rows(tmp_path / "gt.txt", ["a 1", "b 0"])) == {"a": 1, "b": 0}
    with pytest.raises(FeatureFileError, match="line 2, column 2: key 'b': label must be 0 or 1"):
        read_ground_truth(write_rows(tmp_path / "gt2.txt", ["a 1", "b 2"]))
    assert read_ground_truth(write_rows(tmp_path / "gt3.txt", ["a 1.0", "b 0"])) == {"a": 1, "b": 0}
    with pytest.raises(FeatureFileError, match="only label 1"):
        read_ground_truth(write_rows(tmp_path / "gt4.txt", ["a 1", "b 1"]))


# --------------------------------------------------------------------------- cache

def test_cache_miss_hit_and_equal_arrays(tmp_path):
    x = np.random.default_rng(1).random((12, 6)).astype(np.float32)
    csv = write_rows(tmp_path / "c.csv", matrix_rows(x, list(range(12))))
    cache = FeatureCache(tmp_path / "cache")
    assert cache.lookup(csv, 6, True) == "miss"
    f1, l1 = cache.load(csv, 6, True)
    assert cache.last_status == "miss" and cache.lookup(csv, 6, True) == "hit"
    f2, l2 = cache.load(csv, 6, True)
    assert cache.last_status == "hit" and cache.stats == {"hit": 1, "miss": 1, "stale": 0}
    ref_f, ref_l = read_feature_csv(csv, 6, True)
    for f, lab in ((f1, l1), (f2, l2)):
        np.testing.assert_array_equal(f, ref_f)
        np.testing.assert_array_equal(lab, ref_l)
    fm, lm = cache.load(csv, 6, True, mmap=True)
    assert isinstance(fm, np.memmap) and np.array_equal(fm, ref_f)
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 3 and any(n.endswith(".labels.npy") for n in names)
    sidecar = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert sidecar["size"] == csv.stat().st_size and sidecar["rows"] == 12 and len(sidecar["blake2b"]) == 32
    # a different dim / label mode for the same CSV is not served from the entry
    assert cache.lookup(csv, 5, None) == "stale"


def test_cache_stale_when_csv_changes(tmp_path):
    x = np.zeros((4, 3), np.float32)
    csv = write_rows(tmp_path / "c.csv", matrix_rows(x, [0, 0, 1, 1]))
    cache = FeatureCache(tmp_path / "cache", verify="stat")
    cache.load(csv, 3, True)
    st = csv.stat()
    # Same size, same mtime, different content (rsync -t, cp -p): 'stat' cannot see it, the
    # default 'hash' can.
    csv.write_bytes(csv.read_bytes().replace(b"0.0,0.0,0.0,1", b"0.0,0.0,5.0,1"))
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert csv.stat().st_size == st.st_size
    assert cache.lookup(csv, 3, True) == "hit"
    hashing = FeatureCache(tmp_path / "cache")
    assert hashing.verify == "hash"
    assert hashing.lookup(csv, 3, True) == "stale"
    feats, _ = hashing.load(csv, 3, True)
    assert hashing.last_status == "stale" and feats[2, 2] == 5.0
    # Different size: stale for the default check, and the rebuilt entry holds the new rows.
    csv.write_text(csv.read_text() + "7,7,7,2\n")
    assert cache.lookup(csv, 3, True) == "stale"
    feats, labels = cache.load(csv, 3, True)
    assert feats.shape == (5, 3) and labels.tolist() == [0, 0, 1, 1, 2]
    assert cache.load(csv, 3, True)[0].shape == (5, 3) and cache.last_status == "hit"


def test_cache_touched_csv_is_hit_by_digest_and_corrupt_entry_rebuilt(tmp_path):
    csv = write_rows(tmp_path / "c.csv", matrix_rows(np.ones((3, 2)), [1, 2, 3]))
    cache = FeatureCache(tmp_path / "cache")
    cache.load(csv, 2, True)
    st = csv.stat()
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))   # touched, same bytes
    cache.load(csv, 2, True)
    assert cache.last_status == "hit"
    sidecar = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert sidecar["mtime_ns"] == csv.stat().st_mtime_ns   # refreshed: next time no digest
    npy = next(p for p in (tmp_path / "cache").glob("*.npy") if not p.name.endswith(".labels.npy"))
    npy.write_bytes(b"garbage")
    feats, _ = cache.load(csv, 2, True)
    assert cache.last_status == "stale" and feats.tolist() == [[1, 1]] * 3
    assert cache.load(csv, 2, True)[0].shape == (3, 2) and cache.last_status == "hit"


# --------------------------------------------------------------------------- layout and loaders

def test_versions_and_languages():
    assert FAME_VERSIONS == {"v1": ("English", "Urdu"), "v2": ("English", "Hindi"),
                             "v3": ("English", "German")}
    assert other_language("v3", "english") == "German" and other_language("v1", "Urdu") == "English"
    assert normalize_language("v2", "HINDI") == "Hindi"
    with pytest.raises(ValueError, match="German.*not part of v1"):
        other_language("v1", "German")
    with pytest.raises(KeyError, match="v9"):
        FameLayout(Path("."), "v9")


def test_remap_labels_hand_checked():
    codes, classes = remap_labels(np.array([40, 7, 40, 12, 7]))
    assert codes.tolist() == [2, 0, 2, 1, 0] and classes.tolist() == [7, 12, 40]
    codes, classes = remap_labels(np.array(["b", "a", "b"]))
    assert codes.tolist() == [1, 0, 1] and classes.tolist() == ["a", "b"]


def test_load_synthetic_both_languages_and_naming_variants(syn, tmp_path):
    manifest = json.loads(syn.manifest.read_text())
    for lang in ("English", "German"):
        data = FameFeatures.load(syn.root, "v3", lang, face_dim=FD, voice_dim=VD,
                                 cache_dir=tmp_path / "cache")
        tr = data.train
        assert tr.faces.shape[1] == FD and tr.voices.shape[1] == VD and len(tr) == len(tr.faces)
        assert tr.labels.min() == 0 and tr.labels.max() == tr.n_classes - 1
        assert tr.classes.tolist() == manifest["train_identities"]
        assert data.heard.heard and not data.unheard.heard
        assert data.unheard.test_language == other_language("v3", lang)
        for ts in (data.heard, data.unheard):
            pairs = read_pairs(FameLayout(syn.root, "v3").pair_list(ts.test_language))
            assert ts.keys == [p.key for p in pairs] and len(ts.faces) == len(ts.voices) == len(pairs)
        assert (tr.faces >= 0).all() and (data.heard.faces >= 0).all()
    # both naming branches: English folder holds German_*_unheard_test.csv, German folder the plain name
    kw = dict(load_train=False, face_dim=FD, voice_dim=VD, use_cache=False)
    en = FameFeatures.load(syn.root, "v3", "English", **kw)
    de = FameFeatures.load(syn.root, "v3", "German", **kw)
    assert en.train is None
    assert en.unheard.face_file.name == "German_faces_unheard_test.csv"
    assert de.unheard.face_file.name == "English_faces_test.csv"
    # the unheard copy equals the heard-folder file of that language
    np.testing.assert_array_equal(en.unheard.faces, de.heard.faces)
    np.testing.assert_array_equal(de.unheard.voices, en.heard.voices)


def test_loader_uses_default_cache_and_matches_uncached(syn, tmp_path):
    root = clone(syn, tmp_path)
    cached = load_fame_train(root, "v3", "German", face_dim=FD, voice_dim=VD)
    assert (root / ".modalink_cache").is_dir() and len(list((root / ".modalink_cache").glob("*.json"))) == 2
    plain = load_fame_train(root, "v3", "German", face_dim=FD, voice_dim=VD, use_cache=False)
    np.testing.assert_array_equal(cached.faces, plain.faces)
    np.testing.assert_array_equal(cached.labels, plain.labels)


def test_test_file_name_preference_and_missing(syn, tmp_path):
    root = clone(syn, tmp_path)
    layout = FameLayout(root, "v3")
    folder = root / "preExtracted_vggFace_utteranceLevel_Features" / "v3" / "English"
    # exact name wins when both exist
    shutil.copy(folder / "German_faces_unheard_test.csv", folder / "German_faces_test.csv")
    assert layout.test_csv("English", "German", "face").name == "German_faces_test.csv"
    assert layout.test_csv("English", "German", "voice").name == "German_voices_unheard_test.csv"
    for name in ("German_voices_unheard_test.csv",):
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError) as exc:
        load_fame_test(root, "v3", "English", "German", face_dim=FD, voice_dim=VD, use_cache=False)
    msg = str(exc.value)
    assert "German_voices_test.csv" in msg and "German_voices_unheard_test.csv" in msg
    # heard files have one accepted name only
    assert [p.name for p in layout.test_csv_candidates("English", "English", "voice")] == \
        ["English_voices_test.csv"]


def test_loader_row_count_and_label_mismatches(syn, tmp_path):
    root = clone(syn, tmp_path)
    layout = FameLayout(root, "v3")
    vfile = layout.train_csv("English", "voice")
    lines = vfile.read_text().splitlines()
    vfile.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(FeatureFileError) as exc:
        load_fame_train(root, "v3", "English", face_dim=FD, voice_dim=VD, use_cache=False)
    msg = str(exc.value)
    assert "English_faces_train.csv" in msg and "English_voices_train.csv" in msg
    assert f"has {len(lines)} rows but" in msg and f"has {len(lines) - 1};" in msg
    # same row count, different label on line 2
    first, rest = lines[1].rsplit(",", 1)
    lines[1] = f"{first},999"
    vfile.write_text("\n".join(lines) + "\n")
    with pytest.raises(FeatureFileError, match=r"line 2: identity label .*differs"):
        load_fame_train(root, "v3", "English", face_dim=FD, voice_dim=VD, use_cache=False)
    # test CSV shorter than the pair list
    tfile = layout.test_csv("German", "German", "face")
    tfile.write_text("\n".join(tfile.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(FeatureFileError) as exc:
        load_fame_test(root, "v3", "German", "German", face_dim=FD, voice_dim=VD, use_cache=False)
    assert "German_faces_test.csv" in str(exc.value) and "German_test.txt" in str(exc.value)
    assert "but the pair list" in str(exc.value)


def test_test_csv_with_extra_label_column_is_accepted(syn, tmp_path):
    root = clone(syn, tmp_path)
    tfile = FameLayout(root, "v3").test_csv("English", "English", "voice")
    lines = tfile.read_text().splitlines()
    tfile.write_text("".join(f"{line},0\n" for line in lines))
    ts = load_fame_test(root, "v3", "English", "English", face_dim=FD, voice_dim=VD, use_cache=False)
    assert ts.voices.shape == (len(lines), VD)


def test_official_widths(tmp_path):
    out = generate_synthetic_fame(tmp_path / "r", "v1", n_train_ids=2, n_test_ids=2, rows_per_id=1,
                                  n_test_pairs=2)
    face_csv = FameLayout(out.root, "v1").train_csv("Urdu", "face")
    assert face_csv.read_text().splitlines()[0].count(",") + 1 == 4097
    data = FameFeatures.load(out.root, "v1", "Urdu", use_cache=False)
    assert data.train.faces.shape[1] == 4096 and data.train.voices.shape[1] == 512
    assert data.unheard.test_language == "English" and len(data.heard) == 2


# --------------------------------------------------------------------------- splits and trials

def test_split_train_val_identity_disjoint():
    labels = np.repeat(np.arange(20), np.arange(1, 21))
    tr, va = split_train_val(labels, val_fraction=0.2, seed=5)
    assert len(set(labels[tr]) & set(labels[va])) == 0
    assert len(np.unique(labels[va])) == 4
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(len(labels)))
    tr2, va2 = split_train_val(labels, val_fraction=0.2, seed=5)
    assert np.array_equal(va, va2)
    assert any(not np.array_equal(va, split_train_val(labels, 0.2, seed=s)[1]) for s in range(6, 10))
    _, va3 = split_train_val(labels, n_val_ids=7, seed=0)
    assert len(np.unique(labels[va3])) == 7
    with pytest.raises(ValueError, match="cannot hold out 20 of 20"):
        split_train_val(labels, n_val_ids=20)


def test_verification_trials_balanced_and_correct():
    labels = np.repeat(np.array([3, 8, 5, 11]), [5, 1, 7, 4])
    f, v, same = make_verification_trials(labels, 301, seed=2)
    assert len(f) == len(v) == len(same) == 301 and same.sum() == 150
    assert np.array_equal(labels[f] == labels[v], same)          # the flag is the truth
    multi = np.isin(labels[f], [3, 5, 11]) & same
    assert (f[multi] != v[multi]).all()                           # other clip of the same person
    single = (labels[f] == 8) & same
    assert (f[single] == v[single]).all()
    again = make_verification_trials(labels, 301, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip((f, v, same), again))
    # restricted to validation rows: only those rows appear, indices are row numbers
    big = np.repeat(np.arange(10), 6)
    _, va = split_train_val(big, n_val_ids=3, seed=1)
    f, v, same = make_verification_trials(big, 200, seed=0, rows=va)
    assert set(f) <= set(va) and set(v) <= set(va) and same.mean() == 0.5
    assert np.array_equal(big[f] == big[v], same)
    # different trials reach every other identity (uniform over the other rows)
    assert len({(big[a], big[b]) for a, b, s in zip(f, v, same) if not s}) == 6
    with pytest.raises(ValueError, match="at least 2 identities"):
        make_verification_trials(np.zeros(5), 10)


# --------------------------------------------------------------------------- synthetic generator

def test_synthetic_layout_ground_truth_and_disjoint_ids(syn):
    files = set(syn.files)
    for lang in ("English", "German"):
        for m in ("faces", "voices"):
            assert f"feats/v3/{lang}_feats/{lang}_{m}_train.csv" in files
        assert f"face_voice_association_splits/v3/{lang}_test.txt" in files
        gt = read_ground_truth(syn.ground_truth(lang))
        pairs = read_pairs(FameLayout(syn.root, "v3").pair_list(lang))
        assert [p.key for p in pairs] == list(gt) and sum(gt.values()) == len(gt) // 2
        assert pairs[3].voice_path == f"voices/{lang}/00003.wav"
        assert pairs[3].face_path == f"faces/{lang}/00003.jpg"
    base = "preExtracted_vggFace_utteranceLevel_Features/v3"
    assert {f"{base}/English/German_faces_unheard_test.csv", f"{base}/German/English_faces_test.csv",
            f"{base}/English/English_voices_test.csv", f"{base}/German/German_voices_test.csv"} <= files
    meta = json.loads(syn.manifest.read_text())
    assert len(meta["train_identities"]) == 6 and len(meta["test_identities"]) == 3
    assert not set(meta["train_identities"]) & set(meta["test_identities"])
    labels = read_feature_csv(syn.root / "feats/v3/English_feats/English_voices_train.csv", VD, True)[1]
    assert set(labels.tolist()) == set(meta["train_identities"])


def test_synthetic_deterministic_and_idempotent(syn, tmp_path):
    again = generate_synthetic_fame(tmp_path / "b", "v3", seed=3, **SMALL)
    assert again.generated and again.files == syn.files
    for rel in syn.files:
        assert (syn.root / rel).read_bytes() == (again.root / rel).read_bytes(), rel
    mtimes = {rel: (again.root / rel).stat().st_mtime_ns for rel in again.files}
    kept = generate_synthetic_fame(tmp_path / "b", "v3", seed=3, **SMALL)
    assert not kept.generated
    assert mtimes == {rel: (again.root / rel).stat().st_mtime_ns for rel in again.files}
    other = generate_synthetic_fame(tmp_path / "b", "v3", seed=4, **SMALL)   # spec changed
    assert other.generated
    rel = "feats/v3/English_feats/English_faces_train.csv"
    assert (other.root / rel).read_bytes() != (syn.root / rel).read_bytes()
    # a damaged file triggers regeneration
    (other.root / rel).write_text("truncated")
    assert generate_synthetic_fame(tmp_path / "b", "v3", seed=4, **SMALL).generated


def test_synthetic_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        synthetic_fame.main(["--help"])
    assert exc.value.code == 0 and "--rows-per-id" in capsys.readouterr().out
    assert synthetic_fame.main([str(tmp_path / "cli"), "--ver", "v2", "--train-ids", "3", "--test-ids", "2",
                                "--rows-per-id", "2", "--test-pairs", "4", "--face-dim", "6",
                                "--voice-dim", "4"]) == 0
    assert "wrote 16 files" in capsys.readouterr().out
    assert (tmp_path / "cli/face_voice_association_splits/v2/Hindi_test.txt").is_file()
    synthetic_fame.main([str(tmp_path / "cli"), "--ver", "v2", "--train-ids", "3", "--test-ids", "2",
                         "--rows-per-id", "2", "--test-pairs", "4", "--face-dim", "6", "--voice-dim", "4"])
    assert "up to date" in capsys.readouterr().out


def _eer(same: np.ndarray, score: np.ndarray) -> float:
    """EER (%) of similarity scores, by a plain threshold sweep."""
    order = np.argsort(-score)
    s = same[order].astype(float)
    tpr = np.cumsum(s) / s.sum()
    fpr = np.cumsum(1 - s) / (1 - s).sum()
    i = np.argmin(np.abs((1 - tpr) - fpr))
    return 100 * ((1 - tpr[i]) + fpr[i]) / 2


def _linear_cca(x: np.ndarray, y: np.ndarray, k: int, pca: int = 32, reg: float = 1e-3):
    """Plain CCA: PCA-whiten each side, SVD of the cross-covariance; returns two projectors."""
    def whitener(a):
        mu = a.mean(0)
        u, sv, vt = np.linalg.svd(a - mu, full_matrices=False)
        var = sv[:pca] ** 2 / len(a)
        return mu, vt[:pca].T / np.sqrt(var + reg * var.max())
    (mx, wx), (my, wy) = whitener(x), whitener(y)
    u, _, vt = np.linalg.svd(((x - mx) @ wx).T @ ((y - my) @ wy) / len(x))
    return (lambda a: (a - mx) @ wx @ u[:, :k]), (lambda b: (b - my) @ wy @ vt.T[:, :k])


def test_synthetic_association_is_learnable_but_not_trivial(tmp_path):
    """Default difficulty knobs (narrower faces for speed): a linear CCA trained on the training
    identities clearly beats chance on unseen identities, heard and unheard; random projections
    of the same features stay near chance."""
    out = generate_synthetic_fame(tmp_path / "cal", "v3", seed=0, face_dim=256, voice_dim=64,
                                  n_test_pairs=600)
    data = FameFeatures.load(out.root, "v3", "English", face_dim=256, voice_dim=64, use_cache=False)
    tr = data.train
    proj_face, proj_voice = _linear_cca(tr.faces.astype(np.float64), tr.voices.astype(np.float64), 12)
    rng = np.random.default_rng(0)
    for ts in (data.heard, data.unheard):
        gt = read_ground_truth(out.ground_truth(ts.test_language))
        same = np.array([gt[k] for k in ts.keys])
        a, b = proj_face(ts.faces), proj_voice(ts.voices)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert 3.0 < _eer(same, cos) < (30.0 if ts.heard else 35.0)
        ra, rb = ts.faces @ rng.standard_normal((256, 16)), ts.voices @ rng.standard_normal((64, 16))
        rand = (ra * rb).sum(1) / np.linalg.norm(ra, axis=1) / np.linalg.norm(rb, axis=1)
        assert _eer(same, rand) > 35.0


def test_process_shares_are_contiguous_blocks_covering_every_row():
    import torch

    from modalink.data.processes import Processes

    for n, count in ((183, 2), (183, 3), (7, 4), (4, 4), (100, 1)):
        blocks = [Processes(i, count).share(n).tolist() for i in range(count)]
        assert sum(blocks, []) == list(range(n))
        assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert Processes(1, 4).share(3).tolist() == [0, 1, 2]  # fewer rows than processes: all of them
    x = torch.ones(5, 2)
    assert Processes.single().gather_rows(x, 5) is x
