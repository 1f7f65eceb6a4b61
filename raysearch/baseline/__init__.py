"""The classical baseline beside every leaderboard: MFCC statistics of each segment, computed
from the shards themselves, and a logistic regression with C chosen on validation; test
segment and track accuracy as the CNN rows report them (docs/accuracy.md).

:mod:`~raysearch.baseline.features` (the numerics), :mod:`~raysearch.baseline.classifier`
(scikit-learn, C on validation), :mod:`~raysearch.baseline.config` (both in one config),
:mod:`~raysearch.baseline.result` (what it found),
:mod:`~raysearch.baseline.cache` (beside the shards), :mod:`~raysearch.baseline.shards`
(a shard folder's baseline, cached). No Ray anywhere.
"""
