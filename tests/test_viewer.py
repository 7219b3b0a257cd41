"""The step-tree viewer, loaded in a real headless Chromium: the page's own JS draws the tree, and
the test reads the DOM it built (node count, chosen chain, a score) and a screenshot's pixels.

Skipped, saying why, only where no chromium is installed (.ci/run installs Debian's with apt).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from reasoner.tree import StepTree
from reasoner.types import ReasonerError
from reasoner.viewer import load_entries, solution_entry, tree_entry, write_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_skip = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium; .ci/run does it when apt works)",
)


def needs_chromium(test):
    """A test that loads a page in headless Chromium: marked `browser`, skipped without one."""
    return pytest.mark.browser(_skip(test))


URL = re.compile(r"https?://", re.IGNORECASE)


def chromium(page: Path, tmp: Path, *flags: str) -> str:
    """Run headless Chromium on a file:// page with `flags`; returns stdout."""
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--window-size=1400,800",
        "--virtual-time-budget=5000",
        *flags,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(page: Path, tmp: Path) -> str:
    dom = chromium(page, tmp, "--dump-dom")
    assert 'data-ready="1"' in dom, "the page's script did not finish"
    return dom


def drawn(dom: str) -> str:
    """The tree's <svg> as the page's script built it (not the script's own text)."""
    return dom.split('<svg id="tree"', 1)[1].split("</svg>", 1)[0]


def node_elements(dom: str) -> list[str]:
    return re.findall(r'<(?:circle|rect|polygon) class="node[^"]*"[^>]*>', drawn(dom))


@pytest.fixture(scope="module")
def beam_solution(tiny_ckpt):
    from reasoner import Reasoner

    r = Reasoner(
        strategy="beam",
        budget=4,
        policy=str(tiny_ckpt),
        prm=str(tiny_ckpt),
        step_format={"max_step_tokens": 6, "max_steps": 3},
        strategy_options={"width": 2},
        policy_options={"threads": 1},
        prm_options={"threads": 1},
    )
    return r.solve("Ann has 3 bags with 4 apples each. She eats 5 apples. How many are left?")


def test_no_url_in_the_page_even_when_a_step_holds_one(tmp_path):
    tree = StepTree("See https://example.org </script><!-- for 2 + 2?", [1, 2], "p-url")
    a = tree.add_child(0, text="Visit http://x.test/a", prm_score=0.9)
    tree.add_child(a, text="The answer is 4.", prm_score=0.8, terminal=True, answer="4")
    page = write_html([tree_entry(tree, steps=[a.text, "The answer is 4."])], tmp_path / "u.html")
    text = page.read_text()
    assert not URL.search(text)
    assert "</script><!--" not in text.split('id="data">', 1)[1].split("</script>", 1)[0]


@needs_chromium
def test_a_real_search_tree_in_headless_chromium(beam_solution, tmp_path):
    sol = beam_solution
    page = write_html(
        [solution_entry(sol, gold="7", correct=sol.answer == "7")], tmp_path / "b.html"
    )
    assert not URL.search(page.read_text())  # no CDN, no network: the page is self-contained
    dom = dump_dom(page, tmp_path)
    nodes = node_elements(dom)
    assert len(nodes) == len(sol.tree)  # every node drawn, the root included
    assert f'data-nodes="{len(sol.tree)}"' in dom
    entry = solution_entry(sol)
    chosen = entry["chosen"]
    assert [sol.tree[i].text for i in chosen] == sol.steps  # the chosen chain, found in the tree
    assert f'data-chosen="{",".join(map(str, chosen))}"' in dom
    marked = [n for n in nodes if re.search(r'class="node [^"]*\bchosen\b', n)]
    assert sorted(int(re.search(r'data-id="(\d+)"', n).group(1)) for n in marked) == sorted(chosen)
    # the side panel lists the chosen chain with its PRM scores, as the page formats them
    chain = dom.split('id="chain"', 1)[1].split("</ol>", 1)[0]
    for score in sol.step_scores:
        assert f"{score:.3f}" in chain
    assert "gold: <span" in dom and "7" in dom
    # terminal nodes are drawn as finished or cut, leaves left unexpanded as pruned
    finished = [n for n in sol.tree.nodes if n.terminal and not n.meta.get("cut")]
    assert len(re.findall(r'<rect class="node f', drawn(dom))) == len(finished)


@needs_chromium
def test_screenshot_shows_the_chosen_chain(beam_solution, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    page = write_html([solution_entry(beam_solution)], tmp_path / "s.html")
    shot = tmp_path / "s.png"
    chromium(page, tmp_path, f"--screenshot={shot}")
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (800, 1400)
    blue = np.all(np.abs(pixels - np.array([0x1F, 0x5F, 0xD6]) / 255) < 0.08, axis=-1)
    assert blue.sum() > 200  # the highlighted chain (and its legend swatch) are painted


@needs_chromium
def test_a_tree_of_three_thousand_nodes_draws(tmp_path):
    rng = random.Random(0)
    tree = StepTree("a big tree", [1], "big")
    frontier = [0]
    while len(tree) < 3000:
        parent = rng.choice(frontier[-200:])
        node = tree.add_child(parent, text=f"step {len(tree)}", prm_score=rng.random())
        if node.depth < 12:
            frontier.append(node.id)
        else:
            node.terminal, node.answer = True, str(node.id)
    leaf = max(tree.nodes, key=lambda n: n.depth)
    page = write_html([tree_entry(tree, steps=tree.steps(leaf))], tmp_path / "big.html")
    t0 = time.perf_counter()
    dom = dump_dom(page, tmp_path)
    seconds = time.perf_counter() - t0
    assert len(node_elements(dom)) == 3000
    assert f'data-chosen="{",".join(str(n.id) for n in tree.path(leaf))}"' in dom
    assert seconds < 60, seconds


@needs_chromium
def test_a_bench_run_has_a_problem_picker(tiny_ckpt, tmp_path, capsys):
    from benchmarks.bench.run import run_bench
    from benchmarks.config import BenchConfig
    from reasoner.cli import main

    out = tmp_path / "run"
    cfg = BenchConfig.from_dict(
        {
            "name": "tiny",
            "limit": 2,
            "policy": str(tiny_ckpt),
            "prms": [str(tiny_ckpt)],
            "strategies": ["best_of_n"],
            "budgets": [2],
            "step_format": {"max_step_tokens": 6, "max_steps": 3},
            "policy_options": {"threads": 1},
            "prm_options": {"threads": 1},
            "save_trees": True,
            "out_dir": str(out),
        }
    )
    run_bench(cfg, progress=False)
    assert main(["view", str(out), "--out", str(tmp_path / "run.html")]) == 0
    dom = dump_dom(tmp_path / "run.html", tmp_path)
    options = re.findall(r"<option value=\"\d+\">([^<]*)</option>", dom)
    entries = load_entries(out)
    assert len(options) == len(entries) == 2
    assert re.search(r'class="verdict (right|wrong)"', dom)  # bench rows say if it was correct
    pid = entries[1]["problem_id"]
    assert main(["view", str(out), "--problem", pid, "--out", str(tmp_path / "one.html")]) == 0
    assert len(load_entries(out, pid)) == 1
    capsys.readouterr()
    assert main(["view", str(out), "--problem", "no-such-id"]) == 2
    err = capsys.readouterr().err
    assert "no-such-id" in err and "is not in" in err and err.count("\n") == 1


def test_bad_sources_are_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.json").write_text("[1, 2]")
    (tmp_path / "bad.json").write_text("{nope")
    cases = [
        (tmp_path / "empty", "not a bench run directory"),
        (tmp_path / "x.json", "holds no tree"),
        (tmp_path / "bad.json", "is not a JSON file"),
        (tmp_path / "missing.json", "does not exist"),
    ]
    for path, needle in cases:
        with pytest.raises(ReasonerError, match=needle):
            load_entries(path)


def test_solve_view_writes_the_page(tiny_ckpt, tmp_path, capsys):
    import json

    from reasoner.cli import main

    fmt = tmp_path / "fmt.json"
    fmt.write_text(json.dumps({"max_step_tokens": 6, "max_steps": 3}))
    page = tmp_path / "solve.html"
    args = ["solve", "Tom has 2 boxes of 3 pens. How many pens?", "--policy", str(tiny_ckpt)]
    args += ["--prm", str(tiny_ckpt), "--strategy", "beam", "--budget", "4", "--option", "width=2"]
    assert main([*args, "--step-format", str(fmt), "--view", str(page)]) == 0
    assert f"view: {page}" in capsys.readouterr().err
    text = page.read_text()
    assert not URL.search(text) and text.count('id="data"') == 1


def test_a_solution_json_and_a_bare_tree_json_load(beam_solution, tmp_path, capsys):
    from reasoner.cli import main

    sol_file = tmp_path / "sol.json"
    sol_file.write_text(beam_solution.to_json(include_tree=True))  # what solve --json --tree prints
    [entry] = load_entries(sol_file)
    assert len(entry["nodes"]) == len(beam_solution.tree) and entry["chosen"]
    assert [entry["nodes"][i][1] for i in entry["chosen"]] == beam_solution.steps
    tree_file = tmp_path / "tree.json"
    tree_file.write_text(json.dumps(beam_solution.tree.to_dict()))
    [bare] = load_entries(tree_file)
    assert bare["chosen"] == [] and bare["nodes"] == entry["nodes"]
    assert main(["view", str(sol_file)]) == 0
    assert (tmp_path / "sol.html").is_file() and "view: " in capsys.readouterr().out
