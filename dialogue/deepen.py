"""Deepen a trained T5 without changing what it computes, so that training can go on with more layers.

Each encoder and decoder block is followed by `factor - 1` copies of itself whose residual outputs (the
self-attention's, the cross-attention's and the feed-forward's output projections) start at zero. A T5 block
adds each sub-layer's output to its input, so a copy starts as the identity: the deeper model gives the same
logits as the original (tested exactly) and training then moves the copies away from the identity (Net2Net's
function-preserving growth, Chen et al. 2016, with copies instead of random blocks). Only block 0 of each stack
holds the relative position bias, which all blocks of the stack share, as in any T5.
"""
from __future__ import annotations

import copy
import re

# Parameters whose zeroing turns a T5 block into the identity: every sub-layer's output projection.
_RESIDUAL_OUTPUTS = ("SelfAttention.o.weight", "EncDecAttention.o.weight", "DenseReluDense.wo.weight")
_BLOCK_KEY = re.compile(r"^(encoder|decoder)\.block\.(\d+)\.(.+)$")


def deepen(model, factor: int):
    """A new `T5ForConditionalGeneration` with `factor` times the blocks of `model`, same outputs, on CPU.

    Block j of each stack is a copy of `model`'s block j // factor; copies with j % factor != 0 have zeroed
    residual outputs. `factor` 1 returns a plain copy; a factor below 1 raises `ValueError`. Gated
    feed-forward layers (T5 v1.1) work the same way: their output projection is `wo` too.
    """
    from transformers import T5ForConditionalGeneration

    if factor < 1:
        raise ValueError(f"deepen factor must be 1 or more, got {factor}")
    config = copy.deepcopy(model.config)
    config.num_layers *= factor
    config.num_decoder_layers *= factor
    grown = T5ForConditionalGeneration(config)
    source = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state = grown.state_dict()
    for key in state:
        match = _BLOCK_KEY.match(key)
        if match is None:
            state[key] = source[key].clone()
            continue
        stack, j, rest = match.group(1), int(match.group(2)), match.group(3)
        origin = f"{stack}.block.{j // factor}.{rest}"
        if origin in source:  # copies past block 0 have no relative_attention_bias of their own
            state[key] = source[origin].clone()
        if j % factor and rest.endswith(_RESIDUAL_OUTPUTS):
            state[key].zero_()
    grown.load_state_dict(state)
    return grown.eval()
