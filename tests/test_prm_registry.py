"""PRM families by entry point: one added from outside the package, spec parsing, errors.

The plugin is a module and a `*.dist-info` directory written to tmp_path (what `pip install`
leaves behind), found through the `reasoner.prms` entry-point group like the built-in families.
"""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import entry_points

import pytest

from reasoner import Reasoner
from reasoner.api import load_prm
from reasoner.models.checker_prm import EquationCheckerPRM
from reasoner.models.evidence_prm import EvidencePRM
from reasoner.models.loading import (
    PRM_FAMILIES,
    available_prm_families,
    prm_checkpoint_dir,
    register_prm_family,
    resolve_prm_spec,
)
from reasoner.models.prm_families import BUILTIN_FAMILIES, EvidenceFamily, LMFamily
from reasoner.models.resolve import embedded_dir
from reasoner.types import ReasonerError

PLUGIN = '''
from pathlib import Path

from reasoner.models.base import PRMFamily

CALLS = []


class LengthPRM:
    """Scores a step by its length (so a test can tell its scores from any model's)."""

    num_parameters = 0

    def __init__(self, path, backend, step_format, options):
        self.path, self.backend, self.options = path, backend, options
        self.step_format = step_format

    def clear_cache(self):
        pass

    def score(self, requests):
        CALLS.append(len(requests))
        return [[score_of(s) for s in r.steps] for r in requests], 7 * len(requests)


def score_of(step):
    return (len(step) % 10) / 10


class MyFamily(PRMFamily):
    name = "myfamily"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return (path / "myprm.json").exists()

    @classmethod
    def load(cls, path, backend, step_format, **options):
        return LengthPRM(path, backend, step_format, options)
'''


def _dist(root, name: str, entry_points_txt: str) -> None:
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points_txt))


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A third-party PRM family installed in tmp_path (module + dist-info), discovered afresh."""
    (tmp_path / "myprm.py").write_text(PLUGIN)
    _dist(tmp_path, "myprm", "[reasoner.prms]\nmyfamily = myprm:MyFamily\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    PRM_FAMILIES.reset()
    yield tmp_path
    PRM_FAMILIES.reset()
    sys.modules.pop("myprm", None)
    sys.modules.pop("brokenprm", None)


def test_builtin_families_are_entry_points_like_any_plugin():
    declared = {ep.name: ep.value for ep in entry_points(group="reasoner.prms")}
    for family in BUILTIN_FAMILIES:
        assert declared[family.name] == f"{family.__module__}:{family.__qualname__}"
    assert {"equation-checker", "evidence", "lm"} <= set(available_prm_families())


def test_a_family_from_outside_the_package_is_found_by_name(plugin_dir):
    assert "myfamily" in available_prm_families()
    prm = load_prm("myfamily", "hf", None, threads=1)
    assert type(prm).__name__ == "LengthPRM" and prm.path is None
    assert prm.backend == "hf" and prm.options == {"threads": 1}
    at = load_prm("myfamily:/some/ckpt")
    assert at.path == "/some/ckpt"
    ckpt = plugin_dir / "ckpt"
    ckpt.mkdir()
    (ckpt / "myprm.json").write_text("{}")
    assert load_prm(str(ckpt)).path == str(ckpt)  # its detect() claims the directory


def test_reasoner_solves_with_the_plugin_scores(plugin_dir, tiny_ckpt):
    import myprm

    r = Reasoner(
        strategy="best_of_n",
        budget=3,
        policy=tiny_ckpt,
        prm="myfamily",
        seed=0,
        step_format={"max_step_tokens": 8, "max_steps": 3},
    )
    sol = r.solve("Ann has 2 bags with 3 apples each. How many apples?")
    assert myprm.CALLS  # the plugin scored the samples
    assert sol.steps and sol.step_scores == [myprm.score_of(s) for s in sol.steps]
    assert 0 < sol.stats.prm_tokens <= 7 * sum(myprm.CALLS)  # its share of the plugin's tokens


def test_unknown_family_lists_the_registered_ones():
    with pytest.raises(ReasonerError, match="unknown PRM family 'nosuch'; available: .*lm"):
        load_prm("nosuch:/x")
    with pytest.raises(ReasonerError, match="does not exist.*equation-checker, evidence, lm"):
        load_prm("nosuch")


def test_a_broken_plugin_warns_and_the_others_still_load(plugin_dir):
    (plugin_dir / "brokenprm.py").write_text("raise ImportError('half-installed')\n")
    _dist(plugin_dir, "brokenprm", "[reasoner.prms]\nbroken = brokenprm:Nope\n")
    _dist(plugin_dir, "notafamily", "[reasoner.prms]\nnotone = myprm:score_of\n")
    with pytest.warns(UserWarning) as caught:
        names = available_prm_families()
    messages = " ".join(str(w.message) for w in caught)
    assert "'broken' failed to load: half-installed" in messages
    assert "'notone' failed to load" in messages and "not a PRM family" in messages
    assert "broken" not in names and "notone" not in names
    assert {"equation-checker", "evidence", "lm", "myfamily"} <= set(names)
    assert type(load_prm("myfamily")).__name__ == "LengthPRM"


def test_specs_accepted_before_still_load():
    assert load_prm(None) is None and load_prm("none") is None
    checker = EquationCheckerPRM()
    assert load_prm(checker) is checker
    assert isinstance(load_prm("equation-checker"), EquationCheckerPRM)
    assert isinstance(load_prm("embedded", threads=1), EvidencePRM)
    assert resolve_prm_spec("embedded-lm") == (LMFamily, "embedded-lm")
    assert resolve_prm_spec("lm") == (LMFamily, "embedded-lm")  # the family's default
    assert resolve_prm_spec("evidence") == (EvidenceFamily, "embedded")
    assert resolve_prm_spec("evidence:/ckpt") == (EvidenceFamily, "/ckpt")
    assert prm_checkpoint_dir("evidence") == prm_checkpoint_dir("embedded") == embedded_dir("prm")
    assert prm_checkpoint_dir("equation-checker") is None
    with pytest.raises(ReasonerError, match="unknown backend 'tpu'"):
        load_prm("equation-checker", backend="tpu")
    with pytest.raises(ReasonerError, match="model-free"):
        load_prm("equation-checker:/x")


def test_a_family_registered_in_code_and_name_checks():
    class Constant(LMFamily):
        name = "constant"

    register_prm_family(Constant)
    try:
        assert resolve_prm_spec("constant:/p") == (Constant, "/p")
    finally:
        PRM_FAMILIES.entries.pop("constant")

    class Reserved(LMFamily):
        name = "embedded"

    with pytest.raises(ReasonerError, match="cannot be a PRM family name"):
        register_prm_family(Reserved)
