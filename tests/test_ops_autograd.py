"""First and second derivatives of the reference paths (float64 gradcheck / gradgradcheck)."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from stylegan_ops import ACTIVATIONS, fused_bias_act
from stylegan_ops.upfirdn2d_params import UpFirDnParams
from stylegan_ops.upfirdn2d_ref import upfirdn2d_fast, upfirdn2d_simple



pytestmark = pytest.mark.usefixtures("one_torch_thread")


UPFIRDN_CASES = [(2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (-1, 2)), (4, 2, (1, 0))]


@pytest.mark.parametrize("up,down,pad", UPFIRDN_CASES)
@pytest.mark.parametrize("fn", [upfirdn2d_simple, upfirdn2d_fast], ids=["simple", "fast"])
def test_upfirdn2d_ref_gradcheck_input_and_kernel(up, down, pad, fn):
    p = UpFirDnParams.parse(up, down, pad)
    x = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, k: fn(a, k, p), (x, kernel))
    assert gradgradcheck(lambda a, k: fn(a, k, p), (x, kernel))


def _away_from_kinks(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Move x + bias away from 0, where relu/lrelu/elu/selu are not differentiable."""
    s = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return torch.where(s.abs() < 0.1, x + 0.3, x)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_fused_bias_act_ref_gradcheck_and_gradgradcheck(act):
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    x = _away_from_kinks(torch.randn(2, 3, 3, 2, dtype=torch.float64), bias.detach()).requires_grad_()

    def op(a, b):
        return fused_bias_act(a, b, act=act, impl="ref")

    assert gradcheck(op, (x, bias))
    assert gradgradcheck(op, (x, bias))
