"""How a PRM is initialised from a policy: extra identity layers, an untied readout.

Extra layers: a policy's next-token prediction is only complete at its last layer, so a PRM
fine-tuned from that policy has no layer left in which a later position (the step tag) could
compare "what the model expected" with "what the step says". Appended layers give it that depth.
Each new layer is a copy of the last one with its output projections zeroed, so the residual
stream, and hence every logit, is unchanged until training moves them.

Untied readout: with tied embeddings the PRM's label tokens ("+" / "-") share their rows with the
input embedding, so training the readout rewrites how "+" and "-" read inside every equation.
Untying gives the output head its own copy of the matrix; inputs keep the policy's meaning.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from reasoner.types import ReasonerError

# the residual-writing projections of a LLaMA-style decoder layer (LLaMA, Mistral, Qwen2, ...)
OUTPUT_PROJECTIONS = ("self_attn.o_proj", "mlp.down_proj")


def _decoder_layers(model: Any) -> Any:
    """The decoder layer list of a LLaMA-style model, or a clear error."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or len(layers) == 0:
        raise ReasonerError(
            f"extra_layers needs a LLaMA-style model (model.model.layers); "
            f"{type(model).__name__} has none"
        )
    return layers


def append_identity_layers(model: Any, n: int) -> Any:
    """Append `n` decoder layers (copies of the last, output projections zeroed) in place."""
    if n < 0:
        raise ReasonerError(f"extra_layers must be >= 0, got {n}")
    if n == 0:
        return model
    layers = _decoder_layers(model)
    for _ in range(n):
        index = len(layers)
        layer = copy.deepcopy(layers[-1])
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = index  # the KV cache is indexed by it
        for name in OUTPUT_PROJECTIONS:
            try:
                proj = layer.get_submodule(name)
            except AttributeError:
                raise ReasonerError(
                    f"extra_layers needs LLaMA-style decoder layers with {name}; "
                    f"{type(layer).__name__} has none"
                ) from None
            proj.weight.data.zero_()
            if getattr(proj, "bias", None) is not None:
                proj.bias.data.zero_()
        layers.append(layer)
    config = model.config
    config.num_hidden_layers = len(layers)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and layer_types:
        config.layer_types = layer_types + [layer_types[-1]] * n
    return model


def untie_output_embeddings(model: Any) -> Any:
    """Give the LM head its own copy of a tied embedding matrix (no-op when already untied)."""
    head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    if head is None or embed is None or head.weight is not embed.weight:
        return model
    head.weight = torch.nn.Parameter(embed.weight.detach().clone())
    model.config.tie_word_embeddings = False
    if hasattr(model, "_tied_weights_keys"):
        model._tied_weights_keys = {} if isinstance(model._tied_weights_keys, dict) else []
    return model


def freeze_all_but_top(model: Any, top_layers: int) -> Any:
    """Train only the last `top_layers` decoder layers, the final norm and the output head."""
    layers = _decoder_layers(model)
    if not 1 <= top_layers <= len(layers):
        raise ReasonerError(f"cannot train the top {top_layers} of {len(layers)} layers")
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = [*layers[-top_layers:], model.model.norm, model.get_output_embeddings()]
    for module in trainable:
        for p in module.parameters():
            p.requires_grad_(True)
    return model
