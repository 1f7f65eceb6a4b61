"""Search-space files: one strict YAML schema, validated into a typed object before anything runs.

Schema (every key but ``params`` is optional; defaults in brackets)::

    name: ratio                  # experiment name: letters, digits, - and _ [the file's stem]
    description: "..."           # free text [""]
    metric: best_val_acc         # a validation metric [best_val_acc]: best_val_acc, val_acc,
                                 # val_track_acc (max) or best_val_loss, val_loss (min)
    mode: max                    # must agree with the metric [the metric's]
    trials: 50                   # configurations to evaluate [50]; grid: [grid size]
    repeats: 1                   # seeds per configuration, for mean ± std [1]; not with asha
    sampler: tpe                 # tpe | gp | random | grid [tpe] (Optuna samplers)
    seed: 0                      # sampler seed [0]
    concurrency: 0               # trials at once; 0 = as many as the cluster fits [0]
    max_failures: 2              # retries of a failed trial [2]
    scheduler:                   # early stopping of weak trials [type: none]
      type: asha                 # asha | none
      grace_period: 3            # epochs every trial runs before it can be stopped [3]
      reduction_factor: 3        # keep the top 1/reduction_factor at each rung [3]
    train:                       # fixed training settings (TrainConfig) [its defaults]
      epochs: 30
      batch_size: 32
      lr: 0.001
      patience: 5
    model:                       # fixed model settings (raysearch.model.ModelConfig)
      channels: [32, 64, 128, 256, 128]
      ratio: 16
      se_blocks: [1, 2, 3, 4, 5]
      dropout: 0.25
    resources:                   # per trial
      workers: 1                 # Ray Train workers (DDP) [1]
      cpu: 1                     # CPUs per worker [1]
      gpu: auto                  # GPU per worker when trials use GPUs [1]; < 1 shares a GPU,
                                 # 0 = never use GPUs (see raysearch.search.gpu_demand), auto =
                                 # 1/K, K trials packed by memory (raysearch.search.gpu_share)
    initial_points:              # configurations evaluated first (e.g. the report's values) [[]]
      - {ratio: 16}
    params:                      # the searched parameters
      ratio:    {type: float, low: 4, high: 64, log: true}
      lr:       {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      width:    {type: float, low: 0.5, high: 2.0}        # multiplies every channel width
      channels: {type: categorical, choices: [[16, 32, 64, 128, 64], [32, 64, 128, 256, 128]]}
      se_blocks: {type: categorical, choices: [[], [5], [4, 5]]}
      batch_size: {type: int, low: 16, high: 64, step: 16}

Parameter types: ``int`` (low, high, step, log), ``float`` (low, high, step, log),
``categorical`` (choices; a choice may be a list, e.g. a channel tuple). The searchable names,
the keys ``model:`` and ``train:`` accept and their meaning come from one table,
:mod:`raysearch.search.dimensions`: ``channels``, ``ratio``, ``se_blocks``, ``dropout``, ``head``
(model), ``width`` (a multiplier of every channel width), ``batch_size``, ``lr``,
``weight_decay``, ``freq_masks``, ``freq_width``, ``time_masks``, ``time_width``,
``mixup_alpha`` (training).

Loading is strict: an unknown key, a wrong type, a bad range (low > high, log with low <= 0) or
an empty choice list raises :class:`SpaceError` with one line naming the file, the key and the
problem. YAML is read with ``yaml.safe_load`` only.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from raysearch.errors import UserError
from raysearch.model import ModelConfig
from raysearch.search.dimensions import BY_NAME, DERIVED, fixed_keys, searchable
from raysearch.training.config import TrainConfig

SAMPLERS = ("tpe", "gp", "random", "grid")
SCHEDULERS = ("asha", "none")
# What a search may optimise, and in which direction: validation numbers only, as every trial
# reports them each epoch. Test numbers exist only at a trial's end and never select anything.
METRICS = {
    "best_val_acc": "max",
    "val_acc": "max",
    "val_track_acc": "max",
    "best_val_loss": "min",
    "val_loss": "min",
}
NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # a space's name names folders: no path, no spaces
TOP_KEYS = (
    "name",
    "description",
    "metric",
    "mode",
    "trials",
    "repeats",
    "sampler",
    "seed",
    "concurrency",
    "max_failures",
    "scheduler",
    "train",
    "model",
    "resources",
    "initial_points",
    "params",
)


class SpaceError(UserError):
    """A search-space file is invalid; the message names the file, the key and the problem."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # int | float | categorical
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()

    def encode(self, value: Any) -> Any:
        """A value as Optuna stores it (lists become strings: Optuna's choices are scalars)."""
        return json.dumps(value) if isinstance(value, list | tuple) else value

    def decode(self, value: Any) -> Any:
        if self.type == "categorical" and isinstance(value, str) and value.startswith("["):
            return json.loads(value)
        return value

    def optuna_distribution(self):
        import optuna.distributions as d

        if self.type == "int":
            return d.IntDistribution(
                int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        if self.type == "float":
            return d.FloatDistribution(self.low, self.high, step=self.step, log=self.log)
        return d.CategoricalDistribution([self.encode(c) for c in self.choices])

    def grid_values(self) -> list:
        if self.type == "categorical":
            return [self.encode(c) for c in self.choices]
        if self.step is None and self.type == "float":
            raise SpaceError(
                f"param {self.name}: a grid needs 'step' for a float range, or use 'categorical'"
            )
        step = self.step or 1
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(count)]
        return [int(v) for v in values] if self.type == "int" else values


@dataclass(frozen=True)
class Scheduler:
    type: str = "none"
    grace_period: int = 3
    reduction_factor: float = 3


AUTO = "auto"  # resources.gpu: 1/K, K trials per GPU from its memory (search.gpu_share)


@dataclass(frozen=True)
class Resources:
    workers: int = 1
    cpu: float = 1.0
    gpu: float | str = 1.0  # a share of one GPU per worker, or AUTO

    @property
    def gpu_share(self) -> float:
        """The share of a GPU a worker asks for: 1 while an AUTO share is not decided yet."""
        return 1.0 if self.gpu == AUTO else float(self.gpu)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    params: tuple[Param, ...]
    description: str = ""
    metric: str = "best_val_acc"
    mode: str = "max"
    trials: int = 50
    repeats: int = 1
    sampler: str = "tpe"
    seed: int = 0
    concurrency: int = 0
    max_failures: int = 2
    scheduler: Scheduler = field(default_factory=Scheduler)
    train: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    initial_points: tuple[dict, ...] = ()
    source: str = ""
    raw: dict = field(default_factory=dict, compare=False)  # the file's data, with overrides

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def total_runs(self) -> int:
        """Tune trials: configurations times repeats."""
        return self.trials * self.repeats

    def grid_size(self) -> int:
        return math.prod(len(p.grid_values()) for p in self.params)

    def with_overrides(
        self,
        trials: int | None = None,
        epochs: int | None = None,
        repeats: int | None = None,
        trials_per_gpu: int | str | None = None,
    ) -> SearchSpace:
        """The space with the command line's settings. ``trials_per_gpu``: K (each trial asks
        for 1/K of a GPU), or ``auto`` (K from the GPU's memory), which gives way to a number
        the space sets itself."""
        raw = json.loads(json.dumps(self.raw))
        if trials_per_gpu == AUTO:
            if self.resources.workers > 1:
                raise SpaceError(
                    f"--trials-per-gpu auto: {self.source} trains each trial on "
                    f"{self.resources.workers} DDP workers, one GPU each"
                )
            if self.resources.gpu == 0:
                raise SpaceError(
                    f"--trials-per-gpu: {self.source} is CPU-only (resources.gpu is 0)"
                )
            if "gpu" not in (self.raw.get("resources") or {}):
                raw.setdefault("resources", {})["gpu"] = AUTO
        elif trials_per_gpu is not None:
            if trials_per_gpu < 1:
                raise SpaceError(f"--trials-per-gpu must be at least 1, got {trials_per_gpu}")
            if self.resources.workers > 1 and trials_per_gpu > 1:
                raise SpaceError(
                    f"--trials-per-gpu {trials_per_gpu}: {self.source} trains each trial on "
                    f"{self.resources.workers} DDP workers, one GPU each; it must be 1"
                )
            if self.resources.gpu == 0:
                raise SpaceError(
                    f"--trials-per-gpu: {self.source} is CPU-only (resources.gpu is 0)"
                )
            raw.setdefault("resources", {})["gpu"] = 1 / trials_per_gpu
        if trials is not None:
            if trials < 1:
                raise SpaceError(f"--trials must be at least 1, got {trials}")
            raw["trials"] = trials
        if epochs is not None:
            if epochs < 1:
                raise SpaceError(f"--epochs must be at least 1, got {epochs}")
            raw.setdefault("train", {})["epochs"] = epochs
        if repeats is not None:
            if repeats < 1:
                raise SpaceError(f"--repeats must be at least 1, got {repeats}")
            raw["repeats"] = repeats
        return parse_space(raw, self.source, default_name=self.name)

    def renamed(self, name: str) -> SearchSpace:
        if not NAME.match(name):
            raise SpaceError(f"--name: {name!r} must be letters, digits, '-' and '_' only")
        return replace(self, name=name, raw={**self.raw, "name": name})

    def configs_for(self, sampled: dict, repeat: int = 0) -> tuple[ModelConfig, TrainConfig]:
        """The model and training settings of one trial: fixed settings + sampled values."""
        values = {p.name: p.decode(sampled[p.name]) for p in self.params if p.name in sampled}
        model = dict(self.model)
        train = dict(self.train)
        for name, value in values.items():
            if name not in DERIVED:
                (model if BY_NAME[name].target == "model" else train)[name] = value
        if "width" in values:
            base = model.get("channels", ModelConfig.channels)
            model["channels"] = [scale_width(c, values["width"]) for c in base]
        train["seed"] = int(train.get("seed", 0)) + repeat
        train.setdefault("workers", self.resources.workers)
        train.setdefault("cpus_per_worker", self.resources.cpu)
        train.setdefault("gpus_per_worker", self.resources.gpu_share or 1.0)
        model_config = ModelConfig.from_dict(model)
        return model_config, TrainConfig(**train)


def scale_width(channels: int, width: float) -> int:
    """A channel count times a width multiplier, rounded to a multiple of 4 (at least 4)."""
    return max(4, int(round(channels * width / 4)) * 4)


PACKAGED = Path(__file__).resolve().parent.parent / "search_spaces"


def packaged_spaces() -> list[str]:
    """Names of the spaces shipped in the package (``raysearch/search_spaces/*.yaml``)."""
    return sorted(p.stem for p in PACKAGED.glob("*.yaml"))


def find_space(name_or_path: str | Path) -> Path:
    """A space file: the path itself when it exists, else the packaged space of that name
    (``ratio`` or ``ratio.yaml``)."""
    path = Path(name_or_path)
    if path.exists() or path.parent != Path("."):
        return path
    packaged = PACKAGED / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if packaged.exists():
        return packaged
    raise SpaceError(
        f"{name_or_path}: no such file, and no packaged space of that name "
        f"(packaged: {', '.join(packaged_spaces())})"
    )


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file (a path, or a packaged space's name)."""
    path = find_space(path)
    where = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpaceError(f"{where}: cannot read ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise SpaceError(f"{where}:{line} not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    return parse_space(data, where, default_name=path.stem)


def parse_space(data: Any, where: str = "<space>", default_name: str = "search") -> SearchSpace:
    check = _Checker(where)
    check.mapping(data, "")
    check.known(data, TOP_KEYS, "")
    if "params" not in data:
        check.fail("params", "missing: a search space needs at least one parameter")
    params = _parse_params(check, data["params"])
    sampler = check.choice(data, "sampler", SAMPLERS, "tpe")
    scheduler_data = data.get("scheduler", {}) or {}
    check.mapping(scheduler_data, "scheduler")
    check.known(scheduler_data, ("type", "grace_period", "reduction_factor"), "scheduler.")
    scheduler = Scheduler(
        type=check.choice(scheduler_data, "type", SCHEDULERS, "none", "scheduler."),
        grace_period=check.integer(scheduler_data, "grace_period", 3, 1, "scheduler."),
        reduction_factor=check.number(scheduler_data, "reduction_factor", 3, 1.01, "scheduler."),
    )
    resources_data = data.get("resources", {}) or {}
    check.mapping(resources_data, "resources")
    check.known(resources_data, ("workers", "cpu", "gpu"), "resources.")
    resources = Resources(
        workers=check.integer(resources_data, "workers", 1, 1, "resources."),
        cpu=check.number(resources_data, "cpu", 1.0, 0.01, "resources."),
        gpu=_gpu_share(check, resources_data),
    )
    if resources.gpu == AUTO and resources.workers > 1:
        check.fail(
            "resources.gpu",
            f"auto packs one-worker trials on a GPU; a trial of {resources.workers} DDP "
            "workers takes one GPU per worker: give 1",
        )
    train = _parse_fixed(
        check, data.get("train", {}), fixed_keys("train"), "train", lambda d: TrainConfig(**d)
    )
    model = _parse_fixed(
        check,
        data.get("model", {}),
        fixed_keys("model"),
        "model",
        lambda d: ModelConfig.from_dict(d),
    )
    metric = _string(check, data, "metric", "best_val_acc")
    if metric not in METRICS:
        allowed = ", ".join(f"{m} ({mode})" for m, mode in METRICS.items())
        check.fail(
            "metric",
            f"{metric!r} cannot be optimised: a search selects on validation numbers only "
            f"({allowed})",
        )
    mode = check.choice(data, "mode", ("max", "min"), METRICS[metric])
    if mode != METRICS[metric]:
        check.fail("mode", f"{metric} is {'maximised' if METRICS[metric] == 'max' else 'minimised'}"
                   f": mode must be {METRICS[metric]}, got {mode}")  # fmt: skip
    name = _string(check, data, "name", default_name)
    if not NAME.match(name):
        check.fail("name", f"{name!r} must be letters, digits, '-' and '_' only (it names folders)")
    repeats = check.integer(data, "repeats", 1, 1)
    if repeats > 1 and scheduler.type == "asha":
        check.fail(
            "repeats",
            f"{repeats} repeats with scheduler asha: ASHA would stop single seeds, not "
            "configurations; use scheduler none for repeated configurations",
        )
    names = {p.name for p in params}
    for clash in names & set(train) | names & set(model):
        check.fail(f"params.{clash}", "is both searched and fixed; keep one")
    space = SearchSpace(
        name=name,
        description=_string(check, data, "description", ""),
        params=params,
        metric=metric,
        mode=mode,
        trials=check.integer(data, "trials", 50, 1),
        repeats=repeats,
        sampler=sampler,
        seed=check.integer(data, "seed", 0, 0),
        concurrency=check.integer(data, "concurrency", 0, 0),
        max_failures=check.integer(data, "max_failures", 2, 0),
        scheduler=scheduler,
        train=train,
        model=model,
        resources=resources,
        initial_points=_parse_points(check, data.get("initial_points", []) or [], params),
        source=where,
        raw=json.loads(json.dumps({"name": default_name, **data})),
    )
    if sampler == "grid":
        size = space.grid_size()
        trials = data.get("trials", size)
        if trials > size:
            check.fail("trials", f"{trials} is more than the grid's {size} configurations")
        space = replace(space, trials=trials)
    example = {p.name: _example(p) for p in params}
    for param in params:  # every choice, and both ends of every range, must build
        values = (
            [param.encode(c) for c in param.choices]
            if param.type == "categorical"
            else [param.low, param.high]
        )
        for value in values:
            try:
                space.configs_for({**example, param.name: value})
            except (ValueError, TypeError) as exc:
                check.fail(f"params.{param.name}", f"{param.decode(value)!r} is invalid: {exc}")
    return space


def _example(param: Param):
    if param.type == "categorical":
        return param.encode(param.choices[0])
    return int(param.low) if param.type == "int" else param.low


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, problem: str):
        raise SpaceError(f"{self.where}: {key}: {problem}")

    def mapping(self, value, key: str) -> None:
        if not isinstance(value, dict):
            self.fail(key or "top level", f"must be a mapping, got {type(value).__name__}")

    def known(self, data: dict, allowed, prefix: str) -> None:
        for key in data:
            if key not in allowed:
                self.fail(f"{prefix}{key}", f"unknown key (allowed: {', '.join(allowed)})")

    def choice(self, data: dict, key: str, allowed, default, prefix: str = ""):
        value = data.get(key, default)
        if value not in allowed:
            self.fail(f"{prefix}{key}", f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def integer(self, data: dict, key: str, default: int, minimum: int, prefix: str = "") -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{prefix}{key}", f"must be an integer, got {value!r}")
        if value < minimum:
            self.fail(f"{prefix}{key}", f"must be at least {minimum}, got {value}")
        return value

    def number(
        self, data: dict, key: str, default: float, minimum: float, prefix: str = ""
    ) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{prefix}{key}", f"must be a number, got {value!r}")
        if value < minimum:
            self.fail(f"{prefix}{key}", f"must be at least {minimum}, got {value}")
        return float(value)


def _string(check: _Checker, data: dict, key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        check.fail(key, f"must be a string, got {value!r}")
    return value


def _gpu_share(check: _Checker, resources: dict) -> float | str:
    value = resources.get("gpu", 1.0)
    if isinstance(value, str):
        if value != AUTO:
            check.fail("resources.gpu", f"must be a number or {AUTO}, got {value!r}")
        return AUTO
    return check.number(resources, "gpu", 1.0, 0.0, "resources.")


def _parse_params(check: _Checker, data) -> tuple[Param, ...]:
    check.mapping(data, "params")
    if not data:
        check.fail("params", "is empty: give at least one parameter")
    params = []
    for name, spec in data.items():
        key = f"params.{name}"
        if name not in searchable():
            check.fail(key, f"unknown parameter (searchable: {', '.join(searchable())})")
        check.mapping(spec, key)
        kind = spec.get("type")
        if kind not in ("int", "float", "categorical"):
            check.fail(f"{key}.type", f"must be int, float or categorical, got {kind!r}")
        if kind == "categorical":
            check.known(spec, ("type", "choices"), f"{key}.")
            choices = spec.get("choices")
            if not isinstance(choices, list):
                check.fail(f"{key}.choices", f"must be a list, got {choices!r}")
            if not choices:
                check.fail(f"{key}.choices", "is empty: give at least one choice")
            params.append(
                Param(
                    name,
                    "categorical",
                    choices=tuple(tuple(c) if isinstance(c, list) else c for c in choices),
                )
            )
            continue
        check.known(spec, ("type", "low", "high", "step", "log"), f"{key}.")
        bounds = {}
        for bound in ("low", "high"):
            if bound not in spec:
                check.fail(f"{key}.{bound}", "missing")
            value = spec[bound]
            ok = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
            if isinstance(value, bool) or not ok:
                check.fail(
                    f"{key}.{bound}",
                    f"must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}",
                )
            bounds[bound] = value
        if bounds["low"] > bounds["high"]:
            check.fail(key, f"low ({bounds['low']}) is greater than high ({bounds['high']})")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            check.fail(f"{key}.log", f"must be true or false, got {log!r}")
        if log and bounds["low"] <= 0:
            check.fail(f"{key}.log", f"a log range needs low > 0, got low={bounds['low']}")
        step = spec.get("step")
        if step is not None and (
            isinstance(step, bool) or not isinstance(step, int | float) or step <= 0
        ):
            check.fail(f"{key}.step", f"must be a positive number, got {step!r}")
        if step is not None and log:
            check.fail(f"{key}.step", "cannot be combined with log: true (Optuna forbids it)")
        params.append(Param(name, kind, low=bounds["low"], high=bounds["high"], step=step, log=log))
    return tuple(params)


def _parse_fixed(check: _Checker, data, allowed, section: str, build) -> dict:
    data = data or {}
    check.mapping(data, section)
    check.known(data, allowed, f"{section}.")
    try:
        build(dict(data))
    except (ValueError, TypeError) as exc:
        check.fail(section, str(exc))
    return dict(data)


def _parse_points(check: _Checker, points, params: tuple[Param, ...]) -> tuple[dict, ...]:
    if not isinstance(points, list):
        check.fail("initial_points", f"must be a list of mappings, got {points!r}")
    by_name = {p.name: p for p in params}
    parsed = []
    for i, point in enumerate(points):
        check.mapping(point, f"initial_points[{i}]")
        for name, value in point.items():
            if name not in by_name:
                check.fail(f"initial_points[{i}].{name}", "is not a searched parameter")
            param = by_name[name]
            if param.type == "categorical":
                normalized = tuple(value) if isinstance(value, list) else value
                if normalized not in param.choices:
                    check.fail(
                        f"initial_points[{i}].{name}", f"{value!r} is not one of the choices"
                    )
            elif not param.low <= value <= param.high:
                check.fail(
                    f"initial_points[{i}].{name}",
                    f"{value!r} is outside [{param.low}, {param.high}]",
                )
        parsed.append({name: by_name[name].encode(v) for name, v in point.items()})
    return tuple(parsed)
