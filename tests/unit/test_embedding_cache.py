"""The one embedding-extraction-and-cache pipeline (modalink.data.embedding_cache): validity,
resume from shards, incremental row reuse, per-row problems, retry, tampering, force."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from modalink.data.embedding_cache import (CacheError, CacheKey, EmbeddingCache, EncodedRows, RowProblem,
                                           file_list_hash, file_row_ids, text_row_ids)


def _key(count=10, source="s1", encoder=None):
    return CacheKey("train", "image", encoder or {"name": "toy", "dim": 3}, source, count)


def _encoder(log):
    """Row r embeds as (r, r, r); every call's rows are logged."""
    def encode(rows):
        log.append(list(map(int, rows)))
        return np.asarray(rows, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    return encode


def _by_id(values, log, fail=()):
    """Row embeds as the value named by its id; ids in ``fail`` fail, ids ending in '!' fall back."""
    def encode(rows):
        ids = [values.ids[r] for r in rows]
        log.extend(ids)
        out = np.array([[float(i.split(":")[0])] * 2 for i in ids], np.float32)
        probs = {}
        for k, (r, i) in enumerate(zip(rows, ids)):
            if i in fail:
                out[k] = 0
                probs[int(r)] = RowProblem("unreadable", f"{i} is broken")
            elif i.endswith("!"):
                probs[int(r)] = RowProblem("no_face", "centre crop", embedded=True)
        return EncodedRows(out, probs)
    return encode


class _Ids:
    def __init__(self, ids):
        self.ids = list(ids)


def test_build_reuse_and_stale_rebuild(tmp_path):
    cache, log = EmbeddingCache(tmp_path), []
    arr, built = cache.get_or_build(_key(), _encoder(log), shard_size=4, progress=False)
    assert built and log == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    np.testing.assert_array_equal(arr[:, 0], np.arange(10))
    man = json.loads((tmp_path / "train_image.json").read_text())
    assert man["shape"] == [10, 3] and man["count"] == 10 and man["source_hash"] == "s1"
    assert not (tmp_path / ".shards").exists()
    log.clear()
    _, built = cache.get_or_build(_key(), _encoder(log), shard_size=4, progress=False)
    assert not built and log == []
    for stale in (_key(source="s2"), _key(encoder={"name": "toy", "dim": 3, "v": 2}), _key(count=9)):
        assert cache.check(stale) is not None
        _, built = cache.get_or_build(stale, _encoder(log), shard_size=4, progress=False)
        assert built
    # an array whose shape no longer matches its manifest is stale
    key = _key(count=9)
    np.save(tmp_path / "train_image.npy", np.zeros((9, 5), np.float32))
    assert "shape" in cache.check(key)
    with pytest.raises(CacheError, match="not valid"):
        cache.load(key)
    arr, built = cache.get_or_build(key, _encoder(log), shard_size=4, progress=False)
    assert built and arr.shape == (9, 3)


def test_array_changed_in_place_is_seen_by_its_digest(tmp_path):
    cache, log = EmbeddingCache(tmp_path), []
    cache.get_or_build(_key(), _encoder(log), shard_size=4, progress=False)
    path = tmp_path / "train_image.npy"
    arr = np.load(path)
    arr[3, 1] = np.nan  # same shape, same dtype, other content
    st = path.stat()
    np.save(path, arr)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "content digest" in cache.check(_key())
    log.clear()
    arr, built = cache.get_or_build(_key(), _encoder(log), shard_size=4, progress=False)
    assert built and np.isfinite(arr).all() and log  # rebuilt, not served


def test_resumes_from_shards(tmp_path):
    cache, log = EmbeddingCache(tmp_path), []

    def failing(rows):
        if rows[0] >= 8:
            raise KeyboardInterrupt  # interrupted after two shards
        return _encoder(log)(rows)

    with pytest.raises(KeyboardInterrupt):
        cache.build(_key(count=12), failing, shard_size=4, progress=False)
    assert cache.check(_key(count=12)) is not None
    log.clear()
    arr = cache.build(_key(count=12), _encoder(log), shard_size=4, progress=False)
    assert log == [[8, 9, 10, 11]]  # only the missing shard was extracted
    np.testing.assert_array_equal(arr[:, 1], np.arange(12))


def test_new_rows_are_encoded_and_known_rows_copied(tmp_path):
    cache, log = EmbeddingCache(tmp_path), []
    enc = {"name": "by-id"}
    v1 = _Ids(["1:a", "2:b", "3:c", "4:d"])
    k1 = CacheKey.for_rows("train", "face", enc, v1.ids)
    arr, _ = cache.get_or_build(k1, _by_id(v1, log), shard_size=3, progress=False)
    assert log == v1.ids and arr[:, 0].tolist() == [1, 2, 3, 4]
    # two rows added in the middle, one removed, order changed: only the new ones are encoded
    v2 = _Ids(["4:d", "7:x", "1:a", "8:y", "3:c"])
    k2 = CacheKey.for_rows("train", "face", enc, v2.ids)
    assert cache.check(k2) is not None
    log.clear()
    arr, built = cache.get_or_build(k2, _by_id(v2, log), shard_size=3, progress=False)
    assert built and log == ["7:x", "8:y"]
    assert arr[:, 0].tolist() == [4, 7, 1, 8, 3]
    man = json.loads((tmp_path / "train_face.json").read_text())
    assert man["last_build"] == {"copied": 3, "encoded": 2, "resumed": 0}
    # another encoder copies nothing
    log.clear()
    k3 = CacheKey.for_rows("train", "face", {"name": "by-id", "v": 2}, v2.ids)
    cache.get_or_build(k3, _by_id(v2, log), shard_size=3, progress=False)
    assert log == v2.ids
    # rows without ids: nothing to copy from, always a full build
    log.clear()
    cache.get_or_build(_key(count=4), _encoder(log), shard_size=3, progress=False)
    assert log == [[0, 1, 2], [3]]


def test_row_problems_are_kept_copied_and_retried(tmp_path):
    cache, log = EmbeddingCache(tmp_path), []
    enc = {"name": "by-id"}
    v1 = _Ids(["1:a", "2:bad", "3:c!", "4:d"])
    k1 = CacheKey.for_rows("test", "face", enc, v1.ids)
    arr, _ = cache.get_or_build(k1, _by_id(v1, log, fail={"2:bad"}), shard_size=2, progress=False)
    probs = cache.problems(k1)
    assert probs == {1: RowProblem("unreadable", "2:bad is broken"), 2: RowProblem("no_face", "centre crop", True)}
    assert not arr[1].any() and arr[2, 0] == 3
    # copied rows keep their problem under their new row number
    v2 = _Ids(["0:new", *v1.ids])
    k2 = CacheKey.for_rows("test", "face", enc, v2.ids)
    log.clear()
    cache.get_or_build(k2, _by_id(v2, log, fail={"2:bad"}), shard_size=2, progress=False)
    assert log == ["0:new"]
    assert set(cache.problems(k2)) == {2, 3}
    # a valid cache with failures: retry_failed encodes exactly the failed rows again
    log.clear()
    arr, built = cache.get_or_build(k2, _by_id(v2, log), shard_size=2, progress=False, retry_failed=True)
    assert built and log == ["2:bad"] and arr[2, 0] == 2
    assert set(cache.problems(k2)) == {3}
    log.clear()
    _, built = cache.get_or_build(k2, _by_id(v2, log), shard_size=2, progress=False, retry_failed=True)
    assert not built and log == []


def test_force_encodes_everything_again(tmp_path):
    cache, log = EmbeddingCache(tmp_path), []
    ids = _Ids(["1:a", "2:b"])
    key = CacheKey.for_rows("train", "face", {"name": "by-id"}, ids.ids)
    cache.get_or_build(key, _by_id(ids, log), progress=False)
    log.clear()
    _, built = cache.get_or_build(key, _by_id(ids, log), progress=False, force=True)
    assert built and log == ids.ids


def test_bad_encoder_output_names_the_cache(tmp_path):
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(CacheError, match="train_image: encoder returned shape"):
        cache.build(_key(count=3), lambda rows: np.zeros((1, 2), np.float32), progress=False)
    with pytest.raises(CacheError, match="non-finite"):
        cache.build(_key(count=3), lambda rows: np.full((len(rows), 2), np.nan, np.float32), progress=False)
    with pytest.raises(CacheError, match="not asked for"):
        cache.build(_key(count=3), lambda rows: EncodedRows(np.zeros((len(rows), 2), np.float32),
                                                            {7: RowProblem("x")}), progress=False)
    (tmp_path / "train_image.json").write_text("{not json")
    assert "corrupt" in cache.check(_key(count=3))


def test_file_and_text_row_ids(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x")
    b.write_bytes(b"yy")
    ids = file_row_ids([a, b], tmp_path)
    assert ids[0].startswith("a.bin\t1\t") and ids[1].startswith("b.bin\t2\t")
    os.utime(a, ns=(1, 10**18))
    assert file_row_ids([a], tmp_path)[0] != ids[0]
    h = file_list_hash([a, b], tmp_path)
    assert h == file_list_hash([b, a], tmp_path)  # sorted by default
    assert h != file_list_hash([b, a], tmp_path, ordered=True)
    with pytest.raises(FileNotFoundError, match="c.bin"):
        file_row_ids([tmp_path / "c.bin"], tmp_path)
    t = text_row_ids(["pizza", "", None, "pizza"])
    assert t[0] == t[3] and len(set(t)) == 3


def test_benchmark_script_runs_and_checks_incremental_equals_full(capsys):
    from conftest import load_script
    from pathlib import Path

    bench = load_script(Path(__file__).resolve().parents[2] / "scripts" /
                        "bench_embedding_cache.py")
    assert bench.main(["--images", "40", "--new", "4", "--touched", "2", "--shard-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "| grown | 44 | 6 | 38 |" in out and "identical arrays" in out


def test_file_row_id_sees_a_rewrite_that_keeps_size_and_mtime(tmp_path):
    """A file's row identity carries a digest of its bytes: rewritten in place with the same size
    and mtime (rsync -t, cp -p) it gets another identity; ``content=False`` cannot see it."""
    a = tmp_path / "a.wav"
    a.write_bytes(b"abcd")
    st = a.stat()
    before, stat_only = file_row_ids([a], tmp_path)[0], file_row_ids([a], tmp_path, content=False)[0]
    a.write_bytes(b"abce")
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_row_ids([a], tmp_path)[0] != before
    assert file_row_ids([a], tmp_path, content=False)[0] == stat_only


def test_bench_file_row_ids_smoke(capsys):
    from pathlib import Path

    from conftest import load_script

    bench = load_script(Path(__file__).resolve().parents[2] / "scripts" / "bench_file_row_ids.py")
    assert bench.main(["--files", "3", "--seconds", "0.5", "--embed", "0"]) == 0  # the digest only: fast
    out = capsys.readouterr().out
    assert "| voice clip |" in out and "| face frame |" in out


def test_streaming_encoder_is_called_once_and_resumes_from_its_shards(tmp_path):
    """A streaming encoder gets every row to embed in one call (one data loader) and may yield its
    rows in any order; shards are cut as the pieces come, and a build interrupted after some
    shards resumes with only the rows they do not hold."""
    cache, calls = EmbeddingCache(tmp_path), []

    def stream(rows, stop_after=None):
        calls.append(list(map(int, rows)))
        order = sorted(rows.tolist(), key=lambda r: (r % 3, r))  # not the row order (e.g. by clip length)
        for k in range(0, len(order), 2):
            if stop_after is not None and k >= stop_after:
                raise KeyboardInterrupt
            piece = np.array(order[k:k + 2])
            yield piece, EncodedRows(piece[:, None] * np.ones((1, 3), np.float32),
                                     {int(r): RowProblem("no_face", "crop", True) for r in piece if r == 4})

    with pytest.raises(KeyboardInterrupt):
        cache.build(_key(count=11), lambda rows: stream(rows, stop_after=6), shard_size=3, streaming=True,
                    progress=False)
    assert len(list((tmp_path / ".shards").rglob("part-*.npy"))) == 1  # 4 rows, cut at >= 3; 2 more were held
    calls.clear()
    arr = cache.build(_key(count=11), stream, shard_size=3, streaming=True, progress=False)
    assert len(calls) == 1 and len(calls[0]) == 11 - 4  # the rows of the written shard are not embedded again
    np.testing.assert_array_equal(arr[:, 2], np.arange(11))
    assert cache.problems(_key(count=11)) == {4: RowProblem("no_face", "crop", True)}
    assert not (tmp_path / ".shards").exists()
    man = json.loads((tmp_path / "train_image.json").read_text())
    assert man["last_build"] == {"copied": 0, "encoded": 7, "resumed": 4}


def test_streaming_encoder_that_skips_or_repeats_rows_is_refused(tmp_path):
    cache = EmbeddingCache(tmp_path)

    def skips(rows):
        yield rows[:-1], np.zeros((len(rows) - 1, 2), np.float32)

    with pytest.raises(CacheError, match=r"no embedding for rows \[4\]"):
        cache.build(_key(count=5), skips, shard_size=2, streaming=True, progress=False)

    def repeats(rows):
        yield rows, np.zeros((len(rows), 2), np.float32)
        yield rows[:1], np.zeros((1, 2), np.float32)

    with pytest.raises(CacheError, match="not asked for"):
        cache.build(_key(count=5), repeats, shard_size=2, streaming=True, progress=False)


def test_damaged_or_overlapping_shards_are_not_trusted(tmp_path):
    """Shards left by an interrupted build (of any process) are used only when complete and
    disjoint; the rows of a damaged or overlapping one are embedded again."""
    cache, log = EmbeddingCache(tmp_path), []
    with pytest.raises(KeyboardInterrupt):
        def stop(rows):
            if rows[0] >= 4:
                raise KeyboardInterrupt
            return _encoder(log)(rows)
        cache.build(_key(count=8), stop, shard_size=4, progress=False)
    sdir = cache.shard_dir(_key(count=8))
    assert len(list(sdir.glob("part-*.npy"))) == 1
    (sdir / "part-zz-000000.json").write_text(json.dumps({"rows": [3, 4], "problems": {}}))  # overlaps row 3
    np.save(sdir / "part-zz-000000.npy", np.full((2, 3), 99, np.float32))
    (sdir / "part-zz-000001.json").write_text("{not json")
    np.save(sdir / "part-zz-000001.npy", np.full((1, 3), 99, np.float32))
    log.clear()
    arr = cache.build(_key(count=8), _encoder(log), shard_size=4, progress=False)
    assert log == [[4, 5, 6, 7]]
    np.testing.assert_array_equal(arr[:, 0], np.arange(8))
