"""What the classical baseline computes: its features and its classifier, in one config."""

from __future__ import annotations

from dataclasses import dataclass, field

from raysearch.baseline.classifier import ClassifierConfig
from raysearch.baseline.features import FeatureConfig


@dataclass(frozen=True)
class BaselineConfig:
    """The features and the classifier; every field is part of the cache key."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def to_dict(self) -> dict:
        return {"features": self.features.to_dict(), "classifier": self.classifier.to_dict()}
