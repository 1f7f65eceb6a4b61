"""The scripts a lent GPU machine runs (benchmarks/gpu_run.sh, benchmarks/gpu_search_run.sh),
rehearsed on CPUs (DRY=1) under the device tool's limits: one deadline for the whole call,
at most 8 files back from $OUT, no deeper than two folders, and every stage's file there even
when the deadline leaves a stage no time."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def check_out(out: Path) -> subprocess.CompletedProcess:
    """device_lib.sh's check_out on ``out``, as the scripts call it at their end."""
    script = (
        f'out="{out}"; deadline=$(( $(date +%s) + 60 )); . "{BENCHMARKS}/device_lib.sh"; check_out'
    )
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True)


def files(out: Path, names: list[str]) -> None:
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("x")


def test_check_out_refuses_what_the_tool_would_not_bring_back(tmp_path):
    fits = tmp_path / "fits"
    files(fits, [f"f{i}" for i in range(4)] + ["bench/a", "bench/b", "bench/deep/c"])
    assert check_out(fits).returncode == 0
    assert len(returned(fits)) == 8  # run.log, where check_out writes its verdict, is the 8th

    too_many = tmp_path / "many"
    files(too_many, [f"f{i}" for i in range(9)])
    result = check_out(too_many)
    assert result.returncode == 1 and "at most 8 come back" in result.stdout

    too_deep = tmp_path / "deep"
    files(too_deep, ["a/b/c/file"])
    result = check_out(too_deep)
    assert result.returncode == 1 and "3 folder(s) deep" in result.stdout


def rehearse(script: str, budget: int, out: Path, work: Path, *args: str):
    env = dict(os.environ, OUT=str(out), WORK=str(work), DRY="1")
    return subprocess.run(
        ["bash", str(BENCHMARKS / script), str(budget), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=budget + 120,
    )


def returned(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_the_search_script_returns_its_files_when_the_deadline_leaves_no_search(tmp_path):
    """A budget that the data step alone uses up: the search is not started, and the four
    files still come back (the summary and leaderboard saying why there is no result)."""
    out, work = tmp_path / "out", tmp_path / "work"
    result = rehearse("gpu_search_run.sh", 50, out, work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert returned(out) == {"run.log", "search.tar.gz", "summary.json", "leaderboard.md"}
    log = (out / "run.log").read_text()
    assert "no time left for the search" in log and "$OUT: 4 file(s)" in log
    # the second call on a machine where the first call's folder is gone says so
    again = rehearse("gpu_search_run.sh", 30, tmp_path / "out2", tmp_path / "gone", "resume")
    assert again.returncode == 3
    assert "nothing to resume" in (tmp_path / "out2" / "run.log").read_text()


@pytest.mark.slow
def test_the_bench_script_keeps_every_stage_file_when_its_share_runs_out(tmp_path):
    """A deadline too short for the sides (a share under a side's minimum): every stage's
    file is there all the same, each saying what it measured or skipped."""
    out = tmp_path / "out"
    result = rehearse("gpu_run.sh", 45, out, tmp_path / "no-search")
    assert result.returncode == 0, result.stdout + result.stderr
    assert returned(out) == {"run.log", "gpu_bench.json", "gpu_bench.md", "gpu_step_profile.md"}
    assert "skipped" in (out / "gpu_bench.md").read_text()
    assert "# One training step on cpu" in (out / "gpu_step_profile.md").read_text()
