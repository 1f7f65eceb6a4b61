"""DeferTwins without a Ray runtime: which suggestion goes to which trial, what is held back,
and what the inner searcher is told."""

from __future__ import annotations

from ray.tune.search import Searcher

from raysearch.search.twins import DeferTwins


class ListSearcher(Searcher):
    """Suggests ``{"ratio": r}`` for each r of a list, in order; records what it is told."""

    def __init__(self, ratios: list[float]) -> None:
        super().__init__(metric="best_val_acc", mode="max")
        self.ratios, self.given, self.completed = list(ratios), {}, {}

    def suggest(self, trial_id: str):
        if not self.ratios:
            return Searcher.FINISHED
        self.given[trial_id] = {"ratio": self.ratios.pop(0)}
        return self.given[trial_id]

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        self.completed[trial_id] = result

    def save(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "wb") as f:
            pickle.dump((self.ratios, self.given, self.completed), f)

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "rb") as f:
            self.ratios, self.given, self.completed = pickle.load(f)


def network(config: dict) -> str:
    """31.43 and 32 build the same network; every other ratio its own."""
    return "r32" if config["ratio"] in (31.43, 32) else f"r{config['ratio']}"


def test_a_twin_is_held_back_and_another_suggestion_takes_its_place():
    inner = ListSearcher([31.43, 32, 8, 4])
    twins = DeferTwins(inner, network, limit=4)
    assert twins.suggest("a") == {"ratio": 31.43}
    assert twins.suggest("b") == {"ratio": 8}  # 32 is held: 31.43 is running
    assert twins.suggest("c") == {"ratio": 4}
    assert twins.suggest("d") is None  # all four asked for; 32 waits for its twin
    twins.on_trial_complete("a", {"best_val_acc": 0.5})
    assert twins.suggest("d") == {"ratio": 32}
    # the inner searcher hears about the held suggestion under the id it gave it
    twins.on_trial_complete("b", {"best_val_acc": 0.6})
    twins.on_trial_complete("d", {"best_val_acc": 0.5})
    assert inner.given["b"] == {"ratio": 32} and inner.completed["b"] == {"best_val_acc": 0.5}
    assert inner.given["b-1"] == {"ratio": 8} and inner.completed["b-1"] == {"best_val_acc": 0.6}


def test_no_more_is_asked_than_the_search_runs():
    inner = ListSearcher([31.43, 32, 8])
    twins = DeferTwins(inner, network, limit=2)
    assert twins.suggest("a") == {"ratio": 31.43}
    assert twins.suggest("b") is None  # 32 held; a substitute would be a third trial
    assert inner.ratios == [8]
    twins.on_trial_complete("a", {"best_val_acc": 0.5})
    assert twins.suggest("b") == {"ratio": 32}


def test_a_failed_twin_releases_the_held_one():
    inner = ListSearcher([31.43, 32])
    twins = DeferTwins(inner, network, limit=2)
    twins.suggest("a")
    assert twins.suggest("b") is None
    twins.on_trial_complete("a", None, error=True)
    assert twins.suggest("b") == {"ratio": 32}  # it trains itself: nothing to replay


def test_state_survives_save_and_restore(tmp_path):
    inner = ListSearcher([31.43, 32, 8, 4])
    twins = DeferTwins(inner, network, limit=4)
    twins.suggest("a"), twins.suggest("b")
    twins.save(str(tmp_path / "searcher.pkl"))
    restored = DeferTwins(ListSearcher([]), network, limit=4)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.suggest("c") == {"ratio": 4}
    restored.on_trial_complete("a", {"best_val_acc": 0.5})
    assert restored.suggest("d") == {"ratio": 32}
    restored.on_trial_complete("b", {"best_val_acc": 0.6})
    assert restored.inner.completed["b-1"] == {"best_val_acc": 0.6}
