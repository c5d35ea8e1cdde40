"""CUDA kernels against the reference: forward, backward, double backward, dtypes, layouts.

Skipped without a GPU. On a GPU machine the first test builds the extension for that GPU (minutes,
cached afterwards in the ops cache), so a build failure there fails these tests rather than
skipping them.
"""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from stylegan_ops import ACTIVATIONS, build, fused_bias_act, impl, make_kernel, selfcheck, upfirdn2d
from stylegan_ops.upfirdn2d_params import UpFirDnParams
from stylegan_ops.upfirdn2d_ref import upfirdn2d_simple

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU; none is visible on this machine", allow_module_level=True)

pytestmark = pytest.mark.cuda

# dtype -> (rtol, atol) against a float64 reference computed from the same (rounded) inputs.
TOLERANCES = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}


@pytest.fixture(scope="module")
def plugin():
    return build.load_plugin(torch.device("cuda", torch.cuda.current_device()))


def test_auto_uses_the_extension_for_cuda_tensors(plugin):
    x = torch.zeros(1, 1, 4, 4, device="cuda")
    assert impl.cuda_plugin("auto", x, "upfirdn2d") is plugin
    assert impl.cuda_plugin("ref", x, "upfirdn2d") is None


def test_self_check_passes_on_this_gpu(plugin):
    """The check that gates impl='auto', run afresh here (not read from the cache)."""
    verdict = selfcheck.run_checks(plugin, torch.device("cuda", torch.cuda.current_device()))
    failures = [c.describe() for c in verdict.cases if not c.ok]
    assert not failures, "\n".join(failures)
    assert verdict.seconds < 2.0, f"the self-check took {verdict.seconds:.2f} s; the budget is 2 s"


UPFIRDN_CASES = [
    (1, 1, (0, 0), (3, 3)),
    (2, 1, (2, 1), (4, 4)),
    (2, 1, (1, 1), (3, 3)),
    (4, 1, (3, 2), (5, 4)),
    (1, 2, (1, 1), (4, 4)),
    (1, 4, (2, 1), (4, 5)),
    (2, 2, (1, 0), (4, 4)),
    (4, 2, (-1, 3), (3, 3)),
    (2, 4, (3, -2), (4, 3)),
    (1, 1, (-2, -1), (2, 2)),
    ((2, 1), (1, 2), (1, 2, -1, 0), (4, 3)),
]


def _oracle(x: torch.Tensor, kernel: torch.Tensor, up, down, pad) -> torch.Tensor:
    """float64 CPU reference output for (possibly low-precision) CUDA inputs."""
    return upfirdn2d_simple(x.double().cpu(), kernel.double().cpu(), UpFirDnParams.parse(up, down, pad))


@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
@pytest.mark.parametrize("up,down,pad,kshape", UPFIRDN_CASES)
def test_upfirdn2d_forward_and_backward_match_reference(up, down, pad, kshape, dtype, plugin):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 17, 10, generator=gen).to("cuda", dtype).requires_grad_()
    kernel = torch.randn(*kshape, generator=gen).cuda()
    y = upfirdn2d(x, kernel, up=up, down=down, pad=pad, impl="cuda")
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(y.double().cpu(), _oracle(x.detach(), kernel, up, down, pad), rtol=rtol, atol=atol)
    dy = torch.randn(y.shape, generator=gen).to("cuda", dtype)
    (dx,) = torch.autograd.grad(y, x, dy)
    x64 = x.detach().double().cpu().requires_grad_()
    (expected,) = torch.autograd.grad(_oracle(x64, kernel, up, down, pad), x64, dy.double().cpu())
    torch.testing.assert_close(dx.double().cpu(), expected, rtol=rtol * 4, atol=atol * 4)


@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1)), (1, 2, (1, 1)), (4, 2, (-1, 3)), (1, 1, (1, 2))])
def test_upfirdn2d_cuda_gradcheck_and_gradgradcheck(up, down, pad, plugin):
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, device="cuda", requires_grad=True)
    kernel = torch.randn(3, 4, dtype=torch.float64, device="cuda")

    def op(a):
        return upfirdn2d(a, kernel, up=up, down=down, pad=pad, impl="cuda")

    assert gradcheck(op, (x,))
    assert gradgradcheck(op, (x,))


def test_upfirdn2d_generator_sizes_and_layouts(plugin):
    """Against the reference in float64 (in float32 the GPU reference may use TF32 convolutions)."""
    k = make_kernel([1, 3, 3, 1]).cuda()

    def check(x, kernel, **args):
        expected = upfirdn2d(x.double(), kernel.double(), impl="ref", **args)
        torch.testing.assert_close(upfirdn2d(x, kernel, impl="cuda", **args).double(), expected, rtol=1e-5, atol=1e-5)

    x = torch.randn(4, 512, 64, 64, device="cuda")
    check(x, k * 4, up=2, pad=(2, 1))
    check(x, k, pad=(1, 1))
    check(x, k, down=2, pad=(1, 1))
    check(x[:1, :8].contiguous(memory_format=torch.channels_last), k * 4, up=2, pad=(2, 1))
    check(x[:, ::64, 1:, :-1], k * 4, up=2, pad=(2, 1))  # non-contiguous view


def _away_from_kinks(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    s = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return torch.where(s.abs() < 0.1, x + 0.3, x)


@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_fused_bias_act_forward_and_backward_match_reference(act, dtype, plugin):
    gen = torch.Generator().manual_seed(3)
    bias = torch.randn(8, generator=gen)
    x = _away_from_kinks(torch.randn(3, 8, 5, 6, generator=gen) * 3, bias)
    x, bias = x.to("cuda", dtype).requires_grad_(), bias.to("cuda", dtype).requires_grad_()
    y = fused_bias_act(x, bias, act=act, impl="cuda")
    x64 = x.detach().double().cpu().requires_grad_()
    b64 = bias.detach().double().cpu().requires_grad_()
    y64 = fused_bias_act(x64, b64, act=act, impl="ref")
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(y.double().cpu(), y64, rtol=rtol, atol=atol)
    dy = torch.randn(y.shape, generator=gen).to("cuda", dtype)
    dx, db = torch.autograd.grad(y, (x, bias), dy)
    dx64, db64 = torch.autograd.grad(y64, (x64, b64), dy.double().cpu())
    torch.testing.assert_close(dx.double().cpu(), dx64, rtol=rtol * 4, atol=atol * 4)
    torch.testing.assert_close(db.double().cpu(), db64, rtol=rtol * 4, atol=atol * 4 * x[:, 0].numel() ** 0.5)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_fused_bias_act_cuda_gradcheck_and_gradgradcheck(act, plugin):
    bias = torch.randn(3, dtype=torch.float64, device="cuda", requires_grad=True)
    x = _away_from_kinks(torch.randn(2, 3, 3, 2, dtype=torch.float64, device="cuda"), bias.detach())
    x.requires_grad_()

    def op(a, b):
        return fused_bias_act(a, b, act=act, impl="cuda")

    assert gradcheck(op, (x, bias))
    assert gradgradcheck(op, (x, bias))


def test_fused_bias_act_2d_input_no_bias_and_noncontiguous(plugin):
    x = torch.randn(16, 512, device="cuda")
    torch.testing.assert_close(fused_bias_act(x, None, impl="cuda"), fused_bias_act(x, None, impl="ref"))
    view = torch.randn(4, 32, 9, 9, device="cuda").transpose(2, 3)
    bias = torch.randn(32, device="cuda")
    torch.testing.assert_close(fused_bias_act(view, bias, impl="cuda"), fused_bias_act(view, bias, impl="ref"))


def test_softplus_threshold_matches_reference(plugin):
    x = torch.tensor([[-30.0, -1.0, 19.9, 20.0, 20.1, 50.0]], device="cuda")
    torch.testing.assert_close(fused_bias_act(x, None, act="softplus", impl="cuda"),
                               fused_bias_act(x, None, act="softplus", impl="ref"))
