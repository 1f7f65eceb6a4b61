"""The one line a run out of GPU memory ends with (raysearch.training.gpu_memory). The CUDA
side (reading the device after a failed allocation) runs in benchmarks/gpu_run.sh's
out-of-memory check on a GPU machine."""

from __future__ import annotations

import pytest

from raysearch.training.gpu_memory import out_of_memory_line, trials_sharing


@pytest.mark.parametrize(
    ("share", "trials"), [(1.0, 1), (0.5, 2), (0.25, 4), (1 / 3, 3), (1 / 8, 8)]
)
def test_a_gpu_share_says_how_many_trials_share_the_gpu(share, trials):
    assert trials_sharing(share) == trials


def test_the_line_names_the_gpu_the_trials_and_the_peak():
    line = out_of_memory_line("NVIDIA A10G", 22.49, 0.31, 4, 6.21)
    assert "\n" not in line
    assert "NVIDIA A10G (22.5 GiB, 0.3 GiB free now)" in line
    assert "shared by 4 trial(s)" in line and "peak was 6.21 GiB" in line
    assert "--trials-per-gpu" in line
