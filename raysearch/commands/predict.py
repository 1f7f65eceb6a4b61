"""``raysearch predict CHECKPOINT FILE_OR_FOLDER...`` (``python -m raysearch.predict``): the
top genres of audio files, or of every audio file under a folder, with a trained checkpoint or
a search's ``ensemble.json`` (its members' probabilities averaged with its weights;
:mod:`raysearch.inference`); no Ray."""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial

import numpy as np

from raysearch.access import check_location
from raysearch.commands.options import fail, program
from raysearch.data.spectrogram import SpectrogramConfig
from raysearch.errors import UserError
from raysearch.inference import audio_files, load_ensemble_models, predict_ensemble, predict_file


def main(argv: list[str] | None = None) -> int:
    from raysearch.training.checkpoint import load_checkpoint

    parser = argparse.ArgumentParser(
        prog=program("predict"),
        description="Classify audio files with a trained SE-CNN checkpoint (a run folder's "
        "checkpoint/ or its model.pt), or with a search's ensemble.json (the weighted average "
        "of its members' probabilities); prints the top genres with probabilities per file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        help="checkpoint folder or model.pt (a path, or the s3:// URI a leaderboard names), or "
        "a search's ensemble.json",
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="audio files, or folders of them (any depth)"
    )
    parser.add_argument("--top", type=int, default=3, help="genres to print per file")
    args = parser.parse_args(argv)
    try:
        check_location(args.checkpoint, "CHECKPOINT")
        if args.checkpoint.endswith(".json"):
            ensemble = load_ensemble_models(args.checkpoint)
            labels, settings = ensemble.labels, ensemble.spectrogram
            classify = partial(predict_ensemble, ensemble)
        else:
            model, payload = load_checkpoint(args.checkpoint)
            labels, settings = payload["labels"], payload.get("spectrogram", {})
            classify = partial(predict_file, model)
    except UserError as exc:
        return fail(str(exc))
    except (FileNotFoundError, KeyError, RuntimeError) as exc:
        return fail(f"{args.checkpoint}: cannot load checkpoint ({exc})")
    try:
        config = SpectrogramConfig(**settings)
    except (TypeError, ValueError) as exc:
        return fail(f"{args.checkpoint}: unusable spectrogram settings ({exc})")
    try:
        files = audio_files(args.files)
    except UserError as exc:
        return fail(str(exc))
    failures = 0
    for path in files:
        try:
            probs = classify(path, config)
        except (OSError, ValueError) as exc:
            print(f"{path}: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        order = np.argsort(probs)[::-1][: args.top]
        ranked = ", ".join(f"{labels[i]} {probs[i]:.3f}" for i in order)
        try:
            print(f"{path}: {ranked}", flush=True)
        except BrokenPipeError:  # the reader has gone (``| head``): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            break
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
