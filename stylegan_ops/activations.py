"""The activation table of `fused_bias_act` (the NVlabs `bias_act` table).

Each entry gives the reference function, its default `alpha` and `gain`, and the index the CUDA
kernel uses for it (`csrc/bias_act_kernel.cu` must agree). `alpha` is used by `lrelu` only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Activation:
    """One activation: `func(x, alpha)` on a tensor, its defaults, and its CUDA kernel index."""

    name: str
    func: Callable[[torch.Tensor, float], torch.Tensor]
    default_alpha: float | None
    default_gain: float
    cuda_index: int


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("linear", lambda x, _: x, None, 1.0, 0),
        Activation("relu", lambda x, _: F.relu(x), None, math.sqrt(2), 1),
        Activation("lrelu", lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2), 2),
        Activation("tanh", lambda x, _: torch.tanh(x), None, 1.0, 3),
        Activation("sigmoid", lambda x, _: torch.sigmoid(x), None, 1.0, 4),
        Activation("elu", lambda x, _: F.elu(x), None, 1.0, 5),
        Activation("selu", lambda x, _: F.selu(x), None, 1.0, 6),
        Activation("softplus", lambda x, _: F.softplus(x), None, 1.0, 7),
        Activation("swish", lambda x, _: torch.sigmoid(x) * x, None, math.sqrt(2), 8),
    )
}


def get_activation(act: str) -> Activation:
    """Look up `act` in the table, with an error listing the valid names."""
    try:
        return ACTIVATIONS[act]
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}") from None
