"""Chameleon text → image encoding: tokeniser, word-vector files, vectorised vs naive encoder."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modalink.text.render import TextToImage, naive_text_to_image, quantise_bytes
from modalink.text.word_vectors import WordVectors, WordVectorsFormatError, hashed_vectors, tokenize

TEXTS = [
    "Homemade apple pie with a crunchy crust!",
    None,
    "",
    "  ...  ",
    "Don't stop: 42 bananas, UNKNOWNWORD and café au lait",
    " ".join(f"word{i}" for i in range(80)),  # longer than max_words
]


def naive_batch(enc: TextToImage, texts) -> np.ndarray:
    g = enc.grid
    return np.stack([
        naive_text_to_image(t, enc.vectors, height=g.height, width=g.width, superpixel=enc.superpixel,
                            max_words=enc.max_words, value_range=enc.value_range)
        for t in texts])


# --- tokeniser and vectors -------------------------------------------------------------------
def test_tokenize():
    assert tokenize("Don't STOP: 42 bananas_split, café!") == ["don't", "stop", "42", "bananas", "split", "café"]
    assert tokenize(None) == [] and tokenize("") == [] and tokenize(" ,. ") == []
    assert tokenize("It\u2019s") == ["it's"]


def test_hashed_vectors_stable_and_seeded():
    a = hashed_vectors(["pie", "apple", "pie"], 30, seed=0)
    assert a.dtype == np.float32 and a.shape == (3, 30)
    assert np.array_equal(a[0], a[2]) and not np.array_equal(a[0], a[1])
    assert a.min() >= -1.0 and a.max() < 1.0
    assert np.array_equal(hashed_vectors(["pie"], 30, seed=0)[0], a[0])
    assert not np.array_equal(hashed_vectors(["pie"], 30, seed=1)[0], a[0])
    # values spread over the range (uniform): mean ~0, std ~1/sqrt(3)
    big = hashed_vectors([f"w{i}" for i in range(200)], 300)
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1 / math.sqrt(3)) < 0.01
    wv = WordVectors.hashed(30)
    assert np.array_equal(wv.vector("pie"), a[0]) and wv.value_range == (-1.0, 1.0)


@pytest.fixture
def small_table():
    rng = np.random.default_rng(3)
    words = ["the", "pie", "apple", "crust", "naïve"]
    return WordVectors(words, rng.normal(size=(5, 7)).astype(np.float32))


@pytest.mark.parametrize("fmt,header", [("text", True), ("text", False), ("binary", True)])
def test_word_vector_files_round_trip(tmp_path, small_table, fmt, header):
    path = tmp_path / ("v.bin" if fmt == "binary" else "v.txt")
    small_table.save(path, format=fmt, header=header)
    loaded = WordVectors.load(path)  # format sniffed
    assert loaded.words == small_table.words
    assert np.array_equal(loaded.matrix, small_table.matrix)
    # an explicit format and a non-.bin binary file are read the same way
    other = tmp_path / "vectors.w2v"
    other.write_bytes(path.read_bytes())
    again = WordVectors.load(other)
    assert np.array_equal(again.matrix, small_table.matrix)


def test_text_formats_by_hand(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.5 -1 2\nhot dog 1 2 3\nPie 0 0 1e-3\n", encoding="utf-8")
    wv = WordVectors.load(glove)
    assert wv.words == ["the", "hot dog", "pie"] and wv.dim == 3
    assert np.allclose(wv.matrix[2], [0, 0, 0.001])
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("2 3\nThe 1 2 3\nthe 4 5 6\n", encoding="utf-8")
    wv = WordVectors.load(w2v, limit=5)
    assert np.array_equal(wv.vector("the"), [1, 2, 3])  # lowercase: first occurrence wins
    assert len(WordVectors.load(w2v, limit=1)) == 1
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(WordVectorsFormatError, match=r"bad\.txt:2"):
        WordVectors.load(bad)
    bad.write_text("a 1 2 3\nb 1 x 3\n", encoding="utf-8")
    with pytest.raises(WordVectorsFormatError, match=r"bad\.txt:2.*non-numeric"):
        WordVectors.load(bad)


def test_binary_without_newlines_and_truncated(tmp_path):
    vecs = np.arange(6, dtype="<f4").reshape(2, 3)
    data = b"2 3\n" + b"ab " + vecs[0].tobytes() + b"cd " + vecs[1].tobytes()
    (tmp_path / "x.bin").write_bytes(data)
    wv = WordVectors.load(tmp_path / "x.bin")
    assert wv.words == ["ab", "cd"] and np.array_equal(wv.matrix, vecs)
    (tmp_path / "t.bin").write_bytes(data[:-5])
    with pytest.raises(WordVectorsFormatError, match="truncated"):
        WordVectors.load(tmp_path / "t.bin")


def test_oov_policies(small_table):
    for policy in ("hash", "zero", "skip"):
        wv = WordVectors(small_table.words, small_table.matrix, oov=policy)
        vecs, keep = wv.table(["pie", "zzz"])
        assert np.array_equal(vecs[0], small_table.matrix[1])
        if policy == "hash":
            assert keep.all() and np.abs(vecs[1]).max() > 0
            assert np.array_equal(vecs[1], wv.vector("zzz"))
            lo, hi = wv.value_range
            assert lo <= -wv.hash_scale and hi >= wv.hash_scale
        elif policy == "zero":
            assert keep.all() and not vecs[1].any()
        else:
            assert list(keep) == [True, False] and wv.vector("zzz") is None


# --- encoder ---------------------------------------------------------------------------------
def test_hand_checked_tiny_image():
    wv = WordVectors(["a", "b"], np.array([[0.0, 0.5, 1.0], [2.0, -1.0, 0.25]], dtype=np.float32))
    enc = TextToImage(wv, image_size=5, superpixel=2, quantise=(0.0, 1.0), output="uint8")
    assert enc.grid.rows == enc.grid.cols == 2 and enc.max_words == 4
    img = enc.encode_text(["a b"])[0].numpy()
    # cell (0,0) = "a" = bytes (0, 128, 255); cell (0,1) = "b" clipped = (255, 0, 64)
    expected = np.zeros((3, 5, 5), dtype=np.uint8)
    for ch, (va, vb) in enumerate([(0, 255), (128, 0), (255, 64)]):
        expected[ch, 0:2, 0:2] = va
        expected[ch, 0:2, 2:4] = vb
    assert np.array_equal(img, expected)
    assert quantise_bytes(np.array([0.5 / 255, 1.5 / 255]), 0.0, 1.0).tolist() == [1, 2]  # half rounds up


@pytest.mark.parametrize("dim,size,p,oov", [(300, 227, 3, "hash"), (7, (20, 31), 2, "skip"),
                                             (7, 16, 1, "zero"), (10, 40, 3, "hash")])
def test_vectorised_equals_naive(small_table, dim, size, p, oov):
    if dim == 300:
        wv = WordVectors.hashed(300, seed=5)
    elif dim == 7:
        wv = WordVectors(small_table.words, small_table.matrix, oov=oov, seed=2)
    else:
        rng = np.random.default_rng(0)
        wv = WordVectors(["apple", "pie"], rng.normal(size=(2, 10)).astype(np.float32) * 3, oov=oov)
    enc = TextToImage(wv, image_size=size, superpixel=p, output="uint8")
    texts = TEXTS + ["the pie the apple crust", "zzz the qqq pie"]
    got = enc.encode_text(texts).numpy()
    assert np.array_equal(got, naive_batch(enc, texts))
    # float output is the same image / 255; one text alone equals the same text in a batch
    f = TextToImage(wv, image_size=size, superpixel=p, output="float").encode_text(texts)
    assert f.dtype == torch.float32 and torch.allclose(f * 255, torch.from_numpy(got).float(), atol=1e-3)
    assert np.array_equal(enc.encode_text([texts[0]]).numpy()[0], got[0])


def test_fixed_range_truncation_and_cache():
    wv = WordVectors.hashed(30, seed=1)
    texts = [" ".join(f"t{i}" for i in range(50)), "t1 t2", None]
    enc = TextToImage(wv, image_size=64, superpixel=2, max_words=7, quantise=(-0.5, 0.5), output="uint8")
    got = enc.encode_text(texts).numpy()
    assert np.array_equal(got, naive_batch(enc, texts))
    # a tiny cache that is cleared and refilled gives the same bytes as no cache
    tiny = TextToImage(wv, image_size=64, superpixel=2, max_words=7, quantise=(-0.5, 0.5),
                       output="uint8", cache_size=3)
    none = TextToImage(wv, image_size=64, superpixel=2, max_words=7, quantise=(-0.5, 0.5),
                       output="uint8", cache_size=0)
    for _ in range(2):
        assert np.array_equal(tiny.encode_text(texts).numpy(), got)
        assert np.array_equal(none.encode_text(texts).numpy(), got)
    # reused output buffer with stale content is fully overwritten
    buf = torch.full((3, 3, 64, 64), 77, dtype=torch.uint8)
    assert np.array_equal(enc.encode_text(texts, out=buf).numpy(), got)


def test_blank_text_and_defaults():
    enc = TextToImage()
    assert enc.image_size == (227, 227) and enc.grid.rows == 75 and enc.max_words == 56
    out = enc(["", None, "pie"])
    assert out.shape == (3, 3, 227, 227) and out.dtype == torch.float32
    assert out[0].abs().sum() == 0 and out[1].abs().sum() == 0 and out[2].sum() > 0
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert out[2, :, 225:, :].abs().sum() == 0 and out[2, :, :, 225:].abs().sum() == 0  # margins
    with pytest.raises(ValueError, match="max_words"):
        TextToImage(max_words=57)
    with pytest.raises(TypeError):
        enc("one string")


def test_fused_and_joint_modes():
    wv = WordVectors.hashed(12, seed=0)
    photos = torch.rand(2, 3, 32, 40)
    texts = ["apple pie", None]
    fused = TextToImage(wv, image_size=(32, 40), superpixel=2, mode="fused", band_height=9)
    out = fused(texts, photos)
    assert out.shape == photos.shape and torch.equal(out[:, :, :23], photos[:, :, :23])
    band_naive = naive_text_to_image("apple pie", wv, height=9, width=40, superpixel=2,
                                     max_words=fused.max_words, value_range=fused.value_range)
    assert torch.allclose(out[0, :, 23:] * 255, torch.from_numpy(band_naive).float(), atol=1e-3)
    assert out[1, :, 23:].abs().sum() == 0  # missing text: blank band
    assert fused.max_words == (4 * 20) // 4  # 9 px band → 4 superpixel rows of 20 cells; 4 cells/word
    u8 = TextToImage(wv, image_size=(32, 40), superpixel=2, mode="fused", band_height=9, output="uint8")
    photos_u8 = (photos * 255).round().to(torch.uint8)
    out_u8 = u8(texts, photos_u8)
    assert out_u8.dtype == torch.uint8 and torch.equal(out_u8[:, :, :23], photos_u8[:, :, :23])
    assert np.array_equal(out_u8[0, :, 23:].numpy(), band_naive)
    with pytest.raises(ValueError, match="32x40"):
        fused(texts, torch.rand(2, 3, 32, 32))

    joint = TextToImage(wv, image_size=24, superpixel=2, mode="joint")
    pics, timgs = joint(texts, photos)
    assert torch.equal(pics, photos) and timgs.shape == (2, 3, 24, 24)
    assert pics.data_ptr() != photos.data_ptr()
    with pytest.raises(ValueError, match="needs the batch's images"):
        joint(texts)


@pytest.mark.parametrize("dim,size,p,gap,repeat", [(12, 48, 4, 0, False), (12, 48, 4, 1, True), (48, 64, 4, 0, True),
                                                    (7, 30, 3, 1, False), (300, 227, 3, 0, False)])
def test_tiles_layout_matches_naive_and_keeps_words_apart(dim, size, p, gap, repeat):
    enc = TextToImage(WordVectors.hashed(dim, seed=2), image_size=size, superpixel=p, layout="tiles",
                      word_gap=gap, repeat=repeat, output="uint8")
    g = enc.grid
    got = enc.encode_text(TEXTS).numpy()
    want = np.stack([naive_text_to_image(t, enc.vectors, height=g.height, width=g.width, superpixel=p,
                                         max_words=enc.max_words, value_range=enc.value_range, layout="tiles",
                                         word_gap=gap, repeat=repeat) for t in TEXTS])
    np.testing.assert_array_equal(got, want)
    tr, tc = g.tile_shape
    assert tr * tc >= g.cells_per_word and tc == math.ceil(math.sqrt(g.cells_per_word))
    assert enc.max_words == g.capacity == g.tiles[0] * g.tiles[1]
    # one word = one tile: "pie" alone paints exactly the top-left block, wherever the flow would wrap
    one = enc.encode_text(["pie"]).numpy()[0]
    cells = one[:, ::p, ::p].any(0)
    if repeat:  # every tile holds the same word: the second tile of the first row repeats the first
        x = (tc + gap) * p
        np.testing.assert_array_equal(one[:, :tr * p, :tc * p], one[:, :tr * p, x:x + tc * p])
    else:
        assert not cells[tr:].any() and not cells[:, tc:].any()
    assert enc.encode_text([None, ""]).sum() == 0  # blank stays blank, also with repeat


def test_layout_errors():
    with pytest.raises(ValueError, match="layout"):
        TextToImage(WordVectors.hashed(12), image_size=48, superpixel=4, layout="spiral")
    with pytest.raises(ValueError, match="word_gap"):
        TextToImage(WordVectors.hashed(12), image_size=48, superpixel=4, word_gap=1)  # flow has no tiles
    with pytest.raises(ValueError, match="cells"):
        TextToImage(WordVectors.hashed(300), image_size=24, superpixel=3, layout="tiles")


def test_the_text_package_exports_its_names_and_imports_the_renderer_on_first_use():
    import subprocess
    import sys

    import modalink.text as text
    from modalink.text import encoders, render, word_vectors

    assert text.TEXT_ENCODERS is encoders.TEXT_ENCODERS and text.WordVectors is word_vectors.WordVectors
    assert text.TextToImage is render.TextToImage and set(text.__all__) >= {"tokenize", "list_text_encoders"}
    code = ("import sys, modalink.text as t; assert 'torch' not in sys.modules, 'torch imported'; "
            "t.create_text_encoder('hashed-bow', dim=8).encode(['a b']); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
