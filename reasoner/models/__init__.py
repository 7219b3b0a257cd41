"""Model backends: the policy (proposes steps) and the PRM (scores steps), HF by default, vLLM optional."""
