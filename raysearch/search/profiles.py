"""Profiles of the embedded default: the synthetic set and a search sized for a machine.

``cpu`` is the CPU demonstration behind the README's main command (``raysearch tune --space
ratio --profile cpu``): on 2 cores, cold, it finishes in a few minutes and its models learn
(measured in docs/performance.md). To get there it changes what a GPU search keeps: the synthetic
set is 100 clips of 6 s per genre in 32 log-mel bands (instead of 20 clips as 513-bin STFTs),
the network runs at half width, training runs 14 epochs at lr 3e-3 without early stopping,
and 4 configurations are tried. What the space searches stays searched (a profile never
fixes a searched parameter); its numbers are a synthetic demonstration, never GTZAN claims.

A space's fixed frequency-mask width is in bins of the input the space was written for (the
packaged spaces: up to 27 of 128 log-mel bands or 513 STFT bins). On the profile's 32 bands
the same width blanked most of a segment, so the profile scales it with its band count
(before and after: results/README.md, ``results/augment``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from raysearch.data.defaults import SyntheticSet
from raysearch.data.spectrogram import SpectrogramConfig
from raysearch.model import DEFAULT_CHANNELS
from raysearch.search.space import SearchSpace, parse_space, scale_width


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    synthetic: SyntheticSet  # the synthetic set it trains on
    spectrogram: SpectrogramConfig  # how its shards are made
    train: dict = field(default_factory=dict)  # fixed training settings (unless searched)
    width: float = 1.0  # multiplies the space's fixed channel widths (unless searched)
    trials: int | None = None  # configurations (not for grids), unless --trials says otherwise
    # multiplies the space's fixed frequency-mask width (unless searched): the profile's
    # frequency bins over the 128 log-mel bands the packaged spaces' widths are sized for
    freq_scale: float = 1.0

    def apply(self, space: SearchSpace, trials: int | None = None) -> SearchSpace:
        """``space`` with this profile's settings, named ``<space>-<profile>``."""
        raw = json.loads(json.dumps(space.raw))
        searched = set(space.param_names)
        train = raw.setdefault("train", {})
        train.update({k: v for k, v in self.train.items() if k not in searched})
        if self.freq_scale != 1.0 and "freq_width" not in searched and train.get("freq_width"):
            train["freq_width"] = max(1, round(train["freq_width"] * self.freq_scale))
        if self.width != 1.0 and not searched & {"channels", "width"}:
            model = raw.setdefault("model", {})
            base = model.get("channels", DEFAULT_CHANNELS)
            model["channels"] = [scale_width(c, self.width) for c in base]
        if trials or (self.trials and space.sampler != "grid"):  # a grid keeps its size
            raw["trials"] = trials or self.trials
        raw["name"] = f"{space.name}-{self.name}"
        return parse_space(raw, f"{space.source} (profile {self.name})", default_name=raw["name"])


PROFILES = {
    "cpu": Profile(
        name="cpu",
        summary="a CPU demonstration: synthetic 100 clips x 6 s per genre in 32 log-mel bands, "
        "the network at half width, 14 epochs at lr 3e-3, 4 trials, frequency masks a quarter "
        "as wide",
        synthetic=SyntheticSet(clips_per_genre=100, duration=6.0),
        spectrogram=SpectrogramConfig(features="mel", n_mels=32),
        train={"epochs": 14, "lr": 0.003, "patience": 0},
        width=0.5,
        trials=4,
        freq_scale=32 / 128,  # 27 bins of 128 mel bands -> 7 of 32
    ),
}
