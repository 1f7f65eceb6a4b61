"""The hyperparameter search: ``run`` (Ray Tune + Optuna over a space's trials), the space and
its dimensions, the profiles of the embedded default, the searchers that hold twins back and
repeat seeds, the cache of finished networks, the study's tracking, and how trials meet the
GPUs (demand, share, packing, monitoring, MPS). ``docs/architecture.md`` has the map."""
