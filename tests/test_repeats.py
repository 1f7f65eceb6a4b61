"""ResumableRepeater without a Ray runtime: a search with repeats saved half-way and restored
into new searchers still gives the inner searcher each configuration's mean."""

from __future__ import annotations

import pytest
from ray.tune.search import Repeater

from raysearch.search.repeats import ResumableRepeater
from tests.test_twins import ListSearcher


def run_half_then_resume(tmp_path) -> ListSearcher:
    """Two seeds of r = 8 and of r = 4: three runs start, one ends, the driver saves and dies;
    a new driver restores and the remaining runs end."""
    first = ResumableRepeater(ListSearcher([8, 4]), repeat=2, set_index=True)
    configs = {tid: first.suggest(tid) for tid in ("a", "b", "c")}
    assert [c["__trial_index__"] for c in configs.values()] == [0, 1, 0]
    first.on_trial_complete("a", {"best_val_acc": 0.5})
    first.save(str(tmp_path / "searcher.pkl"))

    inner = ListSearcher([])
    second = ResumableRepeater(inner, repeat=2, set_index=True)
    second.restore(str(tmp_path / "searcher.pkl"))
    assert second.suggest("d") == {"ratio": 4, "__trial_index__": 1}
    for trial_id, value in (("b", 0.7), ("c", 0.2), ("d", 0.4)):
        second.on_trial_complete(trial_id, {"best_val_acc": value})
    return second.searcher


def test_groups_survive_a_resume(tmp_path):
    inner = run_half_then_resume(tmp_path)
    assert inner.completed["a"] == {"best_val_acc": pytest.approx(0.6)}  # r = 8: (0.5 + 0.7) / 2
    assert inner.completed["c"] == {"best_val_acc": pytest.approx(0.3)}  # r = 4: (0.2 + 0.4) / 2


def test_ray_s_repeater_forgets_its_groups(tmp_path):
    """What ResumableRepeater fixes (Ray 2.60): restored, Repeater has lost r = 4's second seed
    and cannot place a run that was under way."""
    first = Repeater(ListSearcher([8, 4]), repeat=2, set_index=True)
    for trial_id in ("a", "b", "c"):
        first.suggest(trial_id)
    first.save(str(tmp_path / "searcher.pkl"))
    second = Repeater(ListSearcher([]), repeat=2, set_index=True)
    second.restore(str(tmp_path / "searcher.pkl"))
    assert second.suggest("d") == "FINISHED"
    with pytest.raises(KeyError):
        second.on_trial_complete("b", {"best_val_acc": 0.7})
