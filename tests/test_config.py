"""The validated config: defaults, presets, overrides, exact error messages and a fuzz property."""

from __future__ import annotations

import math
import re
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganstab.cli import main
from ganstab.config import (
    Config,
    ConfigError,
    known_keys,
    parse_override,
    read_yaml,
    to_dict,
    validate,
)
from ganstab.pipeline import load_config
from ganstab.presets import PRESETS


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """load_config picks runs/<name> relative to the working directory: keep it in tmp."""
    monkeypatch.chdir(tmp_path)


def load_quiet(overrides=(), path=None, preset=None) -> Config:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_config(path, list(overrides), preset)


def config_error(overrides=(), path=None, preset=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_quiet(overrides, path, preset)
    return str(info.value)


# ---------------------------------------------------------------- defaults and presets

def test_defaults_load():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults warn about nothing
        cfg = load_config()
    assert cfg.seed == 0
    assert cfg.out == "runs/digits"
    assert cfg.data.name == "digits" and cfg.data.path is None
    assert cfg.model.arch == "mlp" and cfg.model.latent_dim == 64 and cfg.model.hidden is None
    assert (cfg.model.g_norm, cfg.model.d_norm) == ("batch", "spectral")
    assert cfg.loss.kind == "hinge" and (cfg.loss.real_label, cfg.loss.fake_label) == (1.0, 0.0)
    assert (cfg.penalty.gp, cfg.penalty.r1, cfg.penalty.clip, cfg.penalty.drift) == (0.0, 0.0, 0.0, 0.0)
    # TTUR: D gets the larger rate, Adam betas (0, 0.9)
    assert (cfg.optim.name, cfg.optim.g_lr, cfg.optim.d_lr) == ("adam", 1e-4, 4e-4)
    assert cfg.optim.g_betas == (0.0, 0.9) and cfg.optim.d_betas == (0.0, 0.9)
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.n_critic) == (3000, 64, 1)
    assert to_dict(cfg)["optim"]["g_betas"] == [0.0, 0.9]


def test_default_out_skips_taken_folders(tmp_path):
    (tmp_path / "runs" / "digits").mkdir(parents=True)
    (tmp_path / "runs" / "digits" / "config.yaml").write_text("seed: 0\n")
    assert load_quiet().out == "runs/digits-2"
    assert load_quiet(preset="toy").out == "runs/toy"


def test_empty_dict_validates_to_defaults():
    assert validate({}) == Config()


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_loads(name, tmp_path):
    cfg = load_quiet([f"out={tmp_path / name}"], preset=name)
    assert cfg.out == str(tmp_path / name)
    for key, section in PRESETS[name].values.items():
        for leaf, value in section.items():
            got = to_dict(cfg)[key][leaf]
            assert got == value, f"{name}: {key}.{leaf} = {got!r}, preset says {value!r}"


def test_blog_preset_warns_about_two_sided_smoothing():
    with pytest.warns(UserWarning, match=r"loss\.fake_label=0\.1 smooths the fake target: Salimans"):
        load_config(preset="blog")


def test_unknown_preset():
    assert config_error(preset="biggan") == f"unknown preset 'biggan'; known presets: {', '.join(PRESETS)}"


def test_presets_command_lists_each(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == len(PRESETS)
    width = max(len(n) for n in PRESETS)
    for line, (name, preset) in zip(lines, PRESETS.items()):
        assert line == f"{name:<{width}}  {preset.description}"
    for name in ("blog", "dcgan", "wgan-gp", "wgan-clip", "lsgan", "hinge-sn", "toy"):
        assert any(line.split()[0] == name for line in lines)


def test_keys_command_lists_every_key_with_default(capsys):
    assert main(["keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" = ")[0] for line in lines] == known_keys()
    defaults = {line.split("  [")[0] for line in lines}  # each line: key = default  [applies to]  description
    assert "loss.kind = \"hinge\"" in defaults
    assert "optim.d_lr = 0.0004" in defaults
    assert "optim.g_betas = [0.0, 0.9]" in defaults


# ---------------------------------------------------------------- overrides

def test_override_numbers_lists_and_bools():
    assert parse_override("optim.g_lr=1e-4") == {"optim": {"g_lr": 1e-4}}
    assert type(parse_override("optim.g_lr=1e-4")["optim"]["g_lr"]) is float
    assert parse_override("optim.d_lr=4E-4") == {"optim": {"d_lr": 4e-4}}
    assert parse_override("train.steps=200") == {"train": {"steps": 200}}
    assert type(parse_override("train.steps=200")["train"]["steps"]) is int
    assert parse_override("model.hidden=[64, 32]") == {"model": {"hidden": [64, 32]}}
    assert parse_override("log.progress=false") == {"log": {"progress": False}}
    assert parse_override("train.recover=true") == {"train": {"recover": True}}
    assert parse_override("loss.kind=hinge") == {"loss": {"kind": "hinge"}}
    assert parse_override("data.path=/tmp/a=b") == {"data": {"path": "/tmp/a=b"}}
    assert parse_override("data.path=") == {"data": {"path": None}}
    assert parse_override(" seed =3") == {"seed": 3}


def test_overrides_reach_the_config():
    cfg = load_quiet(["optim.g_lr=1e-4", "optim.d_lr=3e-4", "model.arch=mlp", "model.hidden=[64, 32]",
                      "log.progress=false", "train.deterministic=true", "optim.g_betas=[0.5, 0.999]"])
    assert cfg.optim.g_lr == 1e-4 and isinstance(cfg.optim.g_lr, float)
    assert cfg.optim.d_lr == 3e-4
    assert cfg.model.hidden == [64, 32]
    assert cfg.log.progress is False and cfg.train.deterministic is True
    assert cfg.optim.g_betas == (0.5, 0.999)


def test_later_overrides_win_and_merge_with_preset():
    cfg = load_quiet(["train.steps=10", "train.steps=20", "model.width=16"], preset="toy")
    assert cfg.train.steps == 20
    assert cfg.model.width == 16 and cfg.model.depth == 3 and cfg.model.arch == "toy"


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=1", ".a=1"])
def test_malformed_override(text):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    if "=" not in text:
        assert str(info.value) == f"override {text!r} is not key=value; write it like loss.kind=hinge"
    else:
        assert str(info.value) == f"override {text!r} has an empty key; write it like loss.kind=hinge"


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("optim:\n  g_lr: 2e-4\n  d_betas: [0.5, 9e-1]\ntrain:\n  steps: 7\n", encoding="utf-8")
    cfg = load_quiet(["train.steps=9"], path=path)
    assert cfg.optim.g_lr == 2e-4 and cfg.optim.d_betas == (0.5, 0.9)
    assert cfg.train.steps == 9


# ---------------------------------------------------------------- exact error messages

def test_unknown_key_suggests_the_closest():
    assert config_error(["loss.kidn=hinge"]) == (
        "unknown config key 'loss.kidn' (did you mean 'loss.kind'?); run 'ganstab keys' to list the keys"
    )
    assert config_error(["lose.kind=hinge"]) == (
        "unknown config key 'lose' (did you mean 'loss'?); run 'ganstab keys' to list the keys"
    )
    assert config_error(["optim.glr=1e-3"]) == (
        "unknown config key 'optim.glr' (did you mean 'optim.g_lr'?); run 'ganstab keys' to list the keys"
    )


@pytest.mark.parametrize("override,message", [
    ("train.steps=abc",
     "config key 'train.steps': Input should be a valid integer, unable to parse string as an integer, got 'abc'"),
    ("train.steps=1.5",
     "config key 'train.steps': Input should be a valid integer, got a number with a fractional part, got 1.5"),
    ("log.progress=maybe",
     "config key 'log.progress': Input should be a valid boolean, unable to interpret input, got 'maybe'"),
    ("loss.kind=foo",
     "config key 'loss.kind': Input should be 'minimax', 'nonsaturating', 'wasserstein', 'lsgan', 'hinge', "
     "'relativistic' or 'relativistic_average', got 'foo'"),
    ("model.g_norm=bogus",
     "config key 'model.g_norm': Input should be 'batch', 'instance', 'layer', 'spectral' or 'none', got 'bogus'"),
    ("data=3", "config key 'data' must be a section of key: value pairs, got 3"),
    ("optim.g_betas=[0.5]", "config key 'optim.g_betas' must hold two numbers in [0, 1) like [0.5, 0.999]"),
    ("optim.d_betas=[0.5, 1.0]", "config key 'optim.d_betas' must hold two numbers in [0, 1), got [0.5, 1.0]"),
    ("train.device=tpu", "config key 'train.device' must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
])
def test_wrong_types_and_values(override, message):
    assert config_error([override]) == message


@pytest.mark.parametrize("override,message", [
    ("optim.g_lr=0", "config key 'optim.g_lr': Input should be greater than 0, got 0"),
    ("optim.d_lr=-1e-4", "config key 'optim.d_lr': Input should be greater than 0, got -0.0001"),
    ("optim.g_lr=-0.5", "config key 'optim.g_lr': Input should be greater than 0, got -0.5"),
    ("train.steps=0", "config key 'train.steps': Input should be greater than 0, got 0"),
    ("train.steps=-5", "config key 'train.steps': Input should be greater than 0, got -5"),
    ("train.batch_size=0", "config key 'train.batch_size': Input should be greater than 0, got 0"),
    ("train.n_critic=0", "config key 'train.n_critic': Input should be greater than or equal to 1, got 0"),
])
def test_non_positive_rates_and_steps(override, message):
    assert config_error([override]) == message


@pytest.mark.parametrize("value", ["nan", ".nan", "inf", "-inf", ".inf"])
def test_non_finite_lr_rejected(value):
    message = config_error([f"optim.g_lr={value}"])
    assert message.startswith("config key 'optim.g_lr': ")


BN_PENALTY = (
    "model.d_norm=batch cannot be used with a gradient penalty (penalty.gp/penalty.r1/penalty.r2): batch norm "
    "couples samples and breaks the per-sample gradient; use model.d_norm=layer, instance, spectral or none"
)


@pytest.mark.parametrize("penalty", ["penalty.gp=10", "penalty.r1=1", "penalty.r2=1", "penalty.r2=0.1"])
def test_batch_norm_critic_with_penalty(penalty):
    assert config_error(["model.d_norm=batch", penalty]) == BN_PENALTY
    # the same with the preset that uses BN in D
    assert config_error([penalty], preset="dcgan") == BN_PENALTY


@pytest.mark.parametrize("norm", ["layer", "instance", "spectral", "none"])
def test_other_critic_norms_allow_penalties(norm):
    cfg = load_quiet(["model.arch=dcgan", f"model.d_norm={norm}", "penalty.gp=10", "penalty.r1=1", "penalty.r2=1"])
    assert cfg.model.d_norm == norm


@pytest.mark.parametrize("kind", ["wasserstein", "hinge", "relativistic", "relativistic_average"])
@pytest.mark.parametrize("labels", [["loss.real_label=0.9"], ["loss.fake_label=0.1"]])
def test_label_smoothing_with_wasserstein_and_hinge(kind, labels):
    assert config_error([f"loss.kind={kind}", *labels]) == (
        f"label smoothing (loss.real_label/loss.fake_label) has no meaning for loss.kind={kind}; "
        "remove it or use nonsaturating/minimax/lsgan"
    )


@pytest.mark.parametrize("kind", ["minimax", "nonsaturating", "lsgan"])
def test_one_sided_smoothing_is_silent(kind):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = load_config(None, [f"loss.kind={kind}", "loss.real_label=0.9"])
    assert cfg.loss.real_label == 0.9 and cfg.loss.fake_label == 0.0


def test_fake_label_warns_citing_salimans():
    with pytest.warns(UserWarning) as record:
        cfg = load_config(None, ["loss.kind=nonsaturating", "loss.fake_label=0.1"])
    assert cfg.loss.fake_label == 0.1
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert messages[0] == (
        "loss.fake_label=0.1 smooths the fake target: Salimans et al. (2016, sec. 3.4) show this moves the "
        "optimal D towards the model's own density so bad samples are no longer pushed away; use one-sided "
        "smoothing (loss.real_label=0.9, loss.fake_label=0)"
    )
    assert "Salimans" in messages[0]


def test_dataset_not_fitting_the_architecture():
    assert config_error(["model.arch=toy"]) == (
        "model.arch=toy is for 2-D points but the data are images of shape 1x8x8; use model.arch=dcgan or mlp"
    )
    assert config_error(["model.arch=dcgan", "data.image_size=30"]) == (
        "model.arch=dcgan needs image sides b*2^k with b in 3..8 and the same k >= 1 for height and width "
        "(e.g. 8, 12, 14, 16, 28, 32, 64, 48x32), got 30x30; set data.image_size=32 (or 28, 64, [48, 32]) to resize"
    )
    assert config_error(["model.arch=dcgan", "data.name=grid25"]) == (
        "model.arch=dcgan needs images but the data are points; use model.arch=toy or mlp"
    )
    assert config_error(["model.arch=mlp", "model.g_norm=instance"]) == (
        "instance norm needs conv feature maps and model.arch=mlp has none; use model.g_norm/d_norm=layer"
    )


@pytest.mark.parametrize("size", [8, 14, 16, 28, 32, 64])
def test_dcgan_sides_that_fit(size):
    assert load_quiet([f"data.image_size={size}"]).data.image_size == size


def test_unknown_dataset_and_architecture():
    assert config_error(["data.name=cifar"]) == (
        "unknown data.name 'cifar'; known datasets: ring8, grid25, digits, fashion-mnist, mnist, idx, folder, npz, "
        "stacked-fashion-mnist"
    )
    assert config_error(["model.arch=stylegan"]) == (
        "unknown model.arch 'stylegan'; known architectures: mlp, dcgan, toy, resnet, progressive"
    )


# ---------------------------------------------------------------- YAML files

def test_unreadable_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss:\n  kind: [hinge\ntrain: {steps: 3\n", encoding="utf-8")
    message = config_error(path=bad)
    assert re.fullmatch(re.escape(f"config file {str(bad)!r} is not valid YAML") + r" at line \d+; fix the syntax",
                        message), message


def test_binary_yaml_file(tmp_path):
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    assert config_error(path=binary) == f"config file {str(binary)!r} is not UTF-8 text; pass a YAML file"


def test_missing_yaml_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert config_error(path=missing) == (
        f"config file {str(missing)!r} does not exist; check the path given to --config"
    )


def test_yaml_file_not_a_mapping(tmp_path):
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    assert config_error(path=listing) == f"config file {str(listing)!r} must hold a mapping of keys, got list"


def test_empty_yaml_file_is_defaults(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert read_yaml(empty) == {}
    assert load_quiet(path=empty).loss.kind == "hinge"


def test_quoted_yaml_strings_stay_strings(tmp_path):
    path = tmp_path / "quoted.yaml"
    path.write_text('data:\n  name: folder\n  path: "2024.01"\n', encoding="utf-8")
    assert read_yaml(path) == {"data": {"name": "folder", "path": "2024.01"}}


def test_quoted_override_strings_stay_strings():
    assert parse_override('data.path="2024.01"') == {"data": {"path": "2024.01"}}


def test_validate_rejects_non_mapping_and_non_string_keys():
    with pytest.raises(ConfigError, match=re.escape("config must be a mapping of keys, got list")):
        validate([1, 2])
    with pytest.raises(ConfigError, match=re.escape("config keys must be strings, got 3")):
        validate({3: 4})


# ---------------------------------------------------------------- fuzz: validate raises only ConfigError

SECTION_NAMES = sorted({k.split(".")[0] for k in known_keys()})
LEAF_NAMES = sorted({k.split(".")[-1] for k in known_keys()})
VALUE_WORDS = ["hinge", "wasserstein", "batch", "spectral", "layer", "instance", "none", "dcgan", "toy", "mlp",
               "digits", "grid25", "ring8", "folder", "npz", "fashion-mnist", "cpu", "auto", "cuda:0", "adam",
               "rmsprop", "progressive", ""]

keys = st.one_of(st.sampled_from(SECTION_NAMES + LEAF_NAMES), st.text(max_size=8))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 3, 7, 8, 28, 64, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0, 0.9, 0.1, 1e-4]),
    st.text(max_size=12),
    st.sampled_from(VALUE_WORDS),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=12,
)
sections = st.dictionaries(st.sampled_from(LEAF_NAMES) | st.text(max_size=6), values, max_size=6)
configs = st.dictionaries(
    st.one_of(st.sampled_from(SECTION_NAMES), keys),
    st.one_of(sections, values),
    max_size=6,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_validate_raises_only_config_error(data):
    try:
        cfg = validate(data)
    except ConfigError as exc:
        assert str(exc)
    else:
        assert isinstance(cfg, Config)


def test_unknown_key_message_is_one_line():
    with pytest.raises(ConfigError) as info:
        validate({"loss": {"ki\nnd": "hinge"}})
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- issue #26: R2, LeCam, relativistic losses

def test_r2_and_lecam_defaults_are_off():
    cfg = load_quiet([])
    assert (cfg.penalty.r2, cfg.penalty.r2_every, cfg.penalty.lecam, cfg.penalty.lecam_decay) == (0.0, 1, 0.0, 0.99)


def test_r2_and_lecam_switches_and_their_intervals():
    cfg = load_quiet(["loss.kind=relativistic", "penalty.r1=0.2", "penalty.r1_every=4", "penalty.r2=0.2",
                      "penalty.r2_every=8", "penalty.lecam=0.3", "penalty.lecam_decay=0.9"])
    assert cfg.loss.kind == "relativistic"
    assert (cfg.penalty.r2, cfg.penalty.r2_every, cfg.penalty.lecam, cfg.penalty.lecam_decay) == (0.2, 8, 0.3, 0.9)


@pytest.mark.parametrize("overrides,message", [
    (["penalty.r2_every=2"], "penalty.r2_every sets how often R2 runs, but penalty.r2 is 0; set penalty.r2 (e.g. 0.1) "
                             "or remove penalty.r2_every"),
    (["penalty.r1=1", "penalty.r2_every=2"], "penalty.r2_every sets how often R2 runs, but penalty.r2 is 0; set "
                                             "penalty.r2 (e.g. 0.1) or remove penalty.r2_every"),
    (["penalty.lecam_decay=0.5"], "penalty.lecam_decay sets the decay of LeCam's moving averages, but penalty.lecam "
                                  "is 0; set penalty.lecam (e.g. 0.3) or remove penalty.lecam_decay"),
    (["penalty.lecam=0.1", "penalty.lecam_decay=1.0"],
     "config key 'penalty.lecam_decay': Input should be less than 1, got 1.0"),
    (["penalty.lecam=-0.1"], "config key 'penalty.lecam': Input should be greater than or equal to 0, got -0.1"),
    (["penalty.r2=1", "penalty.r2_every=0"],
     "config key 'penalty.r2_every': Input should be greater than or equal to 1, got 0"),
])
def test_r2_and_lecam_rules(overrides, message):
    assert config_error(overrides) == message


def test_new_keys_are_described():
    from ganstab.config import key_help

    for key in ("penalty.r2", "penalty.r2_every", "penalty.lecam", "penalty.lecam_decay"):
        assert key_help(key)[0]
    assert key_help("penalty.r2_every")[1] == "penalty.r2 > 0"
    assert key_help("penalty.lecam_decay")[1] == "penalty.lecam > 0"
    assert "relativistic_average" in key_help("loss.kind")[0]
