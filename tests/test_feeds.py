"""Training batches on the device (raysearch.training.feeds): the whole split shuffled every
epoch, equal shares per DDP rank."""

from __future__ import annotations

import numpy as np
import torch

from raysearch.training.data import SplitArrays
from raysearch.training.feeds import DeviceBatches


def genre_sorted(n_per_genre: int = 40) -> SplitArrays:
    """Segments sorted by genre, as GTZAN's files are."""
    labels = np.repeat(np.arange(10), n_per_genre)
    x = np.zeros((len(labels), 4, 4), dtype=np.float16)
    return SplitArrays(x, labels, np.array([f"t{i}" for i in range(len(labels))], dtype=object))


def test_batches_mix_genres_and_cover_the_split_every_epoch():
    feed = DeviceBatches(genre_sorted(), batch_size=32, seed=0, device=torch.device("cpu"))
    for epoch in (1, 2):
        labels = [y.numpy() for _, y in feed.epoch(epoch)]
        assert sorted(np.concatenate(labels)) == sorted(np.repeat(np.arange(10), 40))
        assert min(len(set(batch)) for batch in labels[:-1]) >= 5  # no one-genre batches
    first = np.concatenate([y.numpy() for _, y in feed.epoch(1)])
    second = np.concatenate([y.numpy() for _, y in feed.epoch(2)])
    assert not np.array_equal(first, second)  # a new order every epoch


def numbered(n_per_genre: int) -> SplitArrays:
    """``genre_sorted`` whose every segment holds its own index, so a share can be read back."""
    split = genre_sorted(n_per_genre)
    x = np.broadcast_to(np.arange(len(split), dtype=np.float16)[:, None, None], (len(split), 4, 4))
    return SplitArrays(np.ascontiguousarray(x), split.label, split.track_id)


def test_ranks_get_equal_disjoint_shares():
    split = numbered(n_per_genre=7)  # 70 segments over 3 ranks: 23 each, 1 left out
    shares = [DeviceBatches(split, 8, 0, torch.device("cpu"), rank=r, world=3) for r in range(3)]
    assert [len(s) for s in shares] == [23, 23, 23]
    taken = [set(share.x[:, 0, 0].int().tolist()) for share in shares]
    assert [len(t) for t in taken] == [23, 23, 23]  # no segment twice within a share
    assert not (taken[0] & taken[1] or taken[0] & taken[2] or taken[1] & taken[2])
    assert len(set.union(*taken)) == 69  # together the whole split but one segment
    for share in shares:  # each rank's labels are those of the segments it holds
        index = share.x[:, 0, 0].long()
        assert torch.equal(share.y, torch.from_numpy(split.label)[index])


def test_a_limit_keeps_a_seeded_subset():
    a = DeviceBatches(genre_sorted(), 16, seed=3, device=torch.device("cpu"), limit=64)
    b = DeviceBatches(genre_sorted(), 16, seed=3, device=torch.device("cpu"), limit=64)
    assert len(a) == 64 and torch.equal(a.y, b.y)


def test_a_released_split_lets_its_memory_go():
    """A run that trains no more drops its train split before the test split comes to the
    device, so the two never hold memory together."""
    import weakref

    split = genre_sorted()
    feed = DeviceBatches(split, batch_size=32, seed=0, device=torch.device("cpu"), limit=100)
    held = weakref.ref(feed.x)  # a subset: a tensor of the feed's own, not the array's memory
    feed.release()
    assert held() is None
    assert feed.x.shape == (0, 4, 4) and feed.y.shape == (0,)
