"""Training one SE-CNN configuration: one loop, device-agnostic, with its reporting injected.

``config`` (TrainConfig), ``data`` (the splits as arrays), ``feeds`` (device-resident
batches), ``evaluate`` (segment and track metrics), ``checkpoint`` (the checkpoint file),
``loop`` (the training loop), ``runner`` (where the loop runs: a Tune trial's own process or
a Ray Train worker group), ``run_folder`` (what ``raysearch.commands.train`` writes).
"""
