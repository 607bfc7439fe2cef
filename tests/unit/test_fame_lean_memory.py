"""Lean FAME memory: features read through memory maps of the cache and index arrays, never
copied whole (PairDataset, embed_rows, the cache's first load)."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from modalink.face_voice import FeatureCache
from modalink.face_voice import FaceVoiceModelConfig, PairDataset, build_face_voice_model, collate_pairs, embed_rows


def memmaps(tmp_path: Path, n: int = 1200, face_dim: int = 2048, voice_dim: int = 64):
    rng = np.random.default_rng(0)
    out = []
    for name, dim in (("f", face_dim), ("v", voice_dim)):
        np.save(tmp_path / f"{name}.npy", rng.standard_normal((n, dim)).astype(np.float32))
        out.append(np.load(tmp_path / f"{name}.npy", mmap_mode="r"))
    return out


def test_pair_dataset_gathers_indexed_rows_from_read_only_maps(tmp_path):
    faces, voices = memmaps(tmp_path, n=50, face_dim=6, voice_dim=3)
    idx = np.array([7, 3, 49, 0, 12])
    labels = np.array([4, 1, 0, 2, 2])
    ds = PairDataset(faces, voices, labels, index=idx)
    assert len(ds) == 5 and ds.faces is faces and ds.voices is voices  # kept, not copied
    [batch] = ds.__getitems__([2, 0, 4])
    assert torch.equal(batch["face"], torch.from_numpy(np.asarray(faces)[[49, 7, 12]]))
    assert torch.equal(batch["voice"], torch.from_numpy(np.asarray(voices)[[49, 7, 12]]))
    assert batch["label"].tolist() == [0, 4, 2] and batch["index"].tolist() == [2, 0, 4]
    batch["face"] += 1  # writable memory of its own
    item = ds[1]
    assert torch.equal(item["face"], torch.from_numpy(np.array(faces[3]))) and int(item["label"]) == 1
    # the same batches as the copied rows gave
    copied = PairDataset(np.asarray(faces)[idx], np.asarray(voices)[idx], labels)
    assert torch.equal(collate_pairs(copied.__getitems__([4, 1]))["face"],
                       collate_pairs(ds.__getitems__([4, 1]))["face"])
    with pytest.raises(ValueError, match="outside"):
        PairDataset(faces, voices, index=np.array([50]))
    with pytest.raises(ValueError, match="labels"):
        PairDataset(faces, voices, labels, index=idx[:3])


def test_pair_dataset_batch_allocates_the_batch_not_the_data(tmp_path):
    faces, voices = memmaps(tmp_path)  # 9.8 MB of features
    tracemalloc.start()
    try:
        ds = PairDataset(faces, voices, np.zeros(1000, dtype=np.int64), index=np.arange(100, 1100))
        ds.__getitems__(list(range(32)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # a 32-row batch is 0.27 MB


def test_embed_rows_of_an_index_equals_embedding_the_copied_rows(tmp_path):
    faces, _ = memmaps(tmp_path, n=300, face_dim=40, voice_dim=8)
    torch.manual_seed(0)
    model = build_face_voice_model(FaceVoiceModelConfig(), 40, 8, 5)
    idx = np.random.default_rng(1).permutation(300)[:170]
    a = embed_rows(model, faces, "face", batch_size=64, rows=idx)
    b = embed_rows(model, np.asarray(faces)[idx], "face", batch_size=64)
    assert torch.equal(a, b)
    tracemalloc.start()
    try:
        big, _ = memmaps(tmp_path, n=1200, face_dim=2048, voice_dim=8)
        model2 = build_face_voice_model(FaceVoiceModelConfig(), 2048, 8, 5)
        tracemalloc.reset_peak()
        embed_rows(model2, big, "face", batch_size=64, rows=np.arange(1200))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000, peak  # the rows are 9.8 MB


def test_cache_first_load_returns_memory_maps(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("1,2,0\n3,4,1\n")
    cache = FeatureCache(tmp_path / "cache")
    feats, labels = cache.load(csv, 2, True, mmap=True)
    assert cache.last_status == "miss"
    assert isinstance(feats, np.memmap) and isinstance(labels, np.memmap) and not feats.flags.writeable
    assert feats.tolist() == [[1, 2], [3, 4]] and labels.tolist() == [0, 1]
    feats, labels = cache.load(csv, 2, True)
    assert cache.last_status == "hit" and not isinstance(feats, np.memmap)
    csv.write_text("1,2,0\n3,5,1\n")
    feats, _ = cache.load(csv, 2, True)  # rebuilt, in memory without mmap
    assert cache.last_status == "stale" and not isinstance(feats, np.memmap) and feats[1, 1] == 5


def test_memory_benchmark_answers_help():
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_fame_memory.py"
    res = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--scales" in res.stdout and "--repo" in res.stdout
