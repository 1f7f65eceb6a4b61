"""GPU demand that an autoscaler sees: whether a search's trials ask for GPUs, decided once,
before any trial starts.

A cluster started by ``ray up`` may have no GPU at all until trials ask for one (GPU worker
types with ``min_workers: 0``). Looking only at ``ray.cluster_resources()`` would then never ask,
and the autoscaler would never add a GPU node. So the decision also reads the autoscaler's
node types: from the GCS when the autoscaler reports them there (``get_cluster_config``, e.g.
KubeRay), else from the head node's autoscaling config (the ``--autoscaling-config`` file of
the autoscaler process, ``~/ray_bootstrap_config.yaml`` on a ``ray up`` cluster, the file Ray's
own Tune and usage statistics read), through a zero-CPU task pinned to the head.
"""

from __future__ import annotations

from dataclasses import dataclass

from raysearch.errors import UserError

HEAD_NODE_RESOURCE = "node:__internal_head__"  # Ray's marker resource of the head node
# a GPU node type's memory per GPU in GiB, declared as a resource (cluster/gpu.yaml), read
# for resources.gpu: auto before the node exists (raysearch.search.gpu_share)
GPU_MEMORY_RESOURCE = "gpu_memory_gib"
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


class GpuUnavailable(UserError):
    """GPUs were asked for where none exist and none can be launched."""


@dataclass(frozen=True)
class GpuCapacity:
    present: float  # GPUs in the cluster now
    launchable: float  # GPUs the autoscaler can add (GPUs per node x max nodes, summed)
    node_types: tuple[str, ...] = ()  # the worker node types that bring GPUs
    source: str = ""  # where the node types were read ("" when no autoscaler was found)
    # the smallest GPU memory (GiB) and CPUs per GPU that GPU node types or nodes declare (0:
    # none declares it)
    gpu_memory_gib: float = 0.0
    cpus_per_gpu: float = 0.0

    @property
    def total(self) -> float:
        """The most GPUs the cluster can have at once: what it has, or what its autoscaler can
        launch if that is more (nodes already launched count in both, so they are not added;
        a head node with GPUs of its own beside autoscaled GPU types is undercounted)."""
        return max(self.present, self.launchable)

    def describe(self) -> str:
        where = f" (node types from {self.source})" if self.source else " (no autoscaler found)"
        types = ", ".join(self.node_types) or "none"
        return (
            f"{self.present:g} GPU(s) now, up to {self.launchable:g} from autoscaled node types "
            f"[{types}]{where}"
        )


def launchable_gpus(config: dict) -> tuple[float, tuple[str, ...]]:
    """GPUs an autoscaling config can launch, and the node types that bring them.

    ``config`` is a cluster-launcher config (``available_node_types``, ``head_node_type``,
    ``max_workers``); a node type counts when it declares ``resources.GPU`` > 0 and may have
    at least one node (``max_workers``, capped by the cluster's ``max_workers``).
    """
    types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    cluster_max = config.get("max_workers")
    total, names = 0.0, []
    for name, node_type in types.items():
        if name == head or not isinstance(node_type, dict):
            continue
        gpus = float((node_type.get("resources") or {}).get("GPU", 0) or 0)
        count = node_type.get("max_workers", cluster_max or 0) or 0
        if cluster_max is not None:
            count = min(count, cluster_max)
        if gpus > 0 and count > 0:
            total += gpus * count
            names.append(name)
    return total, tuple(names)


def declared_gpu_sizes(node_resources: list[dict]) -> tuple[float, float]:
    """(GiB of memory per GPU, CPUs per GPU) of the smallest of these nodes' or node types'
    ``resources`` that have GPUs; 0 where none declares it."""
    gpu_nodes = [r for r in node_resources if float(r.get("GPU", 0) or 0) > 0]
    memory = [float(r[GPU_MEMORY_RESOURCE]) for r in gpu_nodes if r.get(GPU_MEMORY_RESOURCE)]
    cpus = [float(r["CPU"]) / float(r["GPU"]) for r in gpu_nodes if r.get("CPU")]
    return min(memory, default=0.0), min(cpus, default=0.0)


def node_type_resources(config: dict) -> list[dict]:
    """The ``resources`` of an autoscaling config's worker node types."""
    types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    return [
        dict(t.get("resources") or {})
        for name, t in types.items()
        if name != head and isinstance(t, dict)
    ]


def _from_gcs() -> dict | None:
    """Node types the autoscaler reported to the GCS, as a launcher-style config."""
    try:
        import ray._private.state

        reported = ray._private.state.state.get_cluster_config()
    except Exception:  # noqa: BLE001 - an older GCS or no autoscaler: nothing reported
        return None
    if reported is None or not reported.node_group_configs:
        return None
    types = {}
    for group in reported.node_group_configs:
        count = group.max_count if group.max_count >= 0 else 1_000_000
        types[group.name] = {"resources": dict(group.resources), "max_workers": count}
    return {"available_node_types": types}


def read_head_autoscaling_config() -> tuple[dict | None, str]:
    """On the head node: the config file the autoscaler process was started with, or
    ``~/ray_bootstrap_config.yaml``; ``(None, "")`` when there is neither."""
    import os

    import psutil
    import yaml

    candidates = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if not any("monitor.py" in part for part in cmdline):
            continue
        for part in cmdline:
            if part.startswith("--autoscaling-config="):
                candidates.append(part.split("=", 1)[1])
    candidates.append(BOOTSTRAP_CONFIG)
    for candidate in candidates:
        path = os.path.expanduser(candidate)
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    return yaml.safe_load(f), path
            except (OSError, yaml.YAMLError):
                continue
    return None, ""


def gpu_capacity() -> GpuCapacity:
    """GPUs of the running Ray cluster, now and launchable."""
    import ray

    present = float(ray.cluster_resources().get("GPU", 0))
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    config, source = _from_gcs(), "the GCS"
    if config is None:
        task = ray.remote(num_cpus=0, resources={HEAD_NODE_RESOURCE: 0.001})(
            read_head_autoscaling_config
        )
        config, source = ray.get(task.remote())
    if not config:
        return GpuCapacity(present, 0.0, (), "", *declared_gpu_sizes(nodes))
    launchable, types = launchable_gpus(config)
    sizes = declared_gpu_sizes(node_type_resources(config) + nodes)
    return GpuCapacity(present, launchable, types, source, *sizes)


def resolve_use_gpu(
    requested: bool | None, what: str = "--gpu", capacity: GpuCapacity | None = None
) -> bool:
    """Whether trials ask for GPUs: ``requested`` when given, else when the cluster has or can
    launch one. ``requested=True`` where neither holds raises :class:`GpuUnavailable`, so a
    search never waits forever for a GPU that cannot come."""
    if requested is False:
        return False
    capacity = capacity or gpu_capacity()
    if capacity.total > 0:
        return True
    if requested:
        raise GpuUnavailable(
            f"{what}: this Ray cluster has no GPU and cannot launch one: {capacity.describe()}"
        )
    return False
