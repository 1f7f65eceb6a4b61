"""Benchmark: K trials sharing one GPU, side by side in one run (the device tool's sides).

1. **Data**: ``--shards`` (the search's, on a machine that just ran it), or a synthetic set
   made here (``--clips-per-genre`` x ``--duration`` s), prepared by
   ``raysearch.data.pipeline.prepare``; ``--train-segments`` caps what a trial trains per
   epoch, so that a side's epochs stay short.
2. **Sides** (``--sides``, in order): ``k`` concurrent trials on one GPU (Ray tasks with
   ``1/k`` GPU each), every one running the project's training loop
   (:func:`raysearch.training.loop.fit`, the default SE-CNN, batch 32, Adam) for ``--epochs``
   epochs. A side is ``MODE:K[:mps][:KERNELS]``: ``MODE`` is ``eager`` or a ``torch.compile``
   mode (``default``, ``reduce-overhead``); ``K`` a number or ``auto`` (what
   ``--trials-per-gpu auto`` gives on this GPU, :mod:`raysearch.search.packing`); ``mps`` runs
   the trials as clients of CUDA MPS (a daemon of the script's own, started for the side and
   stopped after it; one that will not start runs the side without MPS and says so);
   ``KERNELS`` how each block's conv → ReLU → max-pool runs (:data:`raysearch.ops.KERNELS`,
   default ``aten``). A compiled side compiles its graph once first, as a search does
   (:mod:`raysearch.search.warmup`), so its trials' start-up is a search's after the warm-up.
   The aggregate is wall-clock, over the window in which every trial is in steady state (its
   epochs after the first; :func:`steady_window`), validation included. Each side gets an
   equal share of the time left (``--budget-s``), and at least ``--min-side-s``: when the time
   left holds fewer sides, the first ones run and the others are skipped, saying so. GPU
   utilisation and memory come from NVML, sampled every 0.2 s over the window; torch's peak
   and reserved memory per trial beside them. Every side's row is
   written as soon as it ends.
3. **Search** (only with ``--search-budget-s``; ``benchmarks/gpu_search_run.sh`` runs the
   whole search): ``search_spaces/ratio.yaml`` with a time budget and the fastest side's
   settings, and the 50-trial wall time extrapolated from it (said as such).

Everything goes to ``--out`` (``gpu_bench.json``, ``gpu_bench.md``). On a machine without
CUDA it runs the same code on CPUs (small data; MPS sides are skipped): a dry run of the
script, not a GPU figure.

    python benchmarks/gpu_bench.py --out /tmp/gpu-bench --shards SHARDS --train-segments 4560
    python benchmarks/gpu_bench.py --clips-per-genre 10 --duration 6 --sides eager:1,eager:2 \\
        --epochs 3 --budget-s 200                                                # CPU dry run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

from machine import (  # first: puts the checkout on sys.path
    REPO,
    machine_facts,
    say,
    start_local_ray,
)

from raysearch.search.gpu_monitor import GpuMonitor


def gpu_summary(monitor: GpuMonitor, start: float, end: float) -> dict:
    """NVML's utilisation of the window (all samples if none falls inside) and the memory
    peak of the whole side, as the JSON records them."""
    window, side = monitor.use(start, end), monitor.use()
    return {
        "gpu_util_pct": round(window.busy_pct, 1) if window else None,
        "gpu_mem_peak_gib": round(side.memory_peak_gib, 2) if side else None,
    }


@dataclasses.dataclass(frozen=True)
class Side:
    """One measurement: ``trials`` concurrent trials (K, or ``auto``: K from the GPU's memory,
    :mod:`raysearch.search.packing`), compiled or not, with MPS or not, each block's conv →
    ReLU → max-pool run by ``kernels`` (:data:`raysearch.ops.KERNELS`)."""

    mode: str  # eager | a torch.compile mode
    trials: int  # 0 until an auto side's K is known
    mps: bool = False
    kernels: str = "aten"
    auto: bool = False  # K from the GPU's memory

    @classmethod
    def parse(cls, text: str) -> Side:
        from raysearch.ops import KERNELS

        parts = text.strip().split(":")
        usage = f"--sides: {text!r} is not MODE:K[:mps][:KERNELS]"
        if len(parts) < 2 or len(parts) > 4:
            raise ValueError(usage)
        mode, trials, rest = parts[0], parts[1], parts[2:]
        mps = bool(rest) and rest[0] == "mps"
        kernels = rest[1 if mps else 0] if len(rest) > int(mps) else "aten"
        if len(rest) > int(mps) + 1 or kernels not in KERNELS:
            raise ValueError(f"{usage} (KERNELS: {', '.join(KERNELS)})")
        if mode not in ("eager", "default", "reduce-overhead"):
            raise ValueError(f"--sides: {text!r}: MODE must be eager, default or reduce-overhead")
        if trials != "auto" and not trials.isdigit():
            raise ValueError(f"--sides: {text!r}: K must be a whole number or auto")
        auto = trials == "auto"
        return cls(mode, 0 if auto else int(trials), mps, kernels, auto)

    @property
    def name(self) -> str:
        return (
            f"{self.mode}:{'auto=' if self.auto else ''}{self.trials if self.trials else ''}"
            + (":mps" if self.mps else "")
            + (f":{self.kernels}" if self.kernels != "aten" else "")
        )

    @property
    def compile(self) -> str:
        return "off" if self.mode == "eager" else self.mode


class MpsDaemon:
    """CUDA MPS for the processes that carry ``env``: a control daemon of its own (own pipe and
    log folders, so nothing else on the machine is touched), stopped with ``quit``."""

    def __init__(self, folder: Path) -> None:
        self.env = {
            "CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"),
            "CUDA_MPS_LOG_DIRECTORY": str(folder / "log"),
        }
        for path in self.env.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        self.binary = shutil.which("nvidia-cuda-mps-control")

    def start(self) -> None:
        if self.binary is None:
            raise RuntimeError("nvidia-cuda-mps-control is not on PATH")
        subprocess.run([self.binary, "-d"], env={**os.environ, **self.env}, check=True, timeout=30)
        time.sleep(1.0)

    def stop(self) -> None:
        if self.binary is None:
            return
        try:  # a daemon that does not answer must not end the run (stop runs in `finally`)
            subprocess.run(
                [self.binary],
                input="quit\n",
                text=True,
                env={**os.environ, **self.env},
                check=False,
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            say("MPS control daemon did not answer 'quit' in 30 s; going on")
        time.sleep(1.0)


def make_shards(args, work: Path) -> str:
    from raysearch.data import synth
    from raysearch.data.pipeline import prepare

    started = time.time()
    root = synth.generate(
        work / "synthetic",
        clips_per_genre=args.clips_per_genre,
        duration=args.duration,
        seed=0,
        workers=os.cpu_count() or 1,
    )
    generated = time.time()
    shards = prepare(str(root), str(work / "shards")).out
    say(
        f"data: {args.clips_per_genre * 10} clips x {args.duration:g} s generated in "
        f"{generated - started:.0f} s, prepared in {time.time() - generated:.0f} s"
    )
    return shards


def trial_task(splits_ref: list, model_config, train_config) -> dict:
    """One trial of the throughput test: the project's loop, each report timed."""
    import ray
    import torch

    from raysearch.training.loop import Placement, fit
    from raysearch.training.runner import pick_device, run_started_at

    device, note = pick_device(bool(train_config.use_gpu))
    reports = []

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        reports.append(
            {
                "epoch": metrics["epoch"],
                "end": time.time(),
                "epoch_s": metrics["epoch_s"],
                "train_segments": metrics["train_segments"],
                "segments_per_s": metrics["segments_per_s"],
                "startup_s": metrics["startup_s"],
                "graphs_compiled": metrics.get("graphs_compiled"),
            }
        )

    started = time.time()
    final = fit(
        model_config,
        train_config,
        ray.get(splits_ref[0]),
        report,
        Placement(device=device, started_at=run_started_at()),
    )
    on_gpu = device.type == "cuda"
    return {
        "started": started,
        "reports": reports,
        "device": final.get("device"),
        "note": note,
        "torch_peak_gib": torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None,
        "torch_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if on_gpu else None,
        "test_acc": final.get("test_acc"),
    }


def steady_window(runs: list[dict]) -> tuple[float, float, float, str]:
    """(start, end, train segments in it, how) of the window in which every trial of a side
    is in steady state: from the latest start of a trial's second epoch (the first holds its
    start-up and compile) to the earliest end of a trial's last epoch. An epoch that overlaps
    the window counts in proportion to the overlap (its rate taken as even). When the trials'
    steady epochs do not overlap at all (starts too staggered), the window of every steady
    epoch instead, said as ``how = "staggered"``: an underestimate."""
    steady = [run["reports"][1:] for run in runs]
    if all(steady):
        start = max(epochs[0]["end"] - epochs[0]["epoch_s"] for epochs in steady)
        end = min(epochs[-1]["end"] for epochs in steady)
        if end > start:
            segments = 0.0
            for epoch in (e for epochs in steady for e in epochs):
                e_start, e_end = epoch["end"] - epoch["epoch_s"], epoch["end"]
                overlap = min(end, e_end) - max(start, e_start)
                if overlap > 0:
                    segments += epoch["train_segments"] * overlap / (e_end - e_start)
            return start, end, segments, "all trials steady"
    reports = [r for run in runs for r in (run["reports"][1:] or run["reports"])]
    start = min(r["end"] - r["epoch_s"] for r in reports)
    end = max(r["end"] for r in reports)
    return start, end, float(sum(r["train_segments"] for r in reports)), "staggered"


def throughput(
    splits_ref,
    model_config,
    base_config,
    side: Side,
    use_gpu: bool,
    sampler,
    env: dict,
    timeout_s: float,
) -> dict:
    """``side.trials`` concurrent trials on the GPU (or CPU tasks); aggregate wall-clock
    segments/s over the window where all of them are in steady state (:func:`steady_window`).
    A compiled side first compiles its graph once, as a search does
    (:func:`raysearch.search.warmup.compile_first_steps`), so its trials load it: their
    start-up is a search's after the warm-up. ``env``: environment variables of the trials'
    processes (MPS's pipe folder). Trials still running after ``timeout_s`` (a client that
    cannot reach MPS may wait for ever) are killed and the side raises ``TimeoutError``,
    leaving the rest of the run its time; when one trial fails the others are killed too."""
    import ray

    from raysearch.search.warmup import compile_first_steps

    k = side.trials
    began = time.time()
    config = dataclasses.replace(
        base_config, compile=side.compile, kernels=side.kernels, gpus_per_worker=1 / k
    )
    options = {
        "num_cpus": 1,
        "num_gpus": (1 / k if use_gpu else 0),
        "runtime_env": {"env_vars": env} if env else None,
    }
    warmup = None
    if side.compile != "off":
        warm_task = ray.remote(max_calls=1)(compile_first_steps).options(**options)
        warm_ref = warm_task.remote(model_config, config, splits_ref)
        try:
            warmup = ray.get(warm_ref, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(warm_ref, force=True)
            raise TimeoutError(f"side {side.name}: compile not done in {timeout_s:.0f} s") from None
        warmup["seconds"] = round(time.time() - began, 1)
    # max_calls=1: each trial's process exits with it, so no CUDA cache outlives its trial
    task = ray.remote(max_calls=1)(trial_task)
    sampler.start()
    refs = [
        task.options(**options).remote(
            splits_ref, model_config, dataclasses.replace(config, seed=i)
        )
        for i in range(k)
    ]
    try:
        runs = ray.get(refs, timeout=max(1.0, timeout_s - (time.time() - began)))
    except BaseException as exc:  # a trial failed (out of memory?) or the deadline passed:
        for ref in refs:  # end the others, so that they do not run into the next side
            ray.cancel(ref, force=True)
        if isinstance(exc, ray.exceptions.GetTimeoutError):
            raise TimeoutError(
                f"side {side.name}: trials not done after {timeout_s:.0f} s"
            ) from None
        raise
    finally:
        sampler.stop()
    window_start, window_end, segments, how = steady_window(runs)
    startups = [run["reports"][0]["startup_s"] for run in runs]
    return {
        "side": side.name,
        "trials": k,
        "compile": side.compile,
        "kernels": side.kernels,
        "mps": side.mps,
        "aggregate_segments_per_s": round(segments / (window_end - window_start), 1),
        "window_s": round(window_end - window_start, 1),
        "window": how,
        "per_trial_segments_per_s": [  # epochs after the first (the only one if alone)
            round(
                sum(r["segments_per_s"] for r in run["reports"][1:] or run["reports"])
                / len(run["reports"][1:] or run["reports"]),
                1,
            )
            for run in runs
        ],
        "first_epoch_s": [round(run["reports"][0]["epoch_s"], 2) for run in runs],
        # process start to the end of the first step (imports, CUDA, data, the cached graph)
        "startup_s": [round(v, 2) for v in startups],
        "startup_s_median": round(sorted(startups)[len(startups) // 2], 2),
        "graphs_compiled_by_trials": sum(
            run["reports"][0].get("graphs_compiled") or 0 for run in runs
        ),
        "warmup": warmup,
        "side_s": round(time.time() - began, 1),
        "torch_peak_gib_per_trial": max((run["torch_peak_gib"] or 0) for run in runs) or None,
        "torch_reserved_gib_per_trial": max((run["torch_reserved_gib"] or 0) for run in runs)
        or None,
        "device": runs[0]["device"],
        "note": runs[0]["note"],
        **gpu_summary(sampler, window_start, window_end),
    }


def search(shards: str, args, budget_s: float, out: Path, work: Path, sampler, side: Side) -> dict:
    """ratio.yaml through run_search with a time budget, ``side``'s compile mode and share of
    the GPU (``1/k``); its results folder tarred into out. MPS, when the side has it, is the
    caller's (the Ray instance must start inside it)."""
    from raysearch.results.rank import epoch_counts, trial_frame
    from raysearch.results.records import records_from_experiment
    from raysearch.search.run import run_search
    from raysearch.search.space import load_space, parse_space

    space = load_space(REPO / "search_spaces" / "ratio.yaml").with_overrides(
        trials=args.search_trials, epochs=args.search_epochs
    )
    raw = json.loads(json.dumps(space.raw))
    raw.setdefault("train", {})["compile"] = side.compile
    raw["train"]["kernels"] = side.kernels
    raw.setdefault("resources", {})["gpu"] = (
        side.trials if side.trials == "auto" else 1 / side.trials
    )
    space = parse_space(raw, space.source, default_name=space.name)
    storage = Path(tempfile.mkdtemp(prefix="gpu-bench-storage-"))
    results = work / "search"
    sampler.start()
    started = time.time()
    run_search(
        space,
        shards,
        str(storage),
        str(results),
        verbose=1,
        use_gpu=None,
        time_budget_s=budget_s,
    )
    wall = time.time() - started
    sampler.stop()
    records = records_from_experiment(str(storage / space.name))
    statuses = {}
    for record in records:
        statuses[record.status] = statuses.get(record.status, 0) + 1
    # twins of a network another trial trained replayed its reports at no cost: the rate
    # counts only the epochs of trials that trained
    counts = epoch_counts(trial_frame(space, records))
    replayed, trial_epochs = counts.twins, counts.trained
    finished = sum(1 for r in records if r.status in ("completed", "stopped early"))
    with tarfile.open(out / "search.tar.gz", "w:gz") as tar:
        tar.add(results, arcname="search")
    rate = trial_epochs / wall if wall else 0.0
    # ASHA (grace g, factor f, max_t m) lets about n/f^i trials reach each rung: the expected
    # trial-epochs of a full search, if no trial stops early on patience
    g, f = space.scheduler.grace_period, space.scheduler.reduction_factor
    m = int(space.train.get("epochs", 30))
    rungs, expected, reached, n = [], 0.0, 0, 50
    r = g
    while r < m:
        rungs.append(r)
        r = int(r * f)
    for i, rung in enumerate([*rungs, m]):
        expected += n / f**i * (rung - reached)
        reached = rung
    return {
        "space": "ratio.yaml",
        "side": side.name,
        "trials_asked": args.search_trials,
        "epochs": m,
        "budget_s": round(budget_s),
        "wall_s": round(wall, 1),
        "trials_by_status": statuses,
        "trials_finished": finished,
        "trials_replayed": replayed,
        "trial_epochs": trial_epochs,
        "trial_epochs_per_s": round(rate, 3),
        "asha_expected_trial_epochs_50": round(expected),
        "extrapolated_50_trial_wall_s": round(expected / rate) if rate else None,
        **gpu_summary(sampler, started, time.time()),
    }


def markdown(report: dict) -> str:
    facts = report["machine"]
    lines = [
        f"# gpu_bench on {facts.get('gpu') or 'CPU only (dry run, not a GPU figure)'}",
        "",
        f"Command: `{report['command']}`; commit {facts.get('git_commit')}; "
        f"{facts.get('cores')} cores; torch {facts['versions'].get('torch')}, "
        f"ray {facts['versions'].get('ray')}.",
        f"Data: {report.get('data', {}).get('clips')} synthetic clips, "
        f"{report.get('data', {}).get('train_segments')} train segments, "
        f"{report.get('data', {}).get('segments_per_epoch')} of them per trial and epoch.",
        "",
        "Aggregate: train segments/s over the window in which every trial of the side is in "
        "steady state (after its first epoch), validation included; compiled sides compile "
        "once first (warm-up), so the trials' start-up is a search's after the warm-up.",
        "",
        "| side (mode:trials[:mps][:kernels]) | aggregate segments/s | vs first side | window "
        "s | per trial | start-up s, median (each) | warm-up s | GPU util % | GPU mem peak GiB "
        "(NVML) | torch peak / reserved GiB per trial |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---|",
    ]
    rows = report.get("sides", [])
    first = next((r["aggregate_segments_per_s"] for r in rows if "window" in r), None)
    for row in rows:
        if "window" not in row:
            why = f"skipped: {row['skipped']}" if "skipped" in row else f"error: {row.get('error')}"
            lines.append(f"| {row['side']} | {why} |" + " |" * 8)
            continue
        warm = (row.get("warmup") or {}).get("seconds", "")
        window = f"{row['window_s']}" + (
            " (staggered)" if row["window"] != "all trials steady" else ""
        )
        lines.append(
            f"| {row['side']} | {_rate(row['aggregate_segments_per_s'])} | "
            f"{row['aggregate_segments_per_s'] / first:.2f} | {window} | "
            f"{row['per_trial_segments_per_s']} | {row['startup_s_median']} ({row['startup_s']}) | "
            f"{warm} | {row['gpu_util_pct']} | {row['gpu_mem_peak_gib']} | "
            f"{_gib(row.get('torch_peak_gib_per_trial'))} / "
            f"{_gib(row.get('torch_reserved_gib_per_trial'))} |"
        )
    if "auto" in report:
        lines += ["", f"`--trials-per-gpu auto` here: {report['auto']}"]
    if "search" in report:
        s = report["search"]
        lines += [
            "",
            f"Search: {s['space']} with side {s['side']}, {s['trials_asked']} trials asked, "
            f"{s['epochs']} epochs, budget {s['budget_s']} s: wall {s['wall_s']} s, "
            f"{s['trials_by_status']} ({s.get('trials_replayed', 0)} replayed a twin's "
            f"reports without training), {s['trial_epochs']} trial-epochs "
            f"({s['trial_epochs_per_s']}/s), GPU util {s['gpu_util_pct']} %. A 50-trial ASHA "
            f"search is about {s['asha_expected_trial_epochs_50']} trial-epochs: **extrapolated "
            f"{s['extrapolated_50_trial_wall_s']} s** (an extrapolation, not a run).",
        ]
    for error in report.get("errors", []):
        lines.append(f"\nerror in {error['section']}: {error['error']}")
    return "\n".join(lines) + "\n"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _gib(value) -> str:
    return f"{value:.2f}" if value else "n/a"


def auto_trials(shards: str, model_config, base, args) -> tuple[int, str]:
    """K that ``--trials-per-gpu auto`` gives on this machine's GPU for these shards, and the
    line that says why (raysearch.search.packing; the CPUs bound it too)."""
    import torch

    from raysearch.search.gpu_share import network_of, split_sizes
    from raysearch.search.packing import GIB, trial_memory, trials_per_gpu

    train = dataclasses.replace(base, kernels=args.auto_kernels)
    network = network_of(model_config, train, compiled=True)
    if torch.cuda.is_available():
        memory, name = (
            torch.cuda.get_device_properties(0).total_memory,
            torch.cuda.get_device_name(0),
        )
    else:  # a CPU dry run: an H200's memory, to exercise the arithmetic
        memory, name = int(140 * GIB), "no GPU: an H200's 140 GiB assumed (dry run)"
    packing = trials_per_gpu(memory, trial_memory(network, split_sizes(shards)), os.cpu_count())
    return packing.trials, f"{packing.describe()}; {name}; kernels {args.auto_kernels}"


# today's default (compiled, select, 8 trials, MPS) first; every other side is read against it
SIDES = "default:8:mps,default:8:mps:triton-conv1,default:12:mps,default:16:mps,default:auto:mps"


def fastest(rows: list[dict], sides: list[Side]) -> Side | None:
    """The side with the highest aggregate segments/s, or None when none was measured."""
    best = max(rows, key=lambda row: row["aggregate_segments_per_s"], default=None)
    return next(side for side in sides if side.name == best["side"]) if best else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", default="gpu-bench-out", help="output folder")
    parser.add_argument(
        "--shards", default=None, help="measure on these shards (default: generate a set)"
    )
    parser.add_argument("--clips-per-genre", type=int, default=100)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per clip")
    parser.add_argument(
        "--sides",
        # today's best first (every other side is read against it), then the kernels, then K
        default=SIDES,
        help="MODE:K[:mps][:KERNELS] measurements, in order (see the module docstring); K may "
        "be auto (raysearch.search.packing)",
    )
    parser.add_argument(
        "--auto-kernels",
        default="auto",
        help="the kernels --trials-per-gpu auto's arithmetic assumes for auto sides",
    )
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per trial of a side (the first is start-up)"
    )
    parser.add_argument(
        "--train-segments",
        type=int,
        default=0,
        help="train segments per trial and epoch (0: the whole train split)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--min-side-s",
        type=float,
        default=60,  # on the H200: 8 processes' start, a new kernel's compile, 3 short epochs
        help="a side whose share of the time left is shorter is skipped (and says so)",
    )
    parser.add_argument("--search-trials", type=int, default=50)
    parser.add_argument("--search-epochs", type=int, default=None, help="default: the space's")
    parser.add_argument(
        "--search-budget-s",
        type=float,
        default=0,
        help="a time-budgeted search after the sides (0: none; gpu_search_run.sh runs the whole "
        "search)",
    )
    parser.add_argument(
        "--search-side",
        default=None,
        help="MODE:K[:mps] the search runs with (default: the fastest side measured)",
    )
    parser.add_argument("--budget-s", type=float, default=470, help="the whole run's deadline")
    args = parser.parse_args(argv)
    sides = [Side.parse(v) for v in args.sides.split(",") if v.strip()]
    began = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"command": " ".join(["python benchmarks/gpu_bench.py", *sys.argv[1:]])}
    report["errors"] = []
    # kept back from the sides: the search's budget and its start, or a few seconds to save
    reserve = args.search_budget_s + 45 if args.search_budget_s > 0 else 5

    def left() -> float:
        return args.budget_s - (time.time() - began)

    def save() -> None:
        (out / "gpu_bench.json").write_text(json.dumps(report, indent=1, default=str))
        (out / "gpu_bench.md").write_text(markdown(report))

    import ray
    import torch

    from raysearch.training.config import TrainConfig
    from raysearch.training.data import load_splits, model_config_for

    facts = machine_facts(("ray", "torch", "numpy", "pyarrow", "optuna"), REPO)
    use_gpu = torch.cuda.is_available()
    facts["gpu"] = torch.cuda.get_device_name(0) if use_gpu else None
    report["machine"] = facts
    say(f"machine: {facts['gpu'] or 'no CUDA: CPU dry run'}, {facts['cores']} cores")
    report["sides"] = [{"side": side.name, "skipped": "not reached"} for side in sides]
    save()  # the file exists from the start: a run cut off before its first side says so
    report["sides"] = []
    work = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    mps = MpsDaemon(work / "mps")
    start_local_ray(os.cpu_count() or 1, REPO, num_gpus=1 if use_gpu else 0)
    shards = args.shards or make_shards(args, work)
    splits = load_splits(shards)
    per_epoch = min(args.train_segments or len(splits["train"]), len(splits["train"]))
    report["data"] = {
        "shards": shards,
        "clips": len(set(splits["train"].track_id))
        + len(set(splits["val"].track_id))
        + len(set(splits["test"].track_id)),
        "train_segments": len(splits["train"]),
        "segments_per_epoch": per_epoch - per_epoch % args.batch_size,
        "val_segments": len(splits["val"]),
        "test_segments": len(splits["test"]),
    }
    splits_ref = [ray.put(splits)]
    del splits
    model_config = model_config_for(shards)
    base = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=0,
        use_gpu=use_gpu,
        max_train_segments=args.train_segments,
    )
    sampler = GpuMonitor(period_s=0.2)
    auto_k, report["auto"] = auto_trials(shards, model_config, base, args)
    say(f"--trials-per-gpu auto: {report['auto']}")
    sides = [dataclasses.replace(s, trials=auto_k) if s.auto else s for s in sides]
    report["sides"] = []
    save()
    for i, side in enumerate(sides):
        # the time left shared by the sides left, but never under what a side needs: with
        # too little for all, the first sides (the most telling) run and the last are skipped
        share = max((left() - reserve) / (len(sides) - i), args.min_side_s)
        if left() - reserve < share:
            why = f"no time ({left() - reserve:.0f} s left, a side needs {args.min_side_s:.0f})"
            say(f"skipping side {side.name}: {why}")
            report["sides"].append({"side": side.name, "skipped": why})
            save()
            continue
        if side.mps and not use_gpu:
            say(f"skipping side {side.name}: MPS needs CUDA")
            report["sides"].append({"side": side.name, "skipped": "MPS needs CUDA"})
            save()
            continue
        mps_on = False
        try:
            if side.mps:
                try:
                    mps.start()
                    mps_on = True
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    say(f"side {side.name}: MPS did not start ({exc}); the same side without MPS")
                    side = dataclasses.replace(side, mps=False)
            row = throughput(
                splits_ref,
                model_config,
                base,
                side,
                use_gpu,
                sampler,
                mps.env if mps_on else {},
                timeout_s=share,
            )
            report["sides"].append(row)
            say(f"side {side.name}: {row}")
        except Exception as exc:  # noqa: BLE001 - keep the rest of the run
            report["errors"].append({"section": f"side {side.name}", "error": repr(exc)})
            report["sides"].append({"side": side.name, "error": repr(exc)[:200]})
            traceback.print_exc()
        finally:
            if mps_on:
                mps.stop()
        save()
    chosen = None
    if args.search_budget_s > 0:
        measured = [r for r in report["sides"] if "aggregate_segments_per_s" in r]
        chosen = Side.parse(args.search_side) if args.search_side else fastest(measured, sides)
    budget = min(args.search_budget_s, left() - 45)
    if chosen is not None and budget > 30:
        try:
            if chosen.mps:  # the search's Tune actors must start inside MPS: a Ray of its own
                ray.shutdown()
                os.environ.update(mps.env)
                mps.start()
                start_local_ray(os.cpu_count() or 1, REPO, num_gpus=1 if use_gpu else 0)
            report["search"] = search(shards, args, budget, out, work, sampler, chosen)
            say(f"search: {report['search']}")
        except Exception as exc:  # noqa: BLE001
            report["errors"].append({"section": "search", "error": repr(exc)})
            traceback.print_exc()
        finally:
            if chosen.mps:
                ray.shutdown()
                mps.stop()
        save()
    report["wall_s"] = round(time.time() - began, 1)
    save()
    print(markdown(report))
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
