"""Search-space files: the schema's defaults, every shipped file, and each bad-YAML case."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysearch.search.space import AUTO, SpaceError, load_space, parse_space, scale_width

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_schema_defaults(tmp_path):
    space = load_space(write(tmp_path, "params:\n  ratio: {type: float, low: 4, high: 32}\n"))
    assert space.name == "space"
    assert (space.metric, space.mode, space.trials, space.repeats) == ("best_val_acc", "max", 50, 1)
    assert (space.sampler, space.seed, space.scheduler.type) == ("tpe", 0, "none")
    assert (space.resources.workers, space.resources.cpu, space.resources.gpu) == (1, 1.0, 1.0)
    model, train = space.configs_for({"ratio": 31.43})
    assert model.ratio == 31.43 and model.channels == (32, 64, 128, 256, 128)
    assert (train.lr, train.epochs) == (1e-3, 30)


@pytest.mark.parametrize("name", ["ratio", "channels", "se_blocks", "joint", "smoke", "augment"])
def test_shipped_spaces_load(name):
    space = load_space(SPACES / f"{name}.yaml")
    assert space.name == name


def test_ratio_space_contains_the_report_values():
    space = load_space(SPACES / "ratio.yaml")
    (ratio,) = space.params
    assert all(ratio.low <= r <= ratio.high for r in (8, 16, 31.43, 32))
    assert space.trials == 50 and space.sampler == "tpe"
    assert space.model["channels"] == [32, 64, 128, 256, 128]


def test_se_blocks_grid_covers_table_5_1_with_seeds():
    space = load_space(SPACES / "se_blocks.yaml")
    assert space.sampler == "grid" and space.trials == 6 and space.repeats == 3
    placements = [
        space.configs_for({"se_blocks": c})[0].se_blocks for c in space.params[0].grid_values()
    ]
    assert placements == [(), (5,), (4, 5), (3, 4, 5), (2, 3, 4, 5), (1, 2, 3, 4, 5)]
    assert [space.configs_for({"se_blocks": "[5]"}, r)[1].seed for r in range(3)] == [0, 1, 2]


def test_width_multiplier_scales_the_channels():
    space = load_space(SPACES / "channels.yaml")
    model, _ = space.configs_for({"channels": "[32, 64, 128, 256, 128]", "width": 1.5})
    assert model.channels == (48, 96, 192, 384, 192)
    assert scale_width(16, 0.1) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "params: {ratio: {type: float, low: 4, high: 32}}\ntrails: 5\n",
            r"space.yaml: trails: unknown key",
        ),
        (
            "params: {ratio: {type: float, low: 64, high: 2}}\n",
            r"space.yaml: params.ratio: low \(64\) is greater than high \(2\)",
        ),
        (
            "params: {lr: {type: float, low: 0, high: 0.1, log: true}}\n",
            r"space.yaml: params.lr.log: a log range needs low > 0",
        ),
        (
            "params: {ratio: {type: float, low: four, high: 32}}\n",
            r"space.yaml: params.ratio.low: must be a number, got 'four'",
        ),
        (
            "params: {ratio: {type: float, low: 4, high: 32}}\ntrials: many\n",
            r"space.yaml: trials: must be an integer, got 'many'",
        ),
        (
            "params: {se_blocks: {type: categorical, choices: []}}\n",
            r"space.yaml: params.se_blocks.choices: is empty",
        ),
        (
            "params: {ratio: {type: normal, low: 4, high: 32}}\n",
            r"space.yaml: params.ratio.type: must be int, float or categorical",
        ),
        (
            "params: {depth: {type: int, low: 1, high: 3}}\n",
            r"space.yaml: params.depth: unknown parameter",
        ),
        (
            "params: {ratio: {type: float, low: 4, high: 32}}\nscheduler: {type: asha, grace: 1}\n",
            r"space.yaml: scheduler.grace: unknown key",
        ),
        (
            "params: {ratio: {type: float, low: 4, high: 32}}\nsampler: cmaes\n",
            r"space.yaml: sampler: must be one of tpe, gp, random, grid",
        ),
        (
            "params: {ratio: {type: float, low: 4, high: 32}}\ntrain: {epochs: 0}\n",
            r"space.yaml: train: invalid training setting epochs=0",
        ),
        (
            "params: {ratio: {type: float, low: 4, high: 32}}\nmodel: {ratio: 8}\n",
            r"space.yaml: params.ratio: is both searched and fixed",
        ),
        ("trials: 3\n", r"space.yaml: params: missing"),
        (
            "params: {ratio: {type: float, low: 4, high: 32}\n",
            r"space.yaml: line \d+ not valid YAML",
        ),
        ("params: !!python/object/apply:os.system ['true']\n", r"space.yaml:.* not valid YAML"),
        (
            "params: {ratio: {type: float, low: 4, high: 32}}\ninitial_points: [{ratio: 100}]\n",
            r"initial_points\[0\].ratio: 100 is outside",
        ),
    ],
)
def test_bad_space_files_fail_with_one_named_message(tmp_path, text, message):
    with pytest.raises(SpaceError, match=message) as caught:
        load_space(write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SpaceError, match=r"absent.yaml: cannot read"):
        load_space(tmp_path / "absent.yaml")


def test_overrides_keep_validation():
    space = load_space(SPACES / "ratio.yaml").with_overrides(trials=4, epochs=2)
    assert space.trials == 4 and space.train["epochs"] == 2
    assert space.raw["trials"] == 4
    with pytest.raises(SpaceError, match="--trials must be at least 1"):
        space.with_overrides(trials=0)


def test_trials_per_gpu_sets_each_trials_share_of_a_gpu():
    from raysearch.search.run import concurrency_for

    space = load_space(SPACES / "ratio.yaml")  # gpu: auto
    eight = space.with_overrides(trials_per_gpu=8)
    assert eight.resources.gpu == 0.125 and eight.raw["resources"]["gpu"] == 0.125
    assert concurrency_for(eight, cpus=16, gpus=1) == 8
    with pytest.raises(SpaceError, match="--trials-per-gpu must be at least 1"):
        space.with_overrides(trials_per_gpu=0)
    ddp = parse_space({**space.raw, "resources": {"workers": 2, "gpu": 1}}, "ddp.yaml")
    with pytest.raises(SpaceError, match=r"--trials-per-gpu 4: ddp.yaml trains each trial on 2"):
        ddp.with_overrides(trials_per_gpu=4)
    cpu_only = parse_space({**space.raw, "resources": {"gpu": 0}}, "cpu.yaml")
    with pytest.raises(SpaceError, match=r"--trials-per-gpu: cpu.yaml is CPU-only"):
        cpu_only.with_overrides(trials_per_gpu=2)


def test_packaged_gpu_spaces_pack_trials_by_memory():
    for name in ("ratio", "channels", "se_blocks", "augment", "joint"):
        space = load_space(SPACES / f"{name}.yaml")
        assert space.resources.gpu == AUTO, name
        assert space.resources.gpu_share == 1.0  # until decided (raysearch.search.gpu_share)
        _, train = space.configs_for({})
        assert train.gpus_per_worker == 1.0


def test_trials_per_gpu_auto_gives_way_to_a_number_the_space_sets():
    space = load_space(SPACES / "ratio.yaml")
    quarter = space.with_overrides(trials_per_gpu=4)
    assert quarter.with_overrides(trials_per_gpu=AUTO).resources.gpu == 0.25
    unset = parse_space({**space.raw, "resources": {"cpu": 1}}, "unset.yaml")
    assert unset.resources.gpu == 1.0
    assert unset.with_overrides(trials_per_gpu=AUTO).resources.gpu == AUTO
    assert space.with_overrides(trials_per_gpu=AUTO).resources.gpu == AUTO
    ddp = parse_space({**space.raw, "resources": {"workers": 2, "gpu": 1}}, "ddp.yaml")
    with pytest.raises(SpaceError, match=r"--trials-per-gpu auto: ddp.yaml trains each trial"):
        ddp.with_overrides(trials_per_gpu=AUTO)
    cpu_only = parse_space({**space.raw, "resources": {"gpu": 0}}, "cpu.yaml")
    with pytest.raises(SpaceError, match=r"--trials-per-gpu: cpu.yaml is CPU-only"):
        cpu_only.with_overrides(trials_per_gpu=AUTO)


def test_gpu_auto_is_for_one_worker_trials_and_other_words_are_refused():
    raw = load_space(SPACES / "ratio.yaml").raw
    with pytest.raises(SpaceError, match=r"ddp.yaml: resources.gpu: auto packs one-worker"):
        parse_space({**raw, "resources": {"workers": 2, "gpu": "auto"}}, "ddp.yaml")
    with pytest.raises(SpaceError, match=r"resources.gpu: must be a number or auto, got 'max'"):
        parse_space({**raw, "resources": {"gpu": "max"}}, "bad.yaml")


def test_a_test_metric_or_unknown_metric_is_rejected(tmp_path):
    base = "params:\n  ratio: {type: float, low: 4, high: 32}\n"
    with pytest.raises(SpaceError, match=r"metric: 'test_acc' cannot be optimised"):
        load_space(write(tmp_path, "metric: test_acc\n" + base))
    with pytest.raises(SpaceError, match=r"metric: 'accuracy' cannot be optimised"):
        load_space(write(tmp_path, "metric: accuracy\n" + base))


def test_the_mode_follows_the_metric(tmp_path):
    base = "params:\n  ratio: {type: float, low: 4, high: 32}\n"
    space = load_space(write(tmp_path, "metric: val_loss\n" + base))
    assert space.mode == "min"
    with pytest.raises(SpaceError, match="mode: val_loss is minimised: mode must be min"):
        load_space(write(tmp_path, "metric: val_loss\nmode: max\n" + base))


def test_a_name_is_an_identifier_not_a_path(tmp_path):
    base = "params:\n  ratio: {type: float, low: 4, high: 32}\n"
    with pytest.raises(SpaceError, match=r"name: '\.\./\.\./etc' must be letters"):
        load_space(write(tmp_path, "name: ../../etc\n" + base))
    with pytest.raises(SpaceError, match="--name"):
        load_space(write(tmp_path, base)).renamed("a b")


def test_repeats_with_asha_are_rejected(tmp_path):
    text = (
        "repeats: 3\nscheduler: {type: asha}\nparams:\n  ratio: {type: float, low: 4, high: 32}\n"
    )
    with pytest.raises(SpaceError, match="repeats: 3 repeats with scheduler asha"):
        load_space(write(tmp_path, text))


@pytest.mark.parametrize(
    "section, problem",
    [
        ("model:\n  head: conv\n", "head must be one of dense, gap"),
        ("train:\n  freq_masks: -1\n", "freq_masks"),
        ("train:\n  mixup_alpha: -0.5\n", "mixup_alpha"),
        ("params:\n  head: {type: categorical, choices: [dense, mlp]}\n", "head"),
    ],
)
def test_new_dimensions_are_validated_like_the_rest(tmp_path, section, problem):
    params = (
        ""
        if section.startswith("params")
        else "params:\n  ratio: {type: float, low: 4, high: 32}\n"
    )
    with pytest.raises(SpaceError, match=problem):
        load_space(write(tmp_path, section + params))


def test_augmentation_dimensions_reach_the_training_config():
    space = load_space(SPACES / "augment.yaml")
    model, train = space.configs_for(
        {"head": "gap", "freq_masks": 2, "time_masks": 0, "mixup_alpha": 0.2}
    )
    assert model.head == "gap" and (model.ratio, model.channels[0]) == (16, 32)
    assert (train.freq_masks, train.freq_width, train.time_masks, train.mixup_alpha) == (
        2,
        27,
        0,
        0.2,
    )
