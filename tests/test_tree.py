import json

from reasoner.tree import StepTree


def build():
    tree = StepTree("What is 2+3?", prompt_ids=[1, 2, 3], problem_id="p")
    a = tree.add_child(tree.root, text="2 + 3 = 5.", token_ids=[10, 11], logprob=-1.5)
    b = tree.add_child(
        a, text="The answer is 5.", token_ids=[12, 2], terminal=True, answer="5", prm_score=0.9
    )
    c = tree.add_child(tree.root, text="2 + 3 = 6.", token_ids=[13], prm_score=0.1)
    return tree, a, b, c


def test_paths_and_prefix_ids():
    tree, a, b, c = build()
    assert [n.id for n in tree.path(b)] == [a.id, b.id]
    assert tree.steps(b) == ["2 + 3 = 5.", "The answer is 5."]
    assert tree.prefix_ids(b) == [1, 2, 3, 10, 11, 12, 2]
    assert tree.prefix_ids(tree.root) == [1, 2, 3]
    assert b.depth == 2 and c.depth == 1
    assert {n.id for n in tree.leaves()} == {b.id, c.id}
    assert [n.id for n in tree.terminals()] == [b.id]
    assert tree.distinct_tokens() == 3 + 2 + 2 + 1


def test_json_round_trip():
    tree, *_ = build()
    again = StepTree.from_dict(json.loads(json.dumps(tree.to_dict())))
    assert again.to_dict() == tree.to_dict()
    assert again.path(2)[-1].answer == "5"


def test_networkx_export():
    tree, a, b, c = build()
    g = tree.to_networkx()
    assert set(g.edges) == {(0, a.id), (a.id, b.id), (0, c.id)}
    assert g.nodes[b.id]["answer"] == "5" and g.nodes[c.id]["prm_score"] == 0.1
