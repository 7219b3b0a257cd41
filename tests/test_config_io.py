"""The one config loader (reasoner.config_io): keys and types checked from the dataclass fields,
every shipped TOML config loads, one PRM config class per kind, one CLI override helper."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.config import BenchConfig, available_suites, load_config
from reasoner.cli import build_parser, flag_overrides, load_with_flags, main
from reasoner.config_io import SET_NONE, Config, build_config, read_toml
from reasoner.training.labeling import LabelConfig
from reasoner.training.policy_trainer import PolicyTrainConfig
from reasoner.training.prm_config import (
    EvidencePRMTrainConfig,
    LMPRMTrainConfig,
    PRMTrainConfig,
)
from reasoner.training.raft import RaftConfig
from reasoner.types import ReasonerError

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Sample(Config):
    """One field of every annotation the project's configs use."""

    count: int = 0
    rate: float = 1.0
    flag: bool = False
    name: str = ""
    limit: int | None = None
    ids: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    budgets: dict[str, list[int]] = field(default_factory=dict)
    fmt: str | dict[str, Any] | None = None
    choice: Literal["a", "b"] = "a"


keys = st.text(min_size=1, max_size=8)
scalars = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.text(max_size=8), st.none()
)
tables = st.dictionaries(keys, scalars, max_size=3)
# field -> (valid values, an oracle written apart from the loader: does a value fit?)
FIELDS: dict[str, tuple[st.SearchStrategy, Any, str]] = {
    "count": (st.integers(), lambda v: type(v) is int, "int"),
    "rate": (
        st.floats(allow_nan=False) | st.integers(),
        lambda v: type(v) in (int, float),
        "float",
    ),
    "flag": (st.booleans(), lambda v: type(v) is bool, "bool"),
    "name": (st.text(max_size=8), lambda v: type(v) is str, "str"),
    "limit": (st.none() | st.integers(), lambda v: v is None or type(v) is int, "int | None"),
    "ids": (
        st.lists(st.integers(), max_size=4),
        lambda v: type(v) is int or (type(v) is list and all(type(x) is int for x in v)),
        "list[int]",
    ),
    "tags": (
        st.lists(st.text(max_size=8), max_size=4),
        lambda v: type(v) is str or (type(v) is list and all(type(x) is str for x in v)),
        "list[str]",
    ),
    "options": (tables, lambda v: type(v) is dict, "dict[str, Any]"),
    "tables": (
        st.dictionaries(keys, tables, max_size=3),
        lambda v: type(v) is dict and all(type(x) is dict for x in v.values()),
        "dict[str, dict[str, Any]]",
    ),
    "budgets": (
        st.dictionaries(keys, st.lists(st.integers(), max_size=3), max_size=3),
        lambda v: (
            type(v) is dict
            and all(
                type(x) is int or (type(x) is list and all(type(y) is int for y in x))
                for x in v.values()
            )
        ),
        "dict[str, list[int]]",
    ),
    "fmt": (
        st.none() | st.text(max_size=8) | tables,
        lambda v: v is None or type(v) in (str, dict),
        "str | dict[str, Any] | None",
    ),
    "choice": (
        st.sampled_from(["a", "b"]),
        lambda v: type(v) is str and v in ("a", "b"),
        "Literal['a', 'b']",
    ),
}
anything = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    tables,
    st.dictionaries(keys, tables, max_size=2),
    st.dictionaries(keys, st.lists(scalars, max_size=2), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: v[0] for k, v in FIELDS.items()}))
def test_valid_values_round_trip(data):
    cfg = build_config(Sample, data, source="sample.toml")
    assert {k: getattr(cfg, k) for k in data} == data
    assert build_config(Sample, cfg.to_dict()) == cfg


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FIELDS)), st.data())
def test_a_wrong_typed_value_is_refused_naming_file_key_type_and_value(key, draw):
    fits, spelled = FIELDS[key][1], FIELDS[key][2]
    value = draw.draw(anything.filter(lambda v: not fits(v)), label="value")
    with pytest.raises(ReasonerError) as err:
        build_config(Sample, {key: value}, source="sample.toml")
    message = str(err.value)
    if key in ("tables", "budgets") and isinstance(value, dict):  # the entry that is wrong
        entry, inner = next((k, v) for k, v in value.items() if not fits({k: v}))
        assert message.startswith(f"sample.toml: {key}.{entry} must be ")
        assert message.endswith(f", got {inner!r}")
    else:
        assert message.startswith(f"sample.toml: {key} must be ")
        assert f"({spelled})" in message and message.endswith(f", got {value!r}")


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=10).filter(lambda k: k not in FIELDS), scalars)
def test_unknown_keys_are_refused_with_the_valid_keys(key, value):
    with pytest.raises(ReasonerError) as err:
        build_config(Sample, {key: value}, source="sample.toml")
    message = str(err.value)
    assert message.startswith(f"sample.toml: unknown key(s) [{key!r}]")
    assert f"valid keys: {sorted(FIELDS)}" in message


def test_type_rules_and_messages():
    assert build_config(Sample, {"ids": 3, "tags": "x"}).ids == [3]  # one item: a one-item list
    assert build_config(Sample, {"tags": ("x", "y"), "name": Path("a/b")}).tags == ["x", "y"]
    assert build_config(Sample, {"name": Path("a/b")}).name == "a/b"
    assert build_config(Sample, {"rate": 2}).rate == 2  # an int is a fine float, kept as given
    with pytest.raises(ReasonerError, match=r"^s.toml: count must be an int \(int\), got True$"):
        build_config(Sample, {"count": True}, source="s.toml")
    with pytest.raises(ReasonerError, match=r"flag must be true or false \(bool\), got 1$"):
        build_config(Sample, {"flag": 1})
    with pytest.raises(ReasonerError, match=re.escape("ids must be a list of ints (list[int])")):
        build_config(Sample, {"ids": ["four"]})
    with pytest.raises(ReasonerError, match=re.escape("budgets.x must be a list of ints")):
        build_config(Sample, {"budgets": {"x": ["four"]}})
    with pytest.raises(ReasonerError, match=re.escape("tables.x must be a table (dict[str, Any])")):
        build_config(Sample, {"tables": {"x": 3}})
    with pytest.raises(ReasonerError, match="fmt must be a string or a table or None"):
        build_config(Sample, {"fmt": 3})
    with pytest.raises(ReasonerError, match="choice must be one of 'a', 'b'"):
        build_config(Sample, {"choice": "c"})
    with pytest.raises(ReasonerError, match=r"unknown key\(s\) \['cont'\] \(did you mean 'count'"):
        build_config(Sample, {"cont": 1})
    # overrides: None is not given, SET_NONE sets None; an override's error names "overrides"
    assert build_config(Sample, {"limit": 3}, {"limit": None}).limit == 3
    assert build_config(Sample, {"limit": 3}, {"limit": SET_NONE}).limit is None
    with pytest.raises(ReasonerError, match="^overrides: limit must be an int or None"):
        build_config(Sample, {"limit": 3}, {"limit": "3"}, source="s.toml")
    with pytest.raises(ReasonerError, match=r"^overrides: unknown key\(s\) \['limt'\]"):
        build_config(Sample, {}, {"limt": 3})
    # constructed in Python: the same checks
    with pytest.raises(ReasonerError, match="count must be an int"):
        Sample(count="1")


def test_toml_errors_name_the_file(tmp_path):
    with pytest.raises(ReasonerError, match="config file .*nope.toml does not exist"):
        LabelConfig.from_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("samples = [4,\n")
    with pytest.raises(ReasonerError, match="bad.toml: invalid TOML"):
        LabelConfig.from_toml(bad)
    bad.write_text('samples = "4"\n')
    with pytest.raises(ReasonerError, match=r"bad.toml: samples must be an int \(int\), got '4'"):
        LabelConfig.from_toml(bad)


# ----------------------------------------------------------------------------------------------
# Every shipped config loads
# ----------------------------------------------------------------------------------------------

CONFIG_CLASSES = {
    "label": LabelConfig,
    "policy": PolicyTrainConfig,
    "prm": PRMTrainConfig,
    "raft": RaftConfig,
}


@pytest.mark.parametrize("path", sorted((ROOT / "reasoner" / "configs").glob("*.toml")), ids=str)
def test_each_shipped_training_config_loads(path):
    cls = CONFIG_CLASSES[path.stem.split("_")[0]]
    cfg = cls.from_toml(path)
    data = read_toml(path)
    assert {k: v for k, v in cfg.to_dict().items() if k in data} == data  # every key arrived


def test_each_shipped_suite_loads():
    names = available_suites()
    assert names and all((ROOT / "benchmarks" / "suites" / f"{n}.toml").is_file() for n in names)
    for name in names:
        cfg = load_config(name)
        assert isinstance(cfg, BenchConfig) and cfg.name == name


# ----------------------------------------------------------------------------------------------
# One PRM config class per kind
# ----------------------------------------------------------------------------------------------


def test_the_kind_key_picks_the_config_class():
    evidence = PRMTrainConfig.from_toml(ROOT / "reasoner" / "configs" / "prm.toml")
    lm = PRMTrainConfig.from_toml(ROOT / "reasoner" / "configs" / "prm_lm.toml")
    assert type(evidence) is EvidencePRMTrainConfig and evidence.kind == "evidence"
    assert type(lm) is LMPRMTrainConfig and lm.kind == "lm"
    assert lm.to_dict()["kind"] == "lm" and "evidence_hidden" not in lm.to_dict()
    assert type(PRMTrainConfig.from_dict({})) is LMPRMTrainConfig  # no kind: "lm", as before
    assert type(EvidencePRMTrainConfig.from_dict({})) is EvidencePRMTrainConfig
    with pytest.raises(ReasonerError, match=r"x.toml: train-prm: kind must be one of lm, evidence"):
        PRMTrainConfig.from_dict({"kind": "tree"}, "x.toml")
    with pytest.raises(ReasonerError, match="prm.toml: is kind 'evidence', but a kind 'lm'"):
        LMPRMTrainConfig.from_toml(ROOT / "reasoner" / "configs" / "prm.toml")


def test_an_option_of_the_other_kind_is_an_error_that_says_so(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('kind = "lm"\nevidence_hidden = 8\n')
    with pytest.raises(
        ReasonerError,
        match=f"^{re.escape(str(path))}: 'evidence_hidden' is an option of kind 'evidence', "
        "this file is kind 'lm'$",
    ):
        PRMTrainConfig.from_toml(path)
    path.write_text('kind = "evidence"\nextra_layers = 2\n')
    with pytest.raises(ReasonerError, match="'extra_layers' is an option of kind 'lm', this file"):
        PRMTrainConfig.from_toml(path)
    with pytest.raises(
        ReasonerError, match="'max_length' is an option of kind 'lm', the overrides"
    ):
        PRMTrainConfig.from_toml(
            ROOT / "reasoner" / "configs" / "prm_lm.toml", {"kind": "evidence"}
        )
    with pytest.raises(ReasonerError, match=r"valid keys: \['base', .*'kind'"):
        PRMTrainConfig.from_dict({"kind": "evidence", "evidence_hiden": 8})
    with pytest.raises(TypeError):  # in Python, a kind's class has only its own fields
        EvidencePRMTrainConfig(extra_layers=2)


def test_value_checks_live_in_validate():
    with pytest.raises(ReasonerError, match="evidence_groups.*token, equation"):
        EvidencePRMTrainConfig(evidence_groups=["tokens"])
    with pytest.raises(ReasonerError, match="evidence_hidden must be >= 1"):
        EvidencePRMTrainConfig(evidence_hidden=0)
    with pytest.raises(ReasonerError, match="freeze_base needs extra_layers"):
        LMPRMTrainConfig(freeze_base=True)
    with pytest.raises(ReasonerError, match="slip_negatives must be >= 0"):
        LMPRMTrainConfig(slip_negatives=-1)
    with pytest.raises(ReasonerError, match="label kind 'er' needs eta"):
        LMPRMTrainConfig(eta=None)
    with pytest.raises(ReasonerError, match="not PRM input fields"):
        LMPRMTrainConfig(prm_format={"delimiter": "\n"})


# ----------------------------------------------------------------------------------------------
# The CLI override helper
# ----------------------------------------------------------------------------------------------


def test_flag_overrides_keep_only_given_flags_and_can_set_none():
    args = argparse.Namespace(out="o", steps=None, limit=SET_NONE)
    assert flag_overrides(args, {"out": "out_dir", "steps": "steps", "limit": "limit"}) == {
        "out_dir": "o",
        "limit": SET_NONE,
    }
    pairs = ["limit=null", "max_nodes=99", "name=x"]
    assert flag_overrides(argparse.Namespace(name="y"), {"name": "name"}, pairs) == {
        "limit": SET_NONE,
        "max_nodes": 99,
        "name": "y",  # a named flag wins over --set
    }
    with pytest.raises(ReasonerError, match="--set expects key=value"):
        flag_overrides(argparse.Namespace(), {}, ["limit"])


def bench_cfg(argv: list[str]) -> BenchConfig:
    from reasoner.cli import BENCH_FLAGS

    args = build_parser().parse_args(["bench", *argv])
    return load_config(args.config or args.suite, flag_overrides(args, BENCH_FLAGS, args.set))


def test_bench_flags_reach_the_config():
    base = load_config("arith")
    assert bench_cfg(["arith", "--limit", "all"]).limit is None
    assert bench_cfg(["arith", "--set", "limit=null"]).limit is None
    assert bench_cfg(["arith"]).limit == base.limit and not bench_cfg(["arith"]).save_trees
    cfg = bench_cfg(["arith", "--limit", "5", "--trees", "--budgets", "1,2", "--out", "x"])
    assert (cfg.limit, cfg.save_trees, cfg.budgets, cfg.out_dir) == (5, True, [1, 2], "x")
    assert bench_cfg(["arith", "--no-subsample"]).subsample is False
    assert bench_cfg(["arith", "--set", "budgets=16"]).budgets == [16]


@pytest.mark.parametrize(
    ("name", "cls"), [("prm", EvidencePRMTrainConfig), ("prm_lm", LMPRMTrainConfig)]
)
def test_train_prm_flags_load_both_shipped_configs(name, cls):
    from reasoner.cli import TRAIN_PRM_FLAGS

    path = str(ROOT / "reasoner" / "configs" / f"{name}.toml")
    args = build_parser().parse_args(["train-prm", "--config", path, "--label", "soft"])
    cfg = load_with_flags(PRMTrainConfig, args.config, flag_overrides(args, TRAIN_PRM_FLAGS))
    assert type(cfg) is cls and cfg.label == "soft"


def test_train_prm_cli_refuses_a_cross_kind_config_in_one_line(capsys):
    path = str(ROOT / "reasoner" / "configs" / "prm_lm.toml")
    assert main(["train-prm", "--config", path, "--kind", "evidence"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reasoner: error:") and "is an option of kind 'lm'" in err


# ----------------------------------------------------------------------------------------------
# Values no run can use: refused by validate() before any work (#14)
# ----------------------------------------------------------------------------------------------

# (config class, key, bad value): every step / epoch / batch / learning-rate option and friends
NON_POSITIVE = [
    *[(PolicyTrainConfig, "steps", v) for v in (-5, 0)],
    *[
        (PolicyTrainConfig, key, 0)
        for key in ("batch_size", "seq_len", "save_every", "log_every", "threads", "num_heads")
    ],
    (PolicyTrainConfig, "lr", 0.0),
    (PolicyTrainConfig, "lr", -1e-3),
    (PolicyTrainConfig, "lr", float("inf")),
    (PolicyTrainConfig, "grad_clip", 0.0),
    (PolicyTrainConfig, "warmup_steps", -1),
    (PolicyTrainConfig, "beta2", 1.0),
    (PolicyTrainConfig, "min_lr_ratio", 1.5),
    (PolicyTrainConfig, "hidden_size", 30),  # not a multiple of num_heads
    *[(cls, "epochs", v) for cls in (LMPRMTrainConfig, EvidencePRMTrainConfig) for v in (0, -5.0)],
    *[
        (cls, key, 0)
        for cls in (LMPRMTrainConfig, EvidencePRMTrainConfig)
        for key in ("batch_size", "eval_every", "save_every", "threads")
    ],
    (LMPRMTrainConfig, "lr", 0.0),
    (EvidencePRMTrainConfig, "lr", -1.0),
    (EvidencePRMTrainConfig, "val_fraction", 1.0),
    (LMPRMTrainConfig, "limit", -1),
    (LMPRMTrainConfig, "dtype", "float16"),
    (LMPRMTrainConfig, "max_length", 0),
    *[(LabelConfig, key, 0) for key in ("problems", "samples", "rollouts", "chunk")],
    (LabelConfig, "samples", -3),
    (LabelConfig, "temperature", -1.0),
    (LabelConfig, "temperature", float("inf")),
    (LabelConfig, "offset", -1),
]


@pytest.mark.parametrize(("cls", "key", "value"), NON_POSITIVE)
def test_values_no_run_can_use_are_refused_naming_the_key(cls, key, value):
    with pytest.raises(ReasonerError, match=rf"\b{key}\b.*(must|multiple)"):
        cls(**{key: value})
    with pytest.raises(ReasonerError, match=rf"\b{key}\b"):  # also through the file loader
        cls.from_dict({key: value}, source="x.toml")


@pytest.mark.parametrize("cls", [PolicyTrainConfig, LabelConfig, LMPRMTrainConfig, BenchConfig])
def test_nan_is_refused_for_every_float_field(cls):
    key = next(f for f, ann in typing_hints(cls).items() if ann is float or ann == (float | None))
    with pytest.raises(
        ReasonerError, match=rf"{key} must be a number.*got nan \(NaN is no value\)"
    ):
        cls.from_dict({key: float("nan")}, source="x.toml")


def typing_hints(cls) -> dict[str, Any]:
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def test_train_policy_cli_refuses_non_positive_steps_before_any_work(tmp_path, capsys):
    out = tmp_path / "never"
    for steps in ("-5", "0"):
        assert main(["train-policy", "--steps", steps, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == f"reasoner: error: train-policy: steps must be >= 1 and finite, got {steps}\n"
    assert not out.exists()  # nothing written, nothing to --install


def test_toml_files_with_a_byte_order_mark_or_bad_utf8(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_bytes(b'\xef\xbb\xbfdataset = "arith"\nlimit = 3\n')
    assert read_toml(path) == {"dataset": "arith", "limit": 3}
    assert BenchConfig.from_toml(path).limit == 3
    path.write_bytes(b'dataset = "ar\xffith"\n')
    with pytest.raises(
        ReasonerError, match=r"suite.toml: not UTF-8 text \(invalid start byte at byte 13\)"
    ):
        read_toml(path)
