"""stylegan_ops reference paths against brute-force loops written from the definitions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylegan_ops import ACTIVATIONS, fused_bias_act, make_kernel, upfirdn2d
from stylegan_ops.upfirdn2d_params import UpFirDnParams
from stylegan_ops.upfirdn2d_ref import upfirdn2d_fast, upfirdn2d_simple


def upfirdn2d_loops(x: np.ndarray, k: np.ndarray, p: UpFirDnParams) -> np.ndarray:
    """The definition, one output sample at a time: out[o] = Σ_t z[o·down + t − pad0] · k[kh−1−t],
    where z is the zero-inserted input (z[m] = x[m / up] when up divides m)."""
    n, c, in_h, in_w = x.shape
    kh, kw = k.shape
    out_h = (in_h * p.up_y + p.pad_y0 + p.pad_y1 - kh + p.down_y) // p.down_y
    out_w = (in_w * p.up_x + p.pad_x0 + p.pad_x1 - kw + p.down_x) // p.down_x
    out = np.zeros((n, c, out_h, out_w))
    for oy in range(out_h):
        for ox in range(out_w):
            acc = np.zeros((n, c))
            for ty in range(kh):
                my = oy * p.down_y + ty - p.pad_y0
                if my < 0 or my % p.up_y or my // p.up_y >= in_h:
                    continue
                for tx in range(kw):
                    mx = ox * p.down_x + tx - p.pad_x0
                    if mx < 0 or mx % p.up_x or mx // p.up_x >= in_w:
                        continue
                    acc += x[:, :, my // p.up_y, mx // p.up_x] * k[kh - 1 - ty, kw - 1 - tx]
            out[:, :, oy, ox] = acc
    return out


CASES = [
    # up, down, pad, kernel shape
    (1, 1, (0, 0), (3, 3)),
    (1, 1, (2, 1), (4, 4)),
    (2, 1, (2, 1), (4, 4)),
    (2, 1, (1, 1), (3, 3)),
    (4, 1, (3, 2), (5, 4)),
    (1, 2, (1, 1), (4, 4)),
    (1, 2, (0, 0), (3, 2)),
    (1, 4, (2, 1), (4, 5)),
    (2, 2, (1, 0), (4, 4)),
    (4, 2, (-1, 3), (3, 3)),
    (2, 4, (3, -2), (4, 3)),
    (1, 1, (-2, -1), (2, 2)),
    (4, 4, (-3, 0), (5, 5)),
    ((2, 1), (1, 2), (1, 2, -1, 0), (4, 3)),
]


@pytest.mark.parametrize("up,down,pad,kshape", CASES)
@pytest.mark.parametrize("fn", [upfirdn2d_simple, upfirdn2d_fast], ids=["simple", "fast"])
def test_upfirdn2d_matches_loops(up, down, pad, kshape, fn):
    gen = torch.Generator().manual_seed(hash((str(up), str(down), pad, kshape)) % 2**31)
    x = torch.randn(2, 3, 7, 10, generator=gen, dtype=torch.float64)
    kernel = torch.randn(*kshape, generator=gen, dtype=torch.float64)
    p = UpFirDnParams.parse(up, down, pad)
    expected = upfirdn2d_loops(x.numpy(), kernel.numpy(), p)
    got = fn(x, kernel, p)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_public_upfirdn2d_shapes_and_float32():
    x = torch.randn(2, 4, 16, 12)
    k = make_kernel([1, 3, 3, 1])
    assert upfirdn2d(x, k * 4, up=2, pad=(2, 1)).shape == (2, 4, 32, 24)
    assert upfirdn2d(x, k, pad=(2, 1)).shape == (2, 4, 16, 12)
    assert upfirdn2d(x, k, down=2, pad=(1, 1)).shape == (2, 4, 8, 6)
    p = UpFirDnParams.parse(2, 1, (2, 1))
    torch.testing.assert_close(upfirdn2d(x, k * 4, up=2, pad=(2, 1), impl="ref"), upfirdn2d_simple(x, k * 4, p))


def test_upsample_keeps_constant_image():
    """make_kernel(k) * up² after zero insertion keeps a constant image constant (away from borders)."""
    x = torch.full((1, 1, 8, 8), 3.0)
    out = upfirdn2d(x, make_kernel([1, 3, 3, 1]) * 4, up=2, pad=(2, 1))
    torch.testing.assert_close(out[..., 2:-2, 2:-2], torch.full_like(out[..., 2:-2, 2:-2], 3.0))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"up": 0}, "up must be"),
        ({"down": (1, 2, 3)}, "down must be"),
        ({"pad": (1, 2, 3)}, "pad must be"),
        ({"pad": (-8, -8)}, "empty output"),
        ({"impl": "fast"}, "impl must be one of"),
    ],
)
def test_upfirdn2d_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        upfirdn2d(torch.randn(1, 1, 6, 6), make_kernel([1, 1]), **kwargs)


def test_upfirdn2d_cuda_impl_needs_cuda_tensor():
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        upfirdn2d(torch.randn(1, 1, 6, 6), make_kernel([1, 1]), impl="cuda")


def test_env_var_selects_impl_and_is_validated(monkeypatch):
    monkeypatch.setenv("I2EDIT_OPS_IMPL", "cuda")
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        fused_bias_act(torch.randn(2, 3), None)
    assert fused_bias_act(torch.randn(2, 3), None, impl="ref").shape == (2, 3)  # per-call wins
    monkeypatch.setenv("I2EDIT_OPS_IMPL", "gpu")
    with pytest.raises(ValueError, match="I2EDIT_OPS_IMPL='gpu'"):
        fused_bias_act(torch.randn(2, 3), None)


SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772
SCALAR_ACTS = {
    "linear": lambda s, a: s,
    "relu": lambda s, a: max(s, 0.0),
    "lrelu": lambda s, a: s if s > 0 else a * s,
    "tanh": lambda s, a: math.tanh(s),
    "sigmoid": lambda s, a: 1 / (1 + math.exp(-s)),
    "elu": lambda s, a: s if s > 0 else math.exp(s) - 1,
    "selu": lambda s, a: SELU_SCALE * (s if s > 0 else SELU_ALPHA * (math.exp(s) - 1)),
    "softplus": lambda s, a: math.log1p(math.exp(s)),
    "swish": lambda s, a: s / (1 + math.exp(-s)),
}
DEFAULT_GAINS = {"linear": 1, "relu": math.sqrt(2), "lrelu": math.sqrt(2), "tanh": 1, "sigmoid": 1,
                 "elu": 1, "selu": 1, "softplus": 1, "swish": math.sqrt(2)}


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_fused_bias_act_matches_scalar_loops(act):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64) * 3
    bias = torch.randn(3, dtype=torch.float64)
    got = fused_bias_act(x, bias, act=act, impl="ref")
    expected = np.empty(tuple(x.shape))
    for index in np.ndindex(*x.shape):
        s = float(x[index]) + float(bias[index[1]])
        expected[index] = SCALAR_ACTS[act](s, 0.2) * DEFAULT_GAINS[act]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_fused_bias_act_defaults_match_rosinality_fused_leaky_relu():
    x, bias = torch.randn(4, 8, 3, 3), torch.randn(8)
    expected = F.leaky_relu(x + bias.view(1, 8, 1, 1), 0.2) * math.sqrt(2)
    torch.testing.assert_close(fused_bias_act(x, bias), expected)
    torch.testing.assert_close(
        fused_bias_act(x, bias, alpha=0.1, gain=1.5), F.leaky_relu(x + bias.view(1, 8, 1, 1), 0.1) * 1.5
    )


def test_fused_bias_act_without_bias_and_on_2d_input():
    x = torch.randn(5, 7)
    torch.testing.assert_close(fused_bias_act(x, None, act="relu"), F.relu(x) * math.sqrt(2))
    torch.testing.assert_close(fused_bias_act(x, torch.ones(7), act="linear"), x + 1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"act": "gelu"}, "unknown activation 'gelu'"),
        ({"act": "tanh", "alpha": 0.1}, "takes no alpha"),
        ({"bias": torch.zeros(4)}, r"bias must be \[C\] = \[3\]"),
    ],
)
def test_fused_bias_act_rejects_bad_arguments(kwargs, match):
    kwargs = {"bias": torch.zeros(3), **kwargs}
    with pytest.raises(ValueError, match=match):
        fused_bias_act(torch.randn(2, 3, 4, 4), **kwargs)
