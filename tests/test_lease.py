"""One driver per experiment: the lease in the experiment's storage, on a local path (a file
made with O_EXCL) and in a bucket (conditional writes against moto's S3 server)."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import replace

import pytest

from raysearch.search import lease as leases
from raysearch.search.lease import ExperimentHeld, Holder, Lease
from tests.s3_server import BUCKET, s3_server


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def experiment(request, tmp_path, monkeypatch):
    """An experiment location on a path, or in the bucket (a fresh prefix each test)."""
    if request.param == "local":
        return str(tmp_path / "experiment")
    server = request.getfixturevalue("s3")
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    return f"s3://{BUCKET}/leases/{tmp_path.name}"


def written(experiment: str, holder: Holder) -> None:
    """Leave ``holder``'s lease at ``experiment`` (as another driver would have)."""
    store = leases.store_for(experiment)
    if store.create(holder.encode()) is None:  # one is there: replaced
        assert store.replace(holder.encode(), store.read()[1])


def elsewhere(**changes) -> Holder:
    """A driver of another machine."""
    return replace(Holder.me(), host="another-host", pid=4242, **changes)


def test_a_second_driver_is_refused_in_one_line_naming_the_holder(experiment):
    first = Lease.take(experiment)
    try:
        with pytest.raises(ExperimentHeld) as refused:
            Lease.take(experiment)
        message = str(refused.value)
        assert "\n" not in message and f"host {socket.gethostname()}, pid {os.getpid()}" in message
        assert "since " in message and "renewed 0 s ago" in message
    finally:
        first.release()
    Lease.take(experiment).release()  # given back: free again


def test_a_live_holder_elsewhere_is_refused_until_its_lease_lapses(experiment):
    written(experiment, elsewhere())
    with pytest.raises(ExperimentHeld, match="host another-host, pid 4242"):
        Lease.take(experiment)
    written(experiment, elsewhere(renewed=time.time() - leases.TTL_S - 1))  # stopped renewing
    said = []
    taken = Lease.take(experiment, say=said.append)
    assert "taken over from a driver that is gone (host another-host" in said[0]
    taken.release()


def test_a_killed_driver_of_this_machine_is_taken_over_at_once(experiment):
    gone = replace(Holder.me(), pid=2**22 + 7)  # no such process here
    written(experiment, gone)
    said = []
    Lease.take(experiment, say=said.append).release()
    assert f"pid {gone.pid}" in said[0]


def test_the_holder_renews_and_loses_the_lease_to_a_takeover(experiment, monkeypatch):
    monkeypatch.setattr(leases, "RENEW_S", 0.2)
    lost = []
    monkeypatch.setattr(Lease, "_on_lost", lambda self: lost.append(self.lost))
    held = Lease.take(experiment)
    try:
        time.sleep(0.7)
        data, version = held.store.read()
        assert json.loads(data)["renewed"] > held.holder.since  # renewed while it lives
        # another driver takes it over (as after TTL_S without renewals)
        assert held.store.replace(elsewhere().encode(), version)
        deadline = time.time() + 5
        while not lost and time.time() < deadline:
            time.sleep(0.1)
        assert lost and lost[0].host == "another-host"
    finally:
        held.release()
    assert Holder.decode(held.store.read()[0]).host == "another-host"  # not released: not ours
