"""Tests of modalink.recsys: towers with missing modalities, losses vs naive loops, split and
ranking logic on hand-checked cases, the inner-product index, readers, and the recipe."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modalink.losses.bpr import BPRLoss
from modalink.losses.sampled_softmax import SampledSoftmaxLoss
from modalink.text.encoders import HashedBagOfWords
from modalink.recsys import (ID, Bags, InnerProductIndex, Interactions, ItemFeatures, ItemTower,
                             MatrixFactorization, Popularity, RecsysObjective, UserTower, build_item_features,
                             evaluate_modality_subsets, evaluate_split, export_item_index,
                             make_synthetic, rank_metrics, read_movielens, split_recsys)
from modalink.recsys.index import InnerProductIndex as _Index

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# losses vs naive loops
# ---------------------------------------------------------------------------------------------
def test_bpr_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(5, generator=g)
    neg = torch.randn(5, 3, generator=g)
    mask = torch.rand(5, 3, generator=g) > 0.3
    for temp in (1.0, 0.2):
        terms, kept = [], []
        for b in range(5):
            for j in range(3):
                x = (pos[b] - neg[b, j]) / temp
                t = -math.log(1.0 / (1.0 + math.exp(-float(x))))
                terms.append(t)
                if mask[b, j]:
                    kept.append(t)
        loss = BPRLoss(temp)
        assert float(loss(pos, neg)) == pytest.approx(sum(terms) / len(terms), rel=1e-5)
        assert float(loss(pos, neg, neg_mask=mask)) == pytest.approx(sum(kept) / len(kept), rel=1e-5)
    # a (B,) negative vector means one negative per positive
    assert float(BPRLoss()(pos, neg[:, 0])) == pytest.approx(float(BPRLoss()(pos, neg[:, :1])))
    with pytest.raises(ValueError, match="neg_scores"):
        BPRLoss()(pos, torch.randn(4, 2))


def test_sampled_softmax_matches_naive_loop():
    g = torch.Generator().manual_seed(1)
    u = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    v = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    log_q = torch.log(torch.tensor([0.1, 0.3, 0.1, 0.2, 0.2, 0.1]))
    ids = torch.tensor([7, 3, 7, 1, 2, 5])  # rows 0 and 2 hold the same item
    temp = 0.2
    total = 0.0
    for b in range(6):
        logits = []
        for j in range(6):
            if j != b and ids[j] == ids[b]:
                continue  # the same item is not a negative
            logits.append(float(u[b] @ v[j]) / temp - float(log_q[j]))
        pos = float(u[b] @ v[b]) / temp - float(log_q[b])
        total += -(pos - math.log(sum(math.exp(x) for x in logits)))
    loss = SampledSoftmaxLoss(temp, logq_correction=True)
    assert float(loss(u, v, log_q, ids)) == pytest.approx(total / 6, rel=1e-5)
    # without correction and masking: plain in-batch cross-entropy
    plain = F.cross_entropy(u @ v.T / temp, torch.arange(6))
    assert float(SampledSoftmaxLoss(temp, logq_correction=False)(u, v, log_q)) == pytest.approx(float(plain), rel=1e-6)


def test_losses_are_registered():
    from modalink.losses import create_loss

    assert isinstance(create_loss("bpr", temperature=0.5), BPRLoss)
    assert isinstance(create_loss("sampled_softmax"), SampledSoftmaxLoss)


# ---------------------------------------------------------------------------------------------
# bags, features and towers
# ---------------------------------------------------------------------------------------------
def test_bag_gather_matches_naive_mean():
    lists = [[0, 2], [], [1, 1, 3], [4]]
    bags = Bags.from_lists(lists, 5)
    table = torch.randn(5, 3)
    rows = torch.tensor([2, 0, 1, 3])
    bb = bags.gather(rows)
    got = F.embedding_bag(bb.indices, table, bb.offsets, mode="sum", per_sample_weights=bb.weights)
    for r, row in enumerate(rows.tolist()):
        ids = lists[row]
        want = table[ids].mean(0) if ids else torch.zeros(3)
        assert torch.allclose(got[r], want, atol=1e-6)
    assert bb.nonempty.tolist() == [True, True, False, True]
    # excluding the target id removes it from the mean (and can empty the bag)
    bb = bags.gather(torch.tensor([2, 3]), exclude=torch.tensor([1, 4]))
    got = F.embedding_bag(bb.indices, table, bb.offsets, mode="sum", per_sample_weights=bb.weights)
    assert torch.allclose(got[0], table[3], atol=1e-6)
    assert bb.nonempty.tolist() == [True, False]


def _tiny_features(n: int = 6) -> ItemFeatures:
    g = torch.Generator().manual_seed(0)
    text = torch.randn(n, 8, generator=g)
    text[1] = 0.0  # item 1 has no text
    profile = Bags.from_lists([[0, 1], [2], [], [1], [], [0]], 3)  # items 2 and 4 are cold
    genres = Bags.from_lists([[0], [1, 2], [2], [], [0, 1], [1]], 3)
    warm = torch.tensor([True, True, False, True, False, True])
    return ItemFeatures(n, {"text": text}, {"genres": genres, "profile": profile}, {ID: warm})


def test_item_features_availability():
    f = _tiny_features()
    assert f.modalities == ["text", "genres", "profile", ID]
    assert f.available["text"].tolist() == [True, False, True, True, True, True]
    assert f.available["profile"].tolist() == [True, True, False, True, False, True]
    batch = f.batch(torch.tensor([2, 3]))
    assert batch.present["genres"].tolist() == [True, False]
    r = f.restrict(["text"])
    assert not r.available["genres"].any() and not r.available[ID].any()
    with pytest.raises(KeyError, match="unknown modality"):
        f.restrict(["image"])


def test_item_tower_cold_items_embed_from_content_alone():
    torch.manual_seed(0)
    f = _tiny_features()
    tower = ItemTower.from_features(f, embed_dim=16, stem_dim=16, bag_dim=8, trunk_hidden=(16,))
    assert set(tower.modalities) == {"text", "genres", "profile", ID}
    vecs = tower.embed_catalogue(f, batch_size=4)
    assert vecs.shape == (6, 16)
    assert torch.allclose(vecs.norm(dim=1), torch.ones(6), atol=1e-5)
    # batch size does not change the result (eval mode, per-item)
    assert torch.allclose(vecs, tower.embed_catalogue(f, batch_size=100), atol=1e-6)
    # a cold item (2): no ID, empty profile -> the mean of its text and genre embeddings only
    # (default combine="normalized": each modality's unit vector has an equal vote)
    tower.eval()
    b = f.batch(torch.tensor([2]))
    inputs, present = tower.inputs(b)
    assert present[ID].tolist() == [False] and present["profile"].tolist() == [False]
    h_text = tower.branch.encode(inputs["text"], "text")
    h_gen = tower.branch.encode(inputs["genres"], "genres")
    e_text, e_gen = F.normalize(h_text, dim=1), F.normalize(h_gen, dim=1)
    assert torch.allclose(vecs[2], F.normalize((e_text + e_gen) / 2, dim=1)[0], atol=1e-5)
    # an item with one available modality gets exactly that modality's embedding
    assert torch.allclose(tower.embed_catalogue(f.restrict(["text"]), missing="zero")[2], e_text[0], atol=1e-5)
    # combine="raw": the mean of the un-normalised trunk outputs
    tower.branch.combine = "raw"
    assert torch.allclose(tower.embed_catalogue(f)[2], F.normalize((h_text + h_gen) / 2, dim=1)[0], atol=1e-5)
    tower.branch.combine = "normalized"
    # the cold item's vector does not depend on its (unlearned) ID row
    with torch.no_grad():
        tower.id_embedding.weight[2].add_(100.0)
    assert torch.allclose(tower.embed_catalogue(f)[2], vecs[2], atol=1e-6)


def test_item_tower_input_stats_remove_the_shared_direction(tmp_path):
    """Dense inputs that share one large direction: the fitted statistics (mean of the items
    that HAVE the modality, one scale) are applied to every row and travel with an export; an
    export that does not record input_norm loads without statistics."""
    from modalink.hub import from_pretrained, save_pretrained
    from modalink.models import create_model
    from modalink.recsys.towers import InputStats

    g = torch.Generator().manual_seed(0)
    common = torch.rand(16, generator=g) + 1.0
    x = common + 0.05 * torch.randn(40, 16, generator=g)
    x[::5] = 0.0  # missing rows: left out of the statistics
    stats = InputStats(16, "center")
    assert torch.equal(stats(x), x)  # identity until fitted
    have = x.abs().sum(1) > 0
    stats.fit(x[have])
    assert torch.allclose(stats.mean, x[have].mean(0), atol=1e-6)
    y = stats(x[have])
    assert abs(float(y.pow(2).mean()) - 1.0) < 1e-4 and float(y.mean(0).abs().max()) < 1e-5
    z = InputStats(16, "standardize")
    z.fit(x[have])
    assert torch.allclose(z(x[have]).std(0), torch.ones(16), atol=1e-4)
    with pytest.raises(ValueError, match="input_norm"):
        InputStats(16, "zscore")

    feats = ItemFeatures(40, {"image": x})
    torch.manual_seed(0)
    tower = create_model("recsys_item_tower", dense_dims={"image": 16}, embed_dim=8, stem_dim=16,
                         trunk_hidden=[16], input_norm="center")
    tower.fit_input_stats(feats, items=torch.arange(20))
    assert torch.allclose(tower.input_stats["image"].mean, x[:20][have[:20]].mean(0), atol=1e-6)
    save_pretrained(tower, tmp_path / "tower")
    again = from_pretrained(tmp_path / "tower")
    assert torch.equal(again.embed_catalogue(feats, missing="zero"), tower.embed_catalogue(feats, missing="zero"))
    old = create_model("recsys_item_tower", dense_dims={"image": 16}, embed_dim=8, stem_dim=16, trunk_hidden=[16])
    assert old.input_norm == "none" and not len(old.input_stats)  # exports made before input statistics
    save_pretrained(old, tmp_path / "old")
    assert from_pretrained(tmp_path / "old").input_norm == "none"
    assert ItemTower(dense_dims={"image": 16}).input_norm == "center"


def test_item_tower_missing_everything():
    f = _tiny_features().restrict(["text"])
    tower = ItemTower.from_features(_tiny_features(), embed_dim=8, stem_dim=8, bag_dim=4, trunk_hidden=())
    with pytest.raises(ValueError, match="no available modality"):
        tower.embed_catalogue(f)
    vecs = tower.embed_catalogue(f, missing="zero")
    assert torch.all(vecs[1] == 0) and torch.all(vecs.norm(dim=1)[[0, 2, 3, 4, 5]] > 0.99)


def test_item_tower_samples_one_or_two_modalities_in_training():
    torch.manual_seed(0)
    f = _tiny_features()
    tower = ItemTower.from_features(f, embed_dim=8, stem_dim=8, bag_dim=4, sample_sizes=(1, 2))
    tower.train()
    out = tower(f.batch(torch.arange(6).repeat(50)))
    kept = out["mask"].sum(1)
    assert int(kept.min()) >= 1 and int(kept.max()) <= 2
    assert bool((out["mask"] <= out["available"]).all())
    full = tower(f.batch(torch.arange(6)), sample=False)
    assert torch.equal(full["mask"], full["available"])


def test_user_tower_modes_and_shared_trunk():
    f = _tiny_features()
    item = ItemTower.from_features(f, embed_dim=8, stem_dim=8, bag_dim=4, trunk_hidden=(8,))
    user = UserTower.sharing(item, num_items=6)
    assert user.trunk is item.branch.trunk
    assert not any(k.startswith("own_trunk") or "trunk" in k for k in user.state_dict())
    history = Bags.from_lists([[0, 1], [], [3]], 6)
    vecs = user.embed_users(torch.arange(3), history)
    assert vecs.shape == (3, 8)
    # an empty history gets the mean of the others (normalised)
    assert torch.allclose(vecs[1], F.normalize(vecs[[0, 2]].mean(0), dim=0), atol=1e-5)
    ids = UserTower("id", num_users=3, embed_dim=8)
    v = ids.embed_users(torch.tensor([0, 5]))  # user 5 is unknown -> fallback
    assert torch.allclose(v[1], F.normalize(ids.user_embedding.weight.mean(0), dim=0), atol=1e-5)
    mean = UserTower("item_mean", embed_dim=8)
    table = F.normalize(torch.randn(6, 8), dim=1)
    got = mean.embed_users(torch.tensor([0, 2]), history, item_vectors=table)
    assert torch.allclose(got[0], F.normalize(table[[0, 1]].mean(0), dim=0), atol=1e-5)  # identity init


@pytest.mark.parametrize("loss,user_mode,nce", [("bpr", "profile", 0.0), ("softmax", "item_mean", 0.5),
                                                 ("bpr", "id", 0.5)])
def test_objective_forward_backward(loss, user_mode, nce):
    torch.manual_seed(0)
    data = make_synthetic(n_users=40, n_items=60, interactions_per_user=(4, 8), seed=1)
    split = split_recsys(data.interactions, seed=0)
    feats = build_item_features(data, split)
    item = ItemTower.from_features(feats, embed_dim=8, stem_dim=16, bag_dim=8, trunk_hidden=(16,))
    user = (UserTower.sharing(item, num_items=60) if user_mode == "profile"
            else UserTower(user_mode, num_users=40, embed_dim=8))
    obj = RecsysObjective(item, user, feats, torch.from_numpy(split.warm_items), split.train.user_bags(),
                          loss=loss, item_counts=torch.from_numpy(split.train.item_counts()),
                          infonce_weight=nce, infonce_pair=("text", "image"))
    batch = {"user": torch.from_numpy(split.train.users[:16]), "item": torch.from_numpy(split.train.items[:16])}
    out = obj(batch)
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    out["loss"].backward()
    assert item.branch.trunk[-1].weight.grad is not None
    if nce:
        assert "infonce" in out
    res = evaluate_split(obj, split, "item_cold")
    assert 0.0 <= res["ndcg@10"] <= 1.0


@pytest.mark.parametrize("user_mode", ["profile", "item_mean"])
def test_streamed_catalogue_trains_like_the_whole_one(user_mode):
    """A catalogue over the device budget is gathered where it lives and moved by batch: the same
    losses and gradients as the catalogue moved whole (bag dropout and negatives included)."""
    data = make_synthetic(n_users=40, n_items=60, interactions_per_user=(4, 8), seed=1)
    split = split_recsys(data.interactions, seed=0)
    feats = build_item_features(data, split)
    batch = {"user": torch.from_numpy(split.train.users[:16]), "item": torch.from_numpy(split.train.items[:16])}
    got = []
    for budget in (256.0, 0.0):
        torch.manual_seed(0)
        item = ItemTower.from_features(feats, embed_dim=8, stem_dim=16, bag_dim=8, trunk_hidden=(16,), bag_dropout=0.3)
        user = (UserTower.sharing(item, num_items=60) if user_mode == "profile"
                else UserTower(user_mode, num_users=40, embed_dim=8))
        obj = RecsysObjective(item, user, feats, torch.from_numpy(split.warm_items), split.train.user_bags(),
                              device_budget_mb=budget)
        assert obj.streams_features == (budget == 0.0)
        losses = [obj(batch)["loss"] for _ in range(3)]
        sum(losses).backward()
        got.append((torch.stack(losses).detach(), item.branch.trunk[-1].weight.grad.clone()))
    assert torch.equal(got[0][0], got[1][0]) and torch.equal(got[0][1], got[1][1])
    assert feats.nbytes > 0
    from modalink.errors import InputError

    with pytest.raises(InputError, match="device_budget_mb"):
        RecsysObjective(item, user, feats, torch.from_numpy(split.warm_items), split.train.user_bags(),
                        device_budget_mb=-1)


# ---------------------------------------------------------------------------------------------
# splits and ranking metrics (hand-checked)
# ---------------------------------------------------------------------------------------------
def test_split_invariants():
    data = make_synthetic(n_users=80, n_items=120, interactions_per_user=(5, 15), seed=3)
    inter = data.interactions
    s = split_recsys(inter, cold_item_frac=0.2, cold_user_frac=0.1, seed=0)
    cold_items = set(s.cold_val_items) | set(s.cold_test_items)
    assert not cold_items & set(s.train.items.tolist())
    assert not set(s.cold_users) & set(s.train.users.tolist())
    assert set(s.test_cold.items.tolist()) <= set(s.cold_test_items)
    assert set(s.cold_user_test.users.tolist()) <= set(s.cold_users)
    assert set(s.train.users.tolist()) == set(s.warm_users.tolist())  # every warm user keeps a train pair
    key = lambda x: set(zip(x.users.tolist(), x.items.tolist()))  # noqa: E731
    parts = [key(p) for p in (s.train, s.val, s.test, s.val_cold, s.test_cold, s.cold_user_history, s.cold_user_test)]
    assert sum(len(p) for p in parts) == len(set().union(*parts))  # disjoint
    lost = key(inter) - set().union(*parts)  # only cold-user x cold-item pairs are dropped
    assert all(u in set(s.cold_users) and i in cold_items for u, i in lost)


def test_rank_metrics_hand_checked():
    # 2 users, 5 items; vectors make scores = item id order (item 4 best)
    item_vecs = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    user_vecs = torch.ones(2, 1)
    relevant = Interactions(np.array([0, 0, 1]), np.array([2, 0, 3]), 2, 5)
    seen = Interactions(np.array([0, 1]), np.array([4, 4]), 2, 5)  # item 4 masked for both
    res = rank_metrics(user_vecs, np.array([0, 1]), item_vecs, relevant, seen=[seen], k=2)
    # user 0 ranking (4 masked): 3, 2 -> hit at rank 2; 2 relevant -> recall 1/2,
    #   ndcg = (1/log2 3) / (1 + 1/log2 3)
    # user 1 ranking: 3, 2 -> hit at rank 1 -> recall 1, ndcg 1
    nd0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert res["recall@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert res["ndcg@2"] == pytest.approx((nd0 + 1.0) / 2)
    assert res["coverage@2"] == pytest.approx(2 / 5)
    # candidates restrict the ranking: among items {0, 1, 2} user 0 ranks 2, 1 -> hit at rank 1
    res = rank_metrics(user_vecs, np.array([0, 1]), item_vecs, relevant, candidates=np.array([0, 1, 2]), k=1)
    assert res["users"] == 1.0 and res["recall@1"] == 1.0 and res["coverage@1"] == pytest.approx(1 / 3)


def test_tied_cold_items_score_the_random_level_not_id_order():
    """A recommender that ties every candidate (popularity/MF on cold items) gets the random
    level, not the relevance of the lowest item ids."""
    n_users, n_items, k = 30, 40, 5
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(n_users):
        for i in rng.choice(np.arange(k, n_items), size=3, replace=False):  # never items 0..k-1
            users.append(u)
            items.append(int(i))
    relevant = Interactions(np.array(users), np.array(items), n_users, n_items)
    tied = torch.zeros(n_items, 4)  # every item vector the same: all scores tie
    res = rank_metrics(torch.ones(n_users, 4), np.arange(n_users), tied, relevant, k=k)
    assert res[f"recall@{k}"] == pytest.approx(k * 3 / n_items / 3)
    assert res[f"coverage@{k}"] > 0.5  # ties broken at random: not always items 0..k-1


def test_baselines_on_cold_items():
    data = make_synthetic(n_users=60, n_items=100, interactions_per_user=(5, 10), seed=2)
    s = split_recsys(data.interactions, seed=0)
    pop = Popularity(s.train)
    assert torch.all(pop.item_vectors()[torch.from_numpy(s.cold_test_items)] == 0)
    mf = MatrixFactorization(60, 100, torch.from_numpy(s.warm_items), torch.from_numpy(s.warm_users), dim=4)
    iv = mf.item_vectors()
    cold = torch.from_numpy(s.cold_test_items)
    assert torch.allclose(iv[cold], iv[cold[:1]].expand(len(cold), -1))  # every cold item gets the same vector
    batch = {"user": torch.from_numpy(s.train.users[:8]), "item": torch.from_numpy(s.train.items[:8])}
    mf(batch)["loss"].backward()
    assert mf.user.weight.grad is not None


# ---------------------------------------------------------------------------------------------
# index
# ---------------------------------------------------------------------------------------------
def test_exact_index_matches_brute_force(tmp_path):
    g = torch.Generator().manual_seed(0)
    items = torch.randn(50, 6, generator=g)
    queries = torch.randn(7, 6, generator=g)
    index = InnerProductIndex(items, ids=[f"m{i}" for i in range(50)], use_faiss=False, chunk_size=3)
    assert index.backend == "exact"
    scores, pos = index.search(queries, 5)
    brute = (queries @ items.T).numpy()
    for q in range(7):
        order = np.argsort(-brute[q])[:5]
        assert pos[q].tolist() == order.tolist()
        assert np.allclose(scores[q], brute[q, order], atol=1e-5)
    exclude = [list(np.argsort(-brute[q])[:2]) for q in range(7)]  # drop each query's top 2
    _, pos_x = index.search(queries, 3, exclude=exclude)
    assert pos_x.tolist() == [np.argsort(-brute[q])[2:5].tolist() for q in range(7)]
    # the faiss path's post-filter gives the same result from an over-fetched candidate list
    over_s = np.take_along_axis(brute, np.argsort(-brute, 1)[:, :5], 1)
    s_f, p_f = _Index._filter(over_s, np.argsort(-brute, 1)[:, :5], 3, exclude)
    assert p_f.tolist() == pos_x.tolist()
    # export / load round trip
    path = export_item_index(items, [f"m{i}" for i in range(50)], tmp_path / "items.npz")
    loaded = InnerProductIndex.load(path, use_faiss=False)
    _, ids = loaded.search_ids(queries[:1], 2)
    assert ids[0] == [f"m{i}" for i in np.argsort(-brute[0])[:2]]
    assert not list(tmp_path.glob(".*tmp"))
    with pytest.raises(ValueError, match="duplicates"):
        export_item_index(items[:2], ["a", "a"], tmp_path / "bad.npz")


# ---------------------------------------------------------------------------------------------
# data readers
# ---------------------------------------------------------------------------------------------
def _write_ml100k(root: Path) -> None:
    root.mkdir(parents=True)
    flags = lambda *on: "|".join("1" if i in on else "0" for i in range(19))  # noqa: E731
    (root / "u.item").write_bytes(
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags(3, 4, 5)}\n"
        f"2|GoldenEye (1995)|01-Jan-1995||http://x|{flags(1, 2, 16)}\n"
        f"3|Caf\xe9 (1996)|01-Jan-1996||http://x|{flags(8)}\n".encode("latin-1"))
    (root / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    (root / "u.data").write_text("1\t1\t5\t881250949\n1\t3\t3\t881250950\n2\t2\t4\t881250951\n")


def test_read_movielens_100k_and_1m(tmp_path):
    _write_ml100k(tmp_path / "ml-100k")
    d = read_movielens(tmp_path)
    assert d.name == "ml-100k" and len(d.interactions) == 3 and d.interactions.n_items == 3
    assert d.item_tags["genres"][0] == [3, 4, 5] and d.tag_vocab["genres"][3] == "Animation"
    assert d.item_dense["text"].shape == (3, 256)  # titles through the one hashed bag of words
    np.testing.assert_allclose(d.item_dense["text"][0],
                               HashedBagOfWords(dim=256).encode(["Toy Story year1995 decade1990"])[0])
    small = read_movielens(tmp_path, text_encoder=HashedBagOfWords(dim=16, ngrams=1))
    assert small.item_dense["text"].shape == (3, 16)
    assert len(read_movielens(tmp_path, min_rating=4).interactions) == 2
    ml1m = tmp_path / "ml-1m"
    ml1m.mkdir()
    (ml1m / "movies.dat").write_bytes("10::Heat (1995)::Action|Crime|Thriller\n20::Jumanji (1995)::Adventure\n"
                                      .encode("latin-1"))
    (ml1m / "users.dat").write_text("1::F::1::10::48067\n7::M::56::16::70072\n")
    (ml1m / "ratings.dat").write_text("1::20::5::978300760\n7::10::3::978302109\n7::20::4::978301968\n")
    d = read_movielens(ml1m)
    assert d.name == "ml-1m" and d.tag_vocab["genres"] == ["Action", "Crime", "Thriller", "Adventure"]
    assert d.interactions.users.tolist() == [0, 1, 1] and d.interactions.items.tolist() == [1, 0, 1]
    (ml1m / "ratings.dat").write_text("1::20::5::978300760\n1::99::5::1\n")
    with pytest.raises(ValueError, match=r"ratings\.dat:2: item 99"):
        read_movielens(ml1m)
    with pytest.raises(FileNotFoundError, match="no MovieLens files"):
        read_movielens(tmp_path / "nothing")


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", "five"])
def test_movielens_rating_that_is_not_a_finite_number_is_refused_with_file_and_line(tmp_path, bad):
    from modalink.errors import is_user_error

    _write_ml100k(tmp_path / "ml-100k")
    (tmp_path / "ml-100k" / "u.data").write_text(f"1\t1\t5\t881250949\n1\t3\t{bad}\t881250950\n")
    with pytest.raises(ValueError, match=rf"u\.data:2: rating '{bad}' is not a") as info:
        read_movielens(tmp_path, min_rating=4)
    assert is_user_error(info.value)


# ---------------------------------------------------------------------------------------------
# README example and recipe smoke run
# ---------------------------------------------------------------------------------------------
def _readme_example() -> str:
    text = (ROOT / "recipes" / "recsys" / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    examples = [b for b in blocks if "ItemTower" in b]
    assert examples, "recipes/recsys/README.md has no python example using ItemTower"
    return examples[0]


def test_readme_item_tower_example_runs():
    namespace: dict = {}
    exec(compile(_readme_example(), "recipes/recsys/README.md", "exec"), namespace)  # noqa: S102
    vecs = namespace["item_vectors"]
    assert vecs.shape == (100, 64)
    assert torch.allclose(vecs.norm(dim=1), torch.ones(100), atol=1e-5)
    assert namespace["items"].shape == (5, 10)


def _load_recipe():
    from conftest import load_script

    return load_script(ROOT / "recipes" / "recsys" / "train.py")


def test_recipe_smoke_run(tmp_path):
    recipe = _load_recipe()
    out = tmp_path / "run"
    res = recipe.main(["--output-dir", str(out), "--cpu", "engine.epochs=1", "engine.batch_size=64",
                       "engine.progress=false", "data.synthetic.n_users=60", "data.synthetic.n_items=120",
                       "data.synthetic.interactions_min=5", "data.synthetic.interactions_max=12",
                       "tower.embed_dim=16", "tower.stem_dim=32", "tower.bag_dim=16", "tower.trunk_hidden=[32]",
                       "mf.dim=8", "tower.sample_sizes=[1, 2]"])
    for name in ("config.yaml", "log.txt", "results.json", "results.md", "split.json", "item_index.npz",
                 "tower/best_model.pt", "mf/best_model.pt"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == {"modalink tower", "popularity", "BPR-MF"}
    assert set(saved["results"]["modalink tower"]) == {"warm", "item_cold", "user_cold"}
    assert "text+image" in saved["missing_modalities_item_cold"]
    assert res["results"]["BPR-MF"]["item_cold"]["ndcg@10"] >= 0.0
    index = InnerProductIndex.load(out / "item_index.npz", use_faiss=False)
    assert len(index) == 120
    with pytest.raises(Exception, match="unknown key"):
        recipe.main(["--output-dir", str(tmp_path / "bad"), "tower.nope=1"])

    # the library opens the run folder by itself: config, exported tower, index, results
    from modalink.runs import open_run

    run = open_run(out)
    assert run.config.tower.embed_dim == 16 and run.config.data.synthetic.n_items == 120
    assert list(run.item_tower.modalities) == ["text", "image", "genres", "profile", "id"]
    assert len(run.index) == 120 and run.results["results"] == saved["results"]
    assert run.checkpoint("mf").is_file()
    # the exported tower loads in a fresh interpreter with the model card's two lines
    import subprocess
    import sys

    card = (out / "tower_model" / "README.md").read_text(encoding="utf-8")
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) == 2, code
    code = code.replace('"path/to/this/folder"', repr(str(out / "tower_model"))) + "print(type(model).__name__)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ItemTower", proc.stderr


def test_load_run_refuses_what_is_not_a_finished_recsys_run(tmp_path):
    from modalink.errors import InputError
    from modalink.recsys.runs import load_run

    with pytest.raises(InputError, match="no such run folder"):
        load_run(tmp_path / "nope")
    with pytest.raises(InputError, match=r"not a modalink run folder \(no run.json\)"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"recipe": "srmm", "config": {}}))
    with pytest.raises(InputError, match="holds a run of the 'srmm' recipe, not a recsys run"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"recipe": "recsys", "config": {}}))
    with pytest.raises(InputError, match="tower_model is missing: the run in .* has not finished"):
        load_run(tmp_path)


def test_recipe_config_not_set_is_none():
    """Not-set recsys settings are None, spelled null or an empty ``key=`` on the command line."""
    from modalink.config import load_config
    from modalink.recsys.config import RecsysConfig

    recipe = _load_recipe()
    cfg = load_config(RecsysConfig, recipe.DEFAULT_CONFIG)
    assert (cfg.data.root, cfg.data.cache_dir, cfg.tower.modalities, cfg.mf.epochs, cfg.media.image_weights,
            cfg.media.audio_weights, cfg.item_model.path, cfg.item_model.inputs) == (None,) * 8
    unset = load_config(RecsysConfig, recipe.DEFAULT_CONFIG, [
        "data.root=", "data.cache_dir=null", "tower.modalities=", "mf.epochs=null", "media.image_weights=",
        "media.audio_weights=null", "item_model.path=", "item_model.inputs="])
    assert unset == cfg
    for bad in ("mf.epochs=-1", "mf.epochs=0"):
        with pytest.raises(Exception, match=r"mf.epochs: -?\d is out of range; it must be >= 1"):
            load_config(RecsysConfig, None, [bad])


def test_bench_script_runs(capsys):
    from conftest import load_script

    mod = load_script("scripts/bench_recsys.py")
    res = mod.main(["--items", "500", "--users", "40", "--batch-size", "128", "--seen", "5"])
    assert res["matches_brute_force"] and res["backend"] == "exact"
    assert "items/s" in capsys.readouterr().out
