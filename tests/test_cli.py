"""The ``raysearch`` command and the help of every subcommand (no Ray started)."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from raysearch.commands.cli import COMMANDS, main


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse's --help and errors
            code = exit_.code
    return code, out.getvalue()


def test_raysearch_lists_its_commands():
    code, text = run("--help")
    assert code == 0
    for name in ("prepare", "train", "tune", "leaderboard", "predict", "synth", "baseline"):
        assert re.search(rf"^  {name} ", text, re.M)


def test_unknown_command_is_one_error():
    code, text = run("serve")
    assert code == 2 and "unknown command 'serve'" in text


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_each_default_once(command):
    code, text = run(command, "--help")
    assert code == 0
    assert text.startswith(f"usage: raysearch {command}")
    assert "(default: None)" not in text
    flat = " ".join(text.split())
    assert not re.search(r"\(default: [^)]*\) \(default:", flat), flat
    assert "(default: (" not in flat  # no Python tuple shown for a list option


def test_an_unknown_space_names_the_packaged_ones(tmp_path):
    from raysearch.search.space import SpaceError, load_space

    with pytest.raises(SpaceError, match="packaged: augment, channels, joint, ratio, se_blocks"):
        load_space("no-such-space")
    assert load_space("ratio").name == "ratio"


def test_tune_no_baseline_skips_the_classical_baseline():
    from raysearch.commands.tune import build_parser

    assert build_parser().parse_args([]).baseline is True
    assert build_parser().parse_args(["--no-baseline"]).baseline is False


def test_trials_per_gpu_takes_a_number_or_auto():
    from raysearch.commands.tune import build_parser

    parser = build_parser()
    assert parser.parse_args(["--trials-per-gpu", "auto"]).trials_per_gpu == "auto"
    assert parser.parse_args(["--trials-per-gpu", "8"]).trials_per_gpu == 8
    code, text = run("tune", "--space", "ratio", "--trials-per-gpu", "many")
    assert code == 2 and "expected a whole number or auto, got 'many'" in text
