"""How a trial's reports are kept and passed on (raysearch.training.runner.keeping), without Ray:
real record files, a reporter that collects what it is given."""

from __future__ import annotations

from raysearch.search import finished_networks as networks
from raysearch.training.runner import keeping


def epoch_report(epoch: int, last: bool = False) -> dict:
    metrics = {"epoch": epoch, "val_acc": epoch / 10, "best_val_acc": epoch / 10}
    if last:
        metrics.update(
            test_acc=0.5, history=[{"epoch": e, "val_acc": e / 10} for e in range(1, epoch + 1)]
        )
    return metrics


def run(tmp_path, epochs: int, replayed: int, last_epoch: int | None = None):
    record = networks.Record(str(tmp_path), "key", "trial-b")
    sent, partial_sizes = [], []
    report = keeping(record, lambda metrics, _: sent.append(metrics["epoch"]), replayed)
    last_epoch = last_epoch or epochs
    for epoch in range(1, last_epoch + 1):
        report(epoch_report(epoch, last=epoch == last_epoch), None)
        partial = networks.lookup(str(tmp_path), "key", partial=True)
        partial_sizes.append(len(partial["reports"]) if partial else 0)
    return sent, partial_sizes, networks.lookup(str(tmp_path), "key")


def test_replayed_epochs_are_not_reported_or_kept_again(tmp_path):
    """Epochs 1-2 were a twin's, reported already: only 3 and 4 go out; the partial record is
    first written at epoch 3 (with epochs 1-3), and the last epoch keeps the whole record."""
    sent, partial_sizes, full = run(tmp_path, epochs=4, replayed=2)
    assert sent == [3, 4]
    assert partial_sizes == [0, 0, 3, 3]
    assert [r["epoch"] for r in full["reports"]] == [1, 2, 3, 4]
    assert full["trial_id"] == "trial-b" and full["reports"][-1]["test_acc"] == 0.5


def test_a_last_report_within_the_replayed_epochs_still_goes_out(tmp_path):
    """A rerun that stops earlier than its twin did (float noise on a GPU can move an
    early stop) still reports its final metrics."""
    sent, _, full = run(tmp_path, epochs=4, replayed=3, last_epoch=2)
    assert sent == [2]
    assert [r["epoch"] for r in full["reports"]] == [1, 2]


def test_without_replay_every_epoch_is_reported_and_kept(tmp_path):
    sent, partial_sizes, full = run(tmp_path, epochs=3, replayed=0)
    assert sent == [1, 2, 3]
    assert partial_sizes == [1, 2, 2]
    assert len(full["reports"]) == 3


def test_a_process_that_waited_in_rays_pool_starts_its_run_when_handed_it():
    from raysearch.training.runner import POOL_IDLE_S, first_run_began

    # a process started for the run imports raysearch within seconds: its start counts
    assert first_run_began(created=100.0, imported=103.0) == 100.0
    # one Ray started ahead and leased to the run a minute later: the run began at the import
    assert first_run_began(created=100.0, imported=160.0 + POOL_IDLE_S) == 160.0 + POOL_IDLE_S
