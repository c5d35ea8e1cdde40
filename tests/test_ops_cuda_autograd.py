"""The CUDA path's autograd Functions, run on CPU with Python stand-ins for the two kernels.

The stand-ins take the extension's arguments and compute what `csrc/` computes (the same
per-activation formulas for the first and second derivative; the oracle for upfirdn2d). Checking
the formulas against autograd, and the Functions with gradcheck/gradgradcheck, covers everything
of the CUDA path except the kernels' own arithmetic, which `test_ops_cuda.py` checks on a GPU.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from stylegan_ops import ACTIVATIONS, fused_bias_act, impl, make_kernel, upfirdn2d
from stylegan_ops.bias_act_cuda import _BiasAct
from stylegan_ops.bias_act_ref import bias_act_ref
from stylegan_ops.upfirdn2d_params import UpFirDnParams
from stylegan_ops.upfirdn2d_ref import upfirdn2d_simple

SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


def _sigmoid_terms(s):
    g = torch.sigmoid(s)
    return g, g * (1 - g)


# (f, f', f'') per CUDA activation index, as in csrc/bias_act_kernel.cu.
DERIVATIVES = {
    0: (lambda s, a: s, lambda s, a: torch.ones_like(s), lambda s, a: torch.zeros_like(s)),
    1: (lambda s, a: torch.where(s > 0, s, 0.0), lambda s, a: (s > 0).to(s.dtype), lambda s, a: torch.zeros_like(s)),
    2: (lambda s, a: torch.where(s > 0, s, s * a), lambda s, a: torch.where(s > 0, 1.0, a).to(s.dtype),
        lambda s, a: torch.zeros_like(s)),
    3: (lambda s, a: torch.tanh(s), lambda s, a: 1 - torch.tanh(s) ** 2,
        lambda s, a: -2 * torch.tanh(s) * (1 - torch.tanh(s) ** 2)),
    4: (lambda s, a: torch.sigmoid(s), lambda s, a: _sigmoid_terms(s)[1],
        lambda s, a: _sigmoid_terms(s)[1] * (1 - 2 * torch.sigmoid(s))),
    5: (lambda s, a: torch.where(s > 0, s, torch.expm1(s)), lambda s, a: torch.where(s > 0, 1.0, torch.exp(s)),
        lambda s, a: torch.where(s > 0, 0.0, torch.exp(s))),
    6: (lambda s, a: SELU_SCALE * torch.where(s > 0, s, SELU_ALPHA * torch.expm1(s)),
        lambda s, a: SELU_SCALE * torch.where(s > 0, 1.0, SELU_ALPHA * torch.exp(s)),
        lambda s, a: SELU_SCALE * torch.where(s > 0, 0.0, SELU_ALPHA * torch.exp(s))),
    7: (lambda s, a: torch.where(s > 20, s, torch.log1p(torch.exp(s))),
        lambda s, a: torch.where(s > 20, 1.0, torch.exp(s) / (torch.exp(s) + 1)),
        lambda s, a: torch.where(s > 20, 0.0, _sigmoid_terms(s)[1])),
    8: (lambda s, a: s * torch.sigmoid(s),
        lambda s, a: torch.sigmoid(s) * (1 + s * (1 - torch.sigmoid(s))),
        lambda s, a: _sigmoid_terms(s)[1] * (2 + s * (1 - 2 * torch.sigmoid(s)))),
}


class PythonKernels:
    """Same functions and arguments as the compiled extension (`csrc/ops.cpp`)."""

    calls = 0

    @classmethod
    def bias_act(cls, x, bias, grad, act, alpha, gain, mode):
        cls.calls += 1
        s = x + bias.reshape([1, -1] + [1] * (x.ndim - 2)) if bias.numel() else x
        value = DERIVATIVES[act][mode](s, alpha) * gain
        return value * grad if mode else value

    @classmethod
    def upfirdn2d(cls, x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1):
        cls.calls += 1
        p = UpFirDnParams(up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1)
        return upfirdn2d_simple(x, kernel.to(x.dtype), p)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def stand_in(monkeypatch):
    """Make every call take the CUDA path, with the Python stand-ins as the extension."""
    monkeypatch.setattr(impl, "cuda_plugin", lambda choice, x, op: PythonKernels)
    PythonKernels.calls = 0
    return PythonKernels


def _points(act: str) -> torch.Tensor:
    """Sample points for act, away from its kinks at 0 (and softplus' switch at 20)."""
    s = torch.linspace(-6, 6, 49, dtype=torch.float64)
    s = s[s.abs() > 0.05]
    return torch.cat([s, torch.tensor([25.0, -25.0], dtype=torch.float64)]) if act == "softplus" else s


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_kernel_formulas_match_autograd_of_reference(act):
    spec = ACTIVATIONS[act]
    alpha = 0.2 if act == "lrelu" else 0.0
    f, df, d2f = DERIVATIVES[spec.cuda_index]
    s = _points(act).requires_grad_()
    y = spec.func(s, alpha)
    (first,) = torch.autograd.grad(y.sum(), s, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), s) if first.requires_grad else (torch.zeros_like(s),)
    torch.testing.assert_close(f(s.detach(), alpha), y.detach())
    torch.testing.assert_close(df(s.detach(), alpha), first.detach())
    torch.testing.assert_close(d2f(s.detach(), alpha), second)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_bias_act_function_first_and_second_derivatives(act, stand_in):
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    x = torch.where((x + bias.detach().view(1, 3, 1, 1)).abs() < 0.1, x + 0.3, x).requires_grad_()

    def op(a, b):
        return fused_bias_act(a, b, act=act, impl="cuda")

    assert gradcheck(op, (x, bias))
    assert gradgradcheck(op, (x, bias))
    assert stand_in.calls > 0


def test_bias_act_function_without_bias_and_with_custom_alpha_gain(stand_in):
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    y = fused_bias_act(x, None, act="lrelu", alpha=0.1, gain=3.0)
    torch.testing.assert_close(y, torch.nn.functional.leaky_relu(x, 0.1) * 3.0)
    assert gradgradcheck(lambda a: fused_bias_act(a, None, alpha=0.1, gain=3.0), (x,))


def test_bias_act_third_derivative_is_refused_not_wrong(stand_in):
    spec = ACTIVATIONS["tanh"]
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    y = _BiasAct.apply(x, x.new_empty([0]), (PythonKernels, spec, 0.0, 1.0))
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    torch.testing.assert_close(gg, torch.autograd.grad(torch.autograd.grad(bias_act_ref(x, None, spec, 0.0, 1.0).sum(),
                                                                           x, create_graph=True)[0].sum(), x)[0])
    with pytest.raises(RuntimeError):
        torch.autograd.grad(gg.sum(), x)


UPFIRDN_CASES = [(2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (-1, 2)), (4, 2, (1, 0)), (2, 4, (3, -2)),
                 ((2, 1), (1, 2), (1, 2, -1, 0))]


@pytest.mark.parametrize("up,down,pad", UPFIRDN_CASES)
def test_upfirdn2d_function_first_and_second_derivatives(up, down, pad, stand_in):
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(3, 4, dtype=torch.float64)

    def op(a):
        return upfirdn2d(a, kernel, up=up, down=down, pad=pad, impl="cuda")

    assert gradcheck(op, (x,))
    assert gradgradcheck(op, (x,))
    assert stand_in.calls > 0


@pytest.mark.parametrize("up,down,pad", UPFIRDN_CASES)
@pytest.mark.parametrize("size", [(5, 4), (8, 7)])
def test_upfirdn2d_adjoint_parameters_give_the_input_gradient(up, down, pad, size):
    """`_UpFirDn2d.backward`'s formula (flipped kernel, adjoint params) equals autograd's VJP."""
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(4, 3, dtype=torch.float64)
    p = UpFirDnParams.parse(up, down, pad)
    y = upfirdn2d_simple(x, kernel, p)
    dy = torch.randn_like(y)
    (expected,) = torch.autograd.grad(y, x, dy)
    adjoint = p.adjoint(size[0], size[1], 4, 3)
    torch.testing.assert_close(upfirdn2d_simple(dy, kernel.flip([0, 1]), adjoint), expected)


def test_upfirdn2d_kernel_gradient_goes_to_reference_under_auto(stand_in):
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    kernel = make_kernel([1, 3, 3, 1]).double().requires_grad_()
    upfirdn2d(x, kernel, up=2, pad=(2, 1)).sum().backward()
    assert stand_in.calls == 0 and kernel.grad is not None
    with pytest.raises(ValueError, match="does not differentiate with respect to the kernel"):
        upfirdn2d(x, kernel, up=2, pad=(2, 1), impl="cuda")
    with torch.no_grad():
        upfirdn2d(x, kernel, up=2, pad=(2, 1), impl="cuda")
    assert stand_in.calls == 1


def test_stand_in_matches_reference_forward(stand_in):
    x, bias = torch.randn(2, 4, 3, 3), torch.randn(4)
    torch.testing.assert_close(fused_bias_act(x, bias, act="swish", impl="cuda"),
                               fused_bias_act(x, bias, act="swish", impl="ref"))
    torch.testing.assert_close(fused_bias_act(x, bias), torch.nn.functional.leaky_relu(x + bias.view(1, 4, 1, 1), 0.2)
                               * math.sqrt(2))
