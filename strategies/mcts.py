"""mcts: Monte Carlo tree search over steps with PUCT selection and PRM values.

One simulation tick (all of a tick's model work is batched: one Expand, then one Score, plus one
Rollout in rollout mode, however many leaves the tick carries):

1. Selection. Up to `parallel` times, descend from the root choosing the child maximizing
   PUCT = Q + c_puct * P * sqrt(N_parent) / (1 + N_child), where Q = value_sum / visits,
   P = the child's prior and N_parent = the sum of the children's visits. A descent stops at a
   leaf (an evaluated, not yet expanded, non-terminal node), at a terminal node, or (option
   `widen` > 0, progressive widening) at an expanded node n with k * e(n) < widen *
   sqrt(N(n)), e(n) = how many times n was expanded: n is then expanded again. Every descent
   adds a virtual loss (one visit of value 0) along its path for the rest of the tick, so the next
   descent is pushed elsewhere; a descent reaching a terminal node just backs up that node's
   value right away (no model call); one reaching a leaf already chosen this tick is dropped
   (its virtual loss stays, which moves later descents away).
2. Expansion. Every chosen leaf gets k children in one Expand request. Children that repeat an
   earlier sibling's exact tokens are marked `meta["duplicate_of"]` and stay out of the search (a
   repeated sample is not a new action; it would split the branch's statistics). A widened node
   gets k more samples the same way (repeats of its earlier children are duplicates too);
   `meta["mcts_widened"]` counts its extra expansions.
3. Evaluation. Every new child c is evaluated once, when created:
   - leaf_value "prm": v(c) = the aggregated PRM score of the chain root..c (context
     aggregation: min / prod / last / mean), so a value is a judgement of the whole chain, not
     of the last step alone;
   - leaf_value "rollout": a non-terminal c is rolled out once to a terminal T (temperature of
     the run; the rollout steps stay in the tree marked `meta["rollout"]`, outside the search;
     `meta["mcts_rollout"]` of c names T) and v(c) = the aggregated PRM score of the chain root..T; a terminal c gets its own
     chain score.
   Priors of the new children (option `prior`): "uniform" = 1/k; "prm" = softmax of the
   children's own PRM step scores / prior_temperature; "policy" = softmax of the children's
   length-normalized policy log-probabilities / prior_temperature. A widened node's priors are
   recomputed over all its children, old and new, so they still sum to 1.
4. Backup. Each new child gets visits = 1 and value_sum = v(c); the leaf and every ancestor up to
   the root get visits += (number of new children) and value_sum += sum of their v(c). A terminal
   node re-selected backs up its stored value v(T) once along its path. Hence, at every moment,
   for each expanded node n: n.visits = [1 if n is not the root] + sum of its children's visits,
   and n.value_sum = [v(n)] + sum of its children's value_sum; for a terminal node
   value_sum = visits * v(T). Q is thus the mean value of every evaluation below a node. v is
   stored in `meta["mcts_value"]`.

Budget (how the run is made comparable to best-of-N at the same N): N = the number of complete
solutions' worth of policy generation, measured in generated tokens. The search stops once the
tokens generated into its tree (expansions, duplicates, rollouts and completions all count)
reach N * L, where L = the mean length in tokens of the complete chains (terminal nodes) in the
tree. Best-of-N at N generates N * L tokens by definition, so both spend the same policy
generation, whatever the problem's depth. Before any chain has finished, L is estimated from
below as (mean step length) * (deepest depth + 1); if that estimate is reached first, the most
visited line is finished by one greedy rollout (temperature 0, `meta["completion"]`, outside the
search statistics), which measures L and gives a candidate answer, and the search goes on. Each
tick expands at most as many leaves as the remaining budget covers at the measured mean cost of
one expansion (at least one, at most `parallel`), so the overshoot stays below one expansion
(plus one completion). In rollout mode an expansion costs k rollouts, so the root's expansion
samples min(k, N) children and the overshoot is below k solutions' worth. The summary is stored in `root.meta["mcts"]`.

Without widening (widen = 0; the default is 1) the search can stop short of its budget, and on
the arith curve it did (benchmarks/results/CURVES.md: 3,661 policy tokens at N = 64 against
~6,100 for the others): every node is expanded once, and with a low-entropy policy most of its
k samples repeat a sibling, so the tree runs out of open leaves (in a pilot at N = 64, 9 of 16
problems stopped so, with 30-50 % of the generated tokens duplicates); or every descent of a
tick ends at a finished chain (re-backing up a terminal costs nothing) until MAX_DESCENTS, so
the tick chooses no leaf. Either way the search ends. With widen > 0 terminal backups raise the
visits above them until an ancestor widens, and an exhausted tree widens, so the search spends
its budget (pilot, 30 arith test problems: 0 of 30 under budget with widen = 1). On the curve
(100 arith test problems, shipped ER-PRM, benchmarks/results/curve-evidence-mcts-widen) widen = 1
with final = "value" (the defaults) reach 55 % at N = 16 and 65 % at N = 64, against 45 % and
49 % for widen = 0, final = "visits" and best-of-N's 50 % / 59 %; they spend 7 % / 21 % more
policy tokens than best-of-N (1,701 vs 1,588; 7,427 vs 6,128), since re-expanding the root
re-reads the prompt. "visits" follows the first good chain (terminal re-backups inflate its
visits), so "value" is the default pick.

Final pick (option `final`): "visits" = descend from the root by most visits (ties: higher Q,
then the earlier child); "value" = descend by highest Q (ties: more visits). If the descent ends
at an unexpanded node, the best-scored terminal below it (a rollout) is taken, else it is
completed by one greedy rollout (temperature 0, marked `meta["completion"]`). "vote" =
PRM-weighted vote over every terminal in the tree (rollout ends included): answer -> sum of
aggregated chain scores, returning the winning answer's best-scored chain.

Options: k (int >= 1, default 4), c_puct (>= 0, default 1.0), prior ("uniform" | "prm" |
"policy", default "prm"), prior_temperature (> 0, default 1.0), leaf_value ("prm" | "rollout"),
parallel (int >= 1, default 4), final ("visits" | "value" | "vote", default "value"), widen
(>= 0, default 1; 0: each node is expanded once).
"""

from __future__ import annotations

import math
from collections import defaultdict

from reasoner.aggregation import answer_key
from reasoner.registry import register_strategy
from reasoner.search import (
    Expand,
    Pick,
    Rollout,
    Score,
    Search,
    SearchContext,
    Strategy,
    best_scored,
    chain_tokens,
    check_choice,
    check_int,
    check_number,
    unique,
    weighted_pick,
)
from reasoner.tree import Node, StepTree

PRIORS = ("uniform", "prm", "policy")
LEAF_VALUES = ("prm", "rollout")
FINAL_MODES = ("visits", "value", "vote")
VALUE = "mcts_value"  # meta key: the node's own evaluation v(n)
EXPANDED = "mcts_expanded"  # meta key: the node's children were generated
WIDENED = "mcts_widened"  # meta key: how many times an expanded node was expanded again
MAX_DESCENTS = 4096  # selection descents per tick, at most


# ---- pure tree logic (no requests) ---------------------------------------------------------------
def search_children(tree: StepTree, node: Node) -> list[Node]:
    """Children that belong to the search (evaluated; not rollouts, duplicates or completions)."""
    return [c for c in tree.children(node) if VALUE in c.meta]


def softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def set_priors(children: list[Node], how: str, temperature: float) -> None:
    if not children:
        return
    if how == "uniform":
        logits = [0.0] * len(children)
    elif how == "prm":
        logits = [(c.prm_score or 0.0) / temperature for c in children]
    else:  # policy: mean log-probability per token, so long steps are not penalized for length
        logits = [c.logprob / max(1, len(c.token_ids)) / temperature for c in children]
    for c, p in zip(children, softmax(logits)):
        c.prior = p


def puct_child(tree: StepTree, node: Node, c_puct: float, virtual: dict[int, int]) -> Node | None:
    """The child maximizing Q + c_puct * P * sqrt(N_parent) / (1 + N_child) (ties: earliest)."""
    children = search_children(tree, node)
    if not children:
        return None
    counts = [c.visits + virtual.get(c.id, 0) for c in children]
    sqrt_parent = math.sqrt(sum(counts))
    best, best_u = None, -math.inf
    for c, n in zip(children, counts):
        q = c.value_sum / n if n else 0.0
        prior = c.prior if c.prior is not None else 1.0 / len(children)
        u = q + c_puct * prior * sqrt_parent / (1 + n)
        if u > best_u:
            best, best_u = c, u
    return best


def expansions(node: Node) -> int:
    """How many times the node's children were sampled (0: a leaf)."""
    return (1 + node.meta.get(WIDENED, 0)) if node.meta.get(EXPANDED) else 0


def widens(node: Node, k: int, widen: float) -> bool:
    """Progressive widening: an expanded node is sampled again while k * (its expansions) <
    widen * sqrt(its visits) (never with widen = 0)."""
    return widen > 0 and k * expansions(node) < widen * math.sqrt(node.visits)


def select(
    tree: StepTree, c_puct: float, virtual: dict[int, int], k: int = 1, widen: float = 0.0
) -> list[Node]:
    """The path root..x where x is the first terminal, unexpanded or widening node on the PUCT
    descent."""
    node = tree.root
    path = [node]
    while not node.terminal and node.meta.get(EXPANDED) and not widens(node, k, widen):
        child = puct_child(tree, node, c_puct, virtual)
        if child is None:  # expanded but nothing usable came back
            break
        node = child
        path.append(node)
    return path


def backup(path: list[Node], values: list[float]) -> None:
    """Add len(values) visits and sum(values) to every node of the path (root included)."""
    total = sum(values)
    for n in path:
        n.visits += len(values)
        n.value_sum += total


def open_leaves(tree: StepTree, widening: bool = False) -> list[Node]:
    """Evaluated nodes that can still be expanded (the root before its first expansion); with
    widening, expanded ones too (they can be sampled again)."""
    nodes = [tree.root] if widening or not tree.root.meta.get(EXPANDED) else []
    nodes += [
        n
        for n in tree.nodes
        if VALUE in n.meta and not n.terminal and (widening or EXPANDED not in n.meta)
    ]
    return [n for n in nodes if not n.terminal]


def generated_tokens(tree: StepTree) -> int:
    return sum(len(n.token_ids) for n in tree.nodes)


def solution_tokens(tree: StepTree) -> float | None:
    """Mean tokens of a complete chain: measured on terminals, else a lower bound; None at start."""
    ends = tree.terminals()
    if ends:
        return sum(chain_tokens(tree, n) for n in ends) / len(ends)
    steps = tree.nodes[1:]
    if not steps:
        return None
    mean_step = sum(len(n.token_ids) for n in steps) / len(steps)
    return mean_step * (max(n.depth for n in steps) + 1)


def descend(tree: StepTree, by: str) -> Node:
    """Follow the most visited (or highest-value) child from the root to a terminal or leaf."""
    node = tree.root
    while not node.terminal:
        children = search_children(tree, node)
        if not children:
            break
        if by == "visits":
            node = max(children, key=lambda c: (c.visits, c.value, -c.id))
        else:
            node = max(children, key=lambda c: (c.value, c.visits, -c.id))
    return node


def subtree_terminals(tree: StepTree, node: Node) -> list[Node]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if n.terminal:
            out.append(n)
        stack.extend(tree.children(n))
    return sorted(out, key=lambda n: n.id)


@register_strategy
class MCTS(Strategy):
    name = "mcts"
    options = {
        "k": 4,
        "c_puct": 1.0,
        "prior": "prm",
        "prior_temperature": 1.0,
        "leaf_value": "prm",
        "parallel": 4,
        "final": "value",
        "widen": 1.0,
    }

    def validate(self) -> None:
        cfg = self.config
        check_int(self.name, "k", cfg["k"], 1)
        check_int(self.name, "parallel", cfg["parallel"], 1)
        check_number(self.name, "c_puct", cfg["c_puct"], 0.0)
        check_number(self.name, "prior_temperature", cfg["prior_temperature"], 0.0, strict=True)
        check_number(self.name, "widen", cfg["widen"], 0.0)
        check_choice(self.name, "prior", cfg["prior"], PRIORS)
        check_choice(self.name, "leaf_value", cfg["leaf_value"], LEAF_VALUES)
        check_choice(self.name, "final", cfg["final"], FINAL_MODES)

    # ------------------------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> Search:
        tree = ctx.tree
        info = {
            "ticks": 0,
            "expansions": 0,
            "expansion_tokens": 0,
            "evaluations": 0,
            "terminal_backups": 0,
            "completions": 0,
            "token_budget": None,
            "solution_tokens": None,
            "tokens_generated": 0,
        }
        tree.root.meta["mcts"] = info
        while True:
            want = self._leaves_this_tick(ctx, info)
            if want < 0:  # the lower-bound budget is spent but no chain has finished yet
                yield from self._complete(ctx, descend(tree, "visits"))
                info["completions"] += 1
                continue
            paths = self._choose_leaves(ctx, want, info) if want else []
            if not paths:
                break
            before = generated_tokens(tree)
            yield from self._expand_and_evaluate(ctx, paths, info)
            info["expansion_tokens"] += generated_tokens(tree) - before
            info["ticks"] += 1
        pick = yield from self._final_pick(ctx)
        info["tokens_generated"] = generated_tokens(tree)
        return pick

    def _leaves_this_tick(self, ctx: SearchContext, info: dict) -> int:
        """How many leaves to expand now: 0 = budget spent, -1 = complete a chain first."""
        if info["expansions"] == 0:
            return 1  # only the root can be expanded
        spent = generated_tokens(ctx.tree)
        length = solution_tokens(ctx.tree)
        if length is None:  # expansions generated nothing at all: nothing left to search
            return 0
        budget = ctx.budget * length
        info["token_budget"], info["solution_tokens"] = budget, length
        if spent >= budget:
            return 0 if ctx.tree.terminals() else -1
        per_expansion = max(1.0, info["expansion_tokens"] / info["expansions"])
        return max(1, min(self.config["parallel"], math.ceil((budget - spent) / per_expansion)))

    def _complete(self, ctx: SearchContext, node: Node):
        """Finish the chain at `node` with one greedy rollout (outside the search statistics)."""
        [[end]] = yield Rollout([node], k=1, temperature=0.0)
        for n in ctx.tree.path(end)[node.depth :]:
            n.meta["completion"] = True
        yield Score([end])
        return end

    def _choose_leaves(self, ctx: SearchContext, want: int, info: dict) -> list[list[Node]]:
        """Selection for one tick: up to `want` distinct leaf paths; terminals backed up inline."""
        tree = ctx.tree
        k, widen = self.config["k"], self.config["widen"]
        want = min(want, len(open_leaves(tree, widening=widen > 0)))
        if want == 0:
            return []
        c_puct = self.config["c_puct"]
        virtual: dict[int, int] = defaultdict(int)
        chosen: list[list[Node]] = []
        taken: set[int] = set()
        # Descents cost no model call; each terminal backup raises its ancestors' visit counts, so
        # PUCT's exploration term soon moves on to a leaf (with c_puct > 0). The cap only guards
        # c_puct = 0, where a best terminal is re-selected forever: the search has converged.
        for _ in range(MAX_DESCENTS):
            if len(chosen) >= want:
                break
            path = select(tree, c_puct, virtual, k, widen)
            end = path[-1]
            if end.terminal:
                if VALUE not in end.meta:  # the root itself closed: nothing left to search
                    break
                backup(path, [end.meta[VALUE]])
                info["terminal_backups"] += 1
                continue
            for n in path:
                virtual[n.id] += 1
            if end.id not in taken:
                taken.add(end.id)
                chosen.append(path)
        return chosen

    def _expand_and_evaluate(self, ctx: SearchContext, paths: list[list[Node]], info: dict):
        cfg = self.config
        tree = ctx.tree
        leaves = [p[-1] for p in paths]
        k = cfg["k"]
        if cfg["leaf_value"] == "rollout" and info["expansions"] == 0:
            k = min(k, ctx.budget)  # each child costs a rollout: the first tick stays within N
        results = yield Expand(leaves, k=k)
        info["expansions"] += len(leaves)
        new: list[list[Node]] = []
        for leaf, children in zip(leaves, results):
            # a widened node's new samples repeat its earlier children's tokens as duplicates
            seen = {tuple(c.token_ids): c.id for c in search_children(tree, leaf)}
            if leaf.meta.get(EXPANDED):
                leaf.meta[WIDENED] = leaf.meta.get(WIDENED, 0) + 1
            leaf.meta[EXPANDED] = True
            kids: list[Node] = []
            for c in unique(children):
                if c is leaf:  # nothing was generated: the controller closed the leaf itself
                    continue
                key = tuple(c.token_ids)
                if key in seen:
                    c.meta["duplicate_of"] = seen[key]
                    continue
                seen[key] = c.id
                kids.append(c)
            new.append(kids)
        children = [c for kids in new for c in kids]
        ends = {c.id: c for c in children}  # the node whose chain gives c's value
        if cfg["leaf_value"] == "rollout":
            live = [c for c in children if not c.terminal]
            if live:
                rolled = yield Rollout(live, k=1)
                for c, [end] in zip(live, rolled):
                    ends[c.id] = end
                    c.meta["mcts_rollout"] = end.id
                    for n in tree.path(end)[c.depth :]:
                        n.meta["rollout"] = True
        if children:
            yield Score(unique(ends[c.id] for c in children))
        for path, kids in zip(paths, new):
            earlier = search_children(tree, path[-1])  # a widened node's (kids have no value yet)
            set_priors(earlier + kids, cfg["prior"], cfg["prior_temperature"])
            values = []
            for c in kids:
                v = ctx.chain_score(ends[c.id])
                c.meta[VALUE] = v
                c.visits, c.value_sum = 1, v
                values.append(v)
            backup(
                path, values
            )  # a leaf that closed itself (no kids) is backed up when re-selected
            info["evaluations"] += len(kids)
        return None

    def _final_pick(self, ctx: SearchContext):
        tree = ctx.tree
        final = self.config["final"]
        if final == "vote":
            ends = [n for n in tree.terminals() if n is not tree.root]
            if ends:
                return weighted_pick(ctx, ends)
            node = descend(tree, "visits")
        else:
            node = descend(tree, final)
        if node is tree.root and not search_children(tree, node) and node.terminal:
            return Pick(node=None, reason="no-terminal")
        if not node.terminal:
            below = subtree_terminals(tree, node)
            if below:
                node, _ = best_scored(ctx, below)
            else:
                node = yield from self._complete(ctx, node)
        candidates: dict[str, float] = {}
        for n in tree.terminals():
            key = answer_key(n.answer)
            if key is not None and VALUE in n.meta:
                candidates[key] = candidates.get(key, 0.0) + n.visits
        return Pick(node=node, score=ctx.chain_score(node), candidates=candidates)
