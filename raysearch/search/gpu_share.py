"""``resources.gpu: auto``, decided once before a search's first trial: each trial asks for 1/K
of a GPU, K from :func:`raysearch.search.packing.trials_per_gpu` for the GPU's memory, the
shards' split sizes and the space's largest network at its largest batch size.

The GPU's memory comes from, first found:

1. what the cluster's GPU node types (or GPU nodes already up) declare: the resource
   ``gpu_memory_gib`` (:data:`raysearch.search.gpu_demand.GPU_MEMORY_RESOURCE`;
   ``cluster/gpu.yaml``), so that K is known before the autoscaler has started a GPU node;
2. this machine's GPU, when the driver has one (a one-machine search);
3. a GPU of the running cluster, read by a short task holding a whole GPU.

Otherwise the search stops with one line saying what to declare.
"""

from __future__ import annotations

import dataclasses
import itertools

from raysearch.errors import UserError
from raysearch.search.gpu_demand import GPU_MEMORY_RESOURCE, GpuCapacity
from raysearch.search.packing import GIB, Network, Splits, trial_memory, trials_per_gpu
from raysearch.search.space import AUTO, SearchSpace, parse_space

# searched dimensions that change a trial's memory; the others are sampled at one value
MEMORY_DIMENSIONS = ("channels", "width", "batch_size", "head", "dropout", "se_blocks")


class GpuMemoryUnknown(UserError):
    """``resources.gpu: auto`` where no GPU's memory can be found."""


@dataclasses.dataclass(frozen=True)
class GpuMemory:
    bytes: int
    source: str  # the GPU's name and where it was read
    cpus_per_gpu: float  # CPUs of its node per GPU (0: unknown)


def gpu_memory(capacity: GpuCapacity | None) -> GpuMemory:
    """The memory of the GPUs trials will run on (see the module docstring for the order)."""
    if capacity is not None and capacity.gpu_memory_gib:
        return GpuMemory(
            int(capacity.gpu_memory_gib * GIB),
            f"declared by the GPU nodes' {GPU_MEMORY_RESOURCE}",
            capacity.cpus_per_gpu,
        )
    import torch

    if torch.cuda.is_available():  # device properties only: no CUDA context in the driver
        properties = torch.cuda.get_device_properties(0)
        cpus = capacity.cpus_per_gpu if capacity else 0.0
        return GpuMemory(properties.total_memory, f"{properties.name} (this machine's)", cpus)
    if capacity is not None and capacity.present > 0:
        return _probe_a_gpu()
    raise GpuMemoryUnknown(
        "resources.gpu: auto needs the GPU's memory, and no GPU is up or declares it: declare "
        f"'{GPU_MEMORY_RESOURCE}: <GiB>' in the GPU node type's resources (cluster/gpu.yaml), "
        "or give --trials-per-gpu K"
    )


def _gpu_properties() -> tuple[int, str, str]:
    import ray
    import torch

    properties = torch.cuda.get_device_properties(0)
    return properties.total_memory, properties.name, ray.get_runtime_context().get_node_id()


def _probe_a_gpu() -> GpuMemory:
    """A GPU of the cluster, read by a one-off task (its process ends with it)."""
    import ray

    task = ray.remote(num_cpus=0, num_gpus=1, max_calls=1)(_gpu_properties)
    total, name, node_id = ray.get(task.remote(), timeout=300)
    node = next(n["Resources"] for n in ray.nodes() if n["NodeID"] == node_id)
    cpus = float(node.get("CPU", 0)) / max(float(node.get("GPU", 1)), 1.0)
    return GpuMemory(total, f"{name} (read on a GPU node)", cpus)


def network_of(model, train, compiled: bool) -> Network:
    """What the packing arithmetic needs of one configuration (a ``ModelConfig`` and a
    ``TrainConfig``), ``compiled`` or eager."""
    from raysearch.model import SECNN, count_parameters

    return Network(
        channels=model.channels,
        input_shape=model.input_shape,
        parameters=count_parameters(SECNN(model)),
        se_blocks=model.se_blocks,
        dropout=model.dropout,
        batch_size=train.batch_size,
        eval_batch_size=train.eval_batch,
        kernels=train.kernels_for("default" if compiled else "off"),
        compiled=compiled,
        amp=train.amp,
    )


def largest_trial(space: SearchSpace, base_model, splits: Splits, on_gpu: bool = True):
    """The :class:`~raysearch.search.packing.TrialMemory` of the space's most demanding
    configuration: every combination of the memory-relevant parameters' extremes (a range's
    ends, every choice), the rest at their first value."""
    from raysearch.training.data import sized_as

    options = {}
    for param in space.params:
        if param.type == "categorical":
            values = [param.encode(c) for c in param.choices]
        else:
            values = [param.low, param.high]
        options[param.name] = values if param.name in MEMORY_DIMENSIONS else values[:1]
    largest = None
    for combination in itertools.product(*options.values()):
        model, train = space.configs_for(dict(zip(options, combination, strict=True)))
        model = sized_as(model, base_model)
        network = network_of(model, train, compiled=train.compile_mode(on_gpu) != "off")
        train_segments = splits.train
        if train.max_train_segments:
            train_segments = min(train_segments, train.max_train_segments)
        memory = trial_memory(network, dataclasses.replace(splits, train=train_segments))
        if largest is None or memory.total > largest.total:
            largest = memory
    return largest


def split_sizes(shards: str) -> Splits:
    from raysearch.data.pipeline import read_manifest

    counts = read_manifest(shards)["counts"]["segments"]
    return Splits(**{split: int(counts.get(split, 0)) for split in ("train", "val", "test")})


def decide_gpu_share(
    space: SearchSpace, shards: str, capacity: GpuCapacity | None
) -> tuple[SearchSpace, str]:
    """``space`` with its ``resources.gpu: auto`` replaced by 1/K, and a line saying why
    (unchanged, and "", without auto). The space's ``raw`` keeps ``auto``: a resumed search
    decides again, for the GPUs it then runs on."""
    from raysearch.training.data import model_config_for

    if space.resources.gpu != AUTO:
        return space, ""
    gpu = gpu_memory(capacity)
    trial = largest_trial(space, model_config_for(shards), split_sizes(shards))
    packing = trials_per_gpu(
        gpu.bytes, trial, cpus=gpu.cpus_per_gpu or None, cpus_per_trial=space.resources.cpu
    )
    raw = {**space.raw, "resources": {**(space.raw.get("resources") or {})}}
    raw["resources"]["gpu"] = 1 / packing.trials
    resolved = parse_space(raw, space.source, default_name=space.name)
    line = f"resources.gpu: auto: {packing.describe()}; GPU memory: {gpu.source}"
    return dataclasses.replace(resolved, raw=space.raw), line
