"""The ``raysearch`` command: ``raysearch synth|prepare|train|tune|leaderboard|ensemble|predict|
baseline|cluster``, each with exactly the options of ``python -m raysearch.<command>`` (which keeps
working)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "synth": (
        "raysearch.commands.synth",
        "generate the synthetic mini-GTZAN (real WAVs, GTZAN layout)",
    ),
    "prepare": ("raysearch.commands.prepare", "audio -> Parquet spectrogram shards with Ray Data"),
    "train": (
        "raysearch.commands.train",
        "train one configuration with Ray Train; write a run folder",
    ),
    "tune": ("raysearch.commands.tune", "search a space with Ray Tune + Optuna; write results/"),
    "leaderboard": ("raysearch.commands.leaderboard", "rebuild results/ from an experiment folder"),
    "ensemble": (
        "raysearch.commands.ensemble",
        "the ensemble of a search's networks, from their kept predictions; rewrite results/",
    ),
    "predict": (
        "raysearch.commands.predict",
        "top genres of audio files with a trained checkpoint",
    ),
    "baseline": (
        "raysearch.commands.baseline",
        "MFCC + logistic regression on the same shards: the classical baseline",
    ),
    "cluster": (
        "raysearch.commands.cluster",
        "cluster check [cluster/gpu.yaml]: can the AWS cluster start? (before ray up)",
    ),
}


def usage() -> str:
    lines = [
        "usage: raysearch COMMAND [options]   (raysearch COMMAND --help for its options)",
        "",
        "Distributed hyperparameter search for SE-CNN music genre classifiers (Ray + Optuna).",
        "",
        "commands:",
    ]
    lines += [f"  {name:<12} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Without --data / --shards every command uses the synthetic mini-GTZAN."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"raysearch: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    sys.argv = [f"raysearch {command}", *rest]  # argparse's prog in --help and errors
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
