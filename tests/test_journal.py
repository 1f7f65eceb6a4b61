"""The Optuna journal of an experiment in a bucket (moto's S3 server): copied into the
experiment, fetched again by a driver whose cache is gone, and read by ``optuna.load_study``."""

from __future__ import annotations

import pickle
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from raysearch.search.journal import MirroredJournal, local_copy, mirror_of
from raysearch.search.tracking import optuna_storage
from raysearch.storage import read_bytes
from tests.s3_server import BUCKET, s3_server

EXPERIMENT = f"s3://{BUCKET}/storage/study"
REMOTE = f"{EXPERIMENT}/optuna.journal"


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture
def aws(s3, monkeypatch, tmp_path):
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "cache-a"))
    s3.client().delete_object(Bucket=BUCKET, Key="storage/study/optuna.journal")
    return s3


def _run_trials(storage, n: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="study", storage=storage, load_if_exists=True)
    study.optimize(lambda trial: trial.suggest_float("ratio", 2, 64), n_trials=n)


def _completed(storage) -> int:
    study = optuna.load_study(study_name="study", storage=storage)
    return len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])


def test_the_copy_in_storage_outlives_the_drivers_cache(aws, tmp_path, monkeypatch):
    storage, path, mirror = optuna_storage(EXPERIMENT, fresh=True)
    assert mirror_of(storage) is mirror and path == local_copy(REMOTE)
    assert path.startswith(str(tmp_path / "cache-a"))
    _run_trials(storage, 3)
    mirror.push()
    # the driver's machine is gone: read the copy in the bucket, as optuna-dashboard would
    copy = tmp_path / "downloaded.journal"
    copy.write_bytes(read_bytes(REMOTE))
    assert _completed(JournalStorage(JournalFileBackend(str(copy)))) == 3
    # a driver on another machine (another cache) fetches it and goes on with the study
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "cache-b"))
    storage, path, mirror = optuna_storage(EXPERIMENT)
    assert path.startswith(str(tmp_path / "cache-b"))
    assert _completed(storage) == 3
    _run_trials(storage, 2)
    mirror.push()
    copy.write_bytes(read_bytes(REMOTE))
    assert _completed(JournalStorage(JournalFileBackend(str(copy)))) == 5


def test_a_restored_searchers_journal_finds_its_copy_from_the_uri_alone(aws, tmp_path, monkeypatch):
    """Tune restores the searcher by unpickling it: its journal is fetched into this driver's
    cache, not looked for at the killed driver's path."""
    storage, _, mirror = optuna_storage(EXPERIMENT, fresh=True)
    _run_trials(storage, 2)
    mirror.push()
    saved = pickle.dumps(storage)
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "cache-b"))
    restored = pickle.loads(saved)
    assert mirror_of(restored).path.startswith(str(tmp_path / "cache-b"))
    assert _completed(restored) == 2


def test_a_longer_local_journal_is_kept_and_a_fresh_one_starts_empty(aws):
    storage, path, mirror = optuna_storage(EXPERIMENT, fresh=True)
    _run_trials(storage, 1)
    mirror.push()
    _run_trials(storage, 1)  # after the last copy: only here
    assert _completed(optuna_storage(EXPERIMENT)[0]) == 2  # same machine: nothing lost
    cached = open(local_copy(REMOTE), "rb").read()
    fresh = optuna_storage(EXPERIMENT, fresh=True)[0]  # a new experiment of the same name
    assert optuna.get_all_study_names(fresh) == []
    # the earlier cached journal is set aside whole, never truncated
    (aside,) = Path(local_copy(REMOTE)).parent.glob("*.set-aside-*")
    assert aside.read_bytes() == cached


def test_push_copies_only_what_changed(aws):
    mirror = MirroredJournal(REMOTE, fresh=True)
    _run_trials(JournalStorage(mirror), 1)
    mirror.push()
    first = aws.client().head_object(Bucket=BUCKET, Key="storage/study/optuna.journal")["ETag"]
    mirror.push()  # unchanged: no new object
    again = aws.client().head_object(Bucket=BUCKET, Key="storage/study/optuna.journal")["ETag"]
    assert first == again


def _searcher(path, points=None):
    from raysearch.search.journal import MirroringOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return MirroringOptunaSearch(
        space={"ratio": optuna.distributions.FloatDistribution(2, 64, log=True)},
        metric="best_val_acc",
        mode="max",
        points_to_evaluate=points,
        study_name="study",
        storage=JournalStorage(JournalFileBackend(str(path))),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )


def _states(path) -> dict:
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.load_study(study_name="study", storage=storage)
    return {
        t.number: (t.state.name, t.params.get("ratio"), t.value, t.system_attrs)
        for t in study.trials
    }


def test_a_restored_searcher_closes_what_it_never_knew_and_tells_nothing_twice(tmp_path):
    """The journal runs ahead of the searcher state Tune saved (a driver killed between the
    two): the trial asked after the save is closed as FAIL with the reason, its initial point
    queued again; the trial told after the save is not told again when Tune reports it."""
    from raysearch.search.journal import CLOSED_ATTR

    journal = tmp_path / "optuna.journal"
    first = _searcher(journal, points=[{"ratio": 8.0}, {"ratio": 16.0}])
    assert first.suggest("a") == {"ratio": 8.0}
    first.save(str(tmp_path / "searcher.pkl"))  # what Tune saved
    assert first.suggest("b") == {"ratio": 16.0}  # after the save: the journal only
    first.on_trial_complete("a", {"best_val_acc": 0.5})

    restored = _searcher(tmp_path / "other.journal")
    restored.restore(str(tmp_path / "searcher.pkl"))
    states = _states(journal)
    assert states[0][:3] == ("COMPLETE", 8.0, 0.5)
    assert states[1][0] == "FAIL" and "Tune never ran it" in states[1][3][CLOSED_ATTR]
    restored.on_trial_result("a", {"best_val_acc": 0.7, "training_iteration": 2})
    restored.on_trial_complete("a", {"best_val_acc": 0.7})  # Tune ran it on: not told again
    assert _states(journal)[0][:3] == ("COMPLETE", 8.0, 0.5)
    assert restored.suggest("c") == {"ratio": 16.0}  # the closed trial's initial point, again
    restored.on_trial_complete("c", {"best_val_acc": 0.6})
    finished = [s for s in _states(journal).values() if s[0] == "COMPLETE"]
    assert sorted(s[1] for s in finished) == [8.0, 16.0]  # each configuration told once
