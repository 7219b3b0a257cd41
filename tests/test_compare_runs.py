"""benchmarks.compare_runs: two runs agree when only their clocks differ."""

from benchmarks.compare_runs import differences


def test_compare_runs_names_each_differing_field():
    old = {"rows": [{"accuracy": 0.5, "seconds": 1.0}], "cells": []}
    assert differences(old, {"rows": [{"accuracy": 0.5, "seconds": 9.0}], "cells": []}) == []
    assert differences(old, {"rows": [{"accuracy": 0.4, "seconds": 1.0}]}) == [
        "rows[0].accuracy: 0.5 vs 0.4"
    ]
