"""raysearch: distributed hyperparameter search for SE-CNN music genre classifiers."""

import time as _time

IMPORTED_AT = _time.time()  # when this process first imported raysearch (a trial's start-up)
