"""The policy's own confidence in each step: exp(mean token log-probability) under the policy.

A reference verifier that needs no training (prm_recipes, prm_minimal_pairs), and the token
layout and log-probabilities the implicit-PRM probe trains on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def chain_ids(
    policy: Any, problem: str, steps: Sequence[str]
) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of prompt + steps and each step's [begin, end) span; every step but the last is
    encoded together with the policy's step delimiter (its span includes it)."""
    tok, delimiter = policy.tokenizer, policy.step_format.delimiter
    ids, spans = list(policy.encode_prompt(problem)), []
    for i, step in enumerate(steps):
        piece = step + ("" if i + 1 == len(steps) else delimiter)
        begin = len(ids)
        ids += tok.encode(piece, add_special_tokens=False)
        spans.append((begin, len(ids)))
    return ids, spans


def padded(seqs: Sequence[Sequence[int]], pad_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded id batch and its attention mask."""
    width = max(len(x) for x in seqs)
    batch = torch.full((len(seqs), width), pad_id or 0, dtype=torch.long)
    mask = torch.zeros_like(batch)
    for i, x in enumerate(seqs):
        batch[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return batch, mask


def token_logprobs(model: Any, batch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(token t | tokens < t) for t = 1.. of every row: shape [rows, width - 1]."""
    logp = torch.log_softmax(model(input_ids=batch, attention_mask=mask).logits.float(), -1)
    return logp[:, :-1].gather(2, batch[:, 1:, None])[..., 0]


def step_likelihoods(policy: Any, chains: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
    """exp(mean token log-probability) of every step of every (problem, steps) chain under the
    policy, in one padded forward pass (a chain without steps is scored as one empty step)."""
    layouts = [chain_ids(policy, problem, steps or [""]) for problem, steps in chains]
    batch, mask = padded([ids for ids, _ in layouts], policy.tokenizer.pad_token_id)
    with torch.no_grad():
        token_lp = token_logprobs(policy.model, batch, mask)
    return [
        [float(token_lp[i, b - 1 : e - 1].mean().exp()) if e > b else 0.0 for b, e in spans]
        for i, (_, spans) in enumerate(layouts)
    ]


def likelihood_scorer(policy: Any, batch: int = 32):
    """A chain scorer (list of (problem, steps) -> step scores) by step likelihood, `batch`
    chains per forward pass."""

    def score(chains: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        return [
            s
            for k in range(0, len(chains), batch)
            for s in step_likelihoods(policy, chains[k : k + batch])
        ]

    return score
