import pytest

from reasoner.step_format import PRESETS, StepFormat, get_step_format
from reasoner.types import ReasonerError


def test_split_and_join_round_trip():
    fmt = StepFormat()
    steps = ["a = 1.", "b = 2.", "The answer is 3."]
    assert fmt.split_steps(fmt.join_steps(steps)) == steps
    assert fmt.split_steps("\n\nx\n\n\n\ny\n\n") == ["x", "y"]


def test_prm_segments_place_one_tag_per_step():
    fmt = StepFormat(step_tag="ки", prm_prompt_template="{problem} ")  # the flat PRM fields
    segs = fmt.prm_segments("Q?", [" s1 ", "s2"])
    assert [t for t, tag in segs if tag] == ["ки", "ки"]
    assert "".join(t for t, _ in segs) == "Q? s1ки\ns2ки"
    # the math-shepherd preset is the card's string: f"{question} {output}", " ки" after a step
    segs = PRESETS["math-shepherd"].prm_segments("Q?", ["s1", "s2"])
    assert [t for t, tag in segs if tag] == [" ки", " ки"]
    assert "".join(t for t, _ in segs) == "Q? s1 ки\ns2 ки"


def test_bad_fields_are_named():
    with pytest.raises(ReasonerError, match="unknown StepFormat field"):
        StepFormat.from_dict({"delimeter": "\n"})
    with pytest.raises(ReasonerError, match="prompt_template"):
        StepFormat(prompt_template="no placeholder")
    with pytest.raises(ReasonerError, match="presets"):
        get_step_format("nope")
