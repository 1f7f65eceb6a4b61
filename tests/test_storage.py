"""Atomic writes (no Ray needed)."""

from __future__ import annotations

import os
import stat

import pytest

from raysearch.results.plots import plt, save_figure
from raysearch.storage import current_umask, write_text_atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_current_umask_reads_the_umask_without_changing_it(umask_027):
    assert current_umask() == 0o027
    assert current_umask() == 0o027


def test_atomic_writes_give_files_the_umask_mode_not_owner_only(tmp_path, umask_027):
    # tempfile.mkstemp creates 0600 files: results on a shared folder were unreadable to others
    table = tmp_path / "results" / "leaderboard.csv"
    write_text_atomic(str(table), "rank\n1\n")
    figure = tmp_path / "results" / "plot.png"
    save_figure(plt.figure(), str(figure))
    for path in (table, figure):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert table.read_text() == "rank\n1\n"
    assert sorted(p.name for p in table.parent.iterdir()) == ["leaderboard.csv", "plot.png"]
