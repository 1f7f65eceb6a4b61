"""The training settings of one configuration (everything but the network)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from raysearch.errors import UserError
from raysearch.ops import KERNELS

COMPILE_MODES = ("off", "auto", "default", "reduce-overhead")
KERNEL_CHOICES = ("auto", *KERNELS)


class TrainConfigError(UserError):
    """A training setting is out of range; the message names it."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 32  # per worker (report §5.1)
    lr: float = 1e-3  # Adam, report §5.1
    weight_decay: float = 0.0
    patience: int = 5  # epochs without a lower validation loss before stopping; 0 = never
    seed: int = 0
    workers: int = 1  # 1: the loop runs in the trial's process; > 1: a Ray Train DDP group
    use_gpu: bool | None = None  # None: decided by the caller (raysearch.search.gpu_demand)
    cpus_per_worker: float = 1.0  # CPUs each worker (or one-worker trial) reserves in Ray
    torch_threads: int = 0  # CPU threads per worker; 0 = as many as the CPUs it reserves
    compile_threads: int = 0  # Inductor's compile workers; 0 = as many as the CPUs it reserves
    gpus_per_worker: float = 1.0  # fractions let several one-worker trials share a GPU
    max_train_segments: int = 0  # 0 = all; > 0 subsamples the train split (smoke tests)
    freq_masks: int = 0  # SpecAugment (Park et al. 2019) frequency masks per segment
    freq_width: int = 0  # widest frequency mask (bins)
    time_masks: int = 0  # SpecAugment time masks per segment
    time_width: int = 0  # widest time mask (frames)
    mixup_alpha: float = 0.0  # mixup (Zhang et al. 2018) Beta(alpha, alpha); 0 = off
    eval_batch_size: int = 0  # 0 = 256 (larger batches cost GPU memory in conv 1's output)
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPUs)
    channels_last: bool = True  # NHWC activations on CUDA (ignored on CPUs)
    # torch.compile mode: off | auto (default on CUDA, off on CPUs) | default | reduce-overhead
    compile: str = "off"
    # how each block's conv → ReLU → max-pool runs (raysearch.ops; the same function each way):
    # auto (select when compiled, aten when eager) | aten | select | select-conv1 |
    # triton-conv1 (block 1 in a Triton kernel pair, CUDA);
    # docs/performance.md says which is fastest where
    kernels: str = "auto"

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "patience": self.patience >= 0,
            "workers": self.workers >= 1,
            "cpus_per_worker": self.cpus_per_worker > 0,
            "torch_threads": self.torch_threads >= 0,
            "compile_threads": self.compile_threads >= 0,
            "gpus_per_worker": self.gpus_per_worker > 0,
            "max_train_segments": self.max_train_segments >= 0,
            "freq_masks": self.freq_masks >= 0,
            "freq_width": self.freq_width >= 0,
            "time_masks": self.time_masks >= 0,
            "time_width": self.time_width >= 0,
            "mixup_alpha": self.mixup_alpha >= 0,
            "eval_batch_size": self.eval_batch_size >= 0,
            "compile": self.compile in COMPILE_MODES,
            "kernels": self.kernels in KERNEL_CHOICES,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise TrainConfigError(f"invalid training setting {bad[0]}={getattr(self, bad[0])!r}")

    @property
    def eval_batch(self) -> int:
        """Segments per evaluation batch: ``eval_batch_size``, 0 meaning 256."""
        return self.eval_batch_size or 256

    def compile_mode(self, on_gpu: bool) -> str:
        """The torch.compile mode a run on a GPU (``on_gpu``) or on CPUs uses: ``auto``
        compiles on CUDA only, where compiled trials train faster; on CPUs a compile costs
        tens of seconds per network and the step is no faster (docs/performance.md)."""
        if self.compile == "auto":
            return "default" if on_gpu else "off"
        return self.compile

    def kernels_for(self, compile_mode: str) -> str:
        """The kernels a run with ``compile_mode`` (:meth:`compile_mode`'s answer) uses:
        ``auto`` is ``select`` when compiled (one step's GPU time 2.36 ms instead of ATen's
        2.82 on an H200, 1.78x ATen's step on 2 CPU cores) and ``aten`` when eager, where
        ``select``'s slices cost more than they save (docs/performance.md)."""
        if self.kernels == "auto":
            return "aten" if compile_mode == "off" else "select"
        return self.kernels

    def to_dict(self) -> dict:
        return asdict(self)

    def threads(self) -> int:
        """torch CPU threads for one worker."""
        return self.torch_threads or max(1, int(self.cpus_per_worker))

    def compile_workers(self) -> int:
        """Inductor compile workers for one worker: the CPUs it reserves, unless set (the
        search's compile warm-up gives its one task the whole node)."""
        return self.compile_threads or max(1, int(self.cpus_per_worker))
