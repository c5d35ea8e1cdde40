"""The self-check of the compiled kernels, on CPU: Python stand-ins play the extension.

`ReferenceKernels` has the extension's interface and the reference's arithmetic (a correct kernel);
the wrong stand-ins below differ from it in one way each. `impl` is pointed at "cpu" tensors and
`build.load_build` at a stand-in, so the public ops take the same path as CUDA tensors on a GPU:
load the build, check it once (or read the stored verdict), run the kernels or bypass them.
"""
from __future__ import annotations

import json
import logging
import re

import pytest
import torch

from server.cli import main as i2edit
from stylegan_ops import build, fused_bias_act, impl, make_kernel, selfcheck, upfirdn2d
from stylegan_ops.reference_kernels import ReferenceKernels

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountingKernels(ReferenceKernels):
    """A correct stand-in that counts its calls per function."""

    calls: dict[str, int]

    @classmethod
    def reset(cls) -> type["CountingKernels"]:
        cls.calls = {"bias_act": 0, "upfirdn2d": 0}
        return cls

    @classmethod
    def bias_act(cls, *args):
        cls.calls["bias_act"] += 1
        return super().bias_act(*args)

    @classmethod
    def upfirdn2d(cls, *args):
        cls.calls["upfirdn2d"] += 1
        return super().upfirdn2d(*args)


class OffsetUpfirdn2d(CountingKernels):
    """upfirdn2d off by 1e-2 everywhere."""

    @classmethod
    def upfirdn2d(cls, *args):
        return super().upfirdn2d(*args) + 1e-2


class RaisingBiasAct(CountingKernels):
    """bias_act raises as a broken kernel launch would."""

    @classmethod
    def bias_act(cls, *args):
        cls.calls["bias_act"] += 1
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


class WrongSecondDerivative(CountingKernels):
    """bias_act's second derivative (mode 2) 10 % too large; forward and first derivative right."""

    @classmethod
    def bias_act(cls, x, bias, grad, act, alpha, gain, mode):
        out = super().bias_act(x, bias, grad, act, alpha, gain, mode)
        return out * 1.1 if mode == 2 else out


class WrongHalfUpfirdn2d(CountingKernels):
    """upfirdn2d right in float32, 5 % too large in float16 (as a wrong half conversion might be)."""

    @classmethod
    def upfirdn2d(cls, x, *args):
        out = super().upfirdn2d(x, *args)
        return out * 1.05 if x.dtype == torch.float16 else out


class WrongDownsampling(CountingKernels):
    """upfirdn2d that keeps the wrong phase when downsampling by 4 (one sample late)."""

    @classmethod
    def upfirdn2d(cls, x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1):
        if down_x == 4:
            pad_x0, pad_x1 = pad_x0 - 1, pad_x1 + 1
        return super().upfirdn2d(x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1)


@pytest.fixture
def use_kernels(monkeypatch, tmp_path):
    """`use_kernels(K)` makes CPU tensors take the kernel path with the stand-in K as the extension,
    built in `tmp_path / "build"`; the process forgets any verdict it has seen. Returns the build."""
    monkeypatch.setattr(impl, "_KERNEL_DEVICE", "cpu")
    build_dir = tmp_path / "build"
    build_dir.mkdir()

    def install(kernels) -> build.BuildResult:
        result = build.BuildResult(kernels.reset(), build_dir, ("cpu",), 0.0, compiled=True)
        monkeypatch.setattr(build, "load_build", lambda device: result)
        monkeypatch.setattr(selfcheck, "_verdicts", {})
        monkeypatch.setattr(selfcheck, "_warned", set())
        return result

    return install


def _inputs():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    return x, torch.randn(4, generator=gen), make_kernel([1, 3, 3, 1]) * 4


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_correct_kernel_passes_and_auto_runs_it(use_kernels, caplog):
    result = use_kernels(CountingKernels)
    x, bias, k = _inputs()
    torch.testing.assert_close(upfirdn2d(x, k, up=2, pad=(2, 1)), upfirdn2d(x, k, up=2, pad=(2, 1), impl="ref"))
    after_first = dict(CountingKernels.calls)
    assert after_first["upfirdn2d"] > 1 and after_first["bias_act"] > 0  # the check ran both ops
    torch.testing.assert_close(upfirdn2d(x, k, pad=(1, 1)), upfirdn2d(x, k, pad=(1, 1), impl="ref"))
    torch.testing.assert_close(fused_bias_act(x, bias), fused_bias_act(x, bias, impl="ref"))
    assert CountingKernels.calls == {"upfirdn2d": after_first["upfirdn2d"] + 1, "bias_act": after_first["bias_act"] + 1}
    assert _warnings(caplog) == []  # auto ran the kernels, once per call, and had nothing to say

    stored = json.loads((result.build_dir / "selfcheck-cpu.json").read_text())
    assert stored["passed"] == {"fused_bias_act": True, "upfirdn2d": True}
    cases = stored["cases"]
    assert {(c["op"], c["check"]) for c in cases} == {(op, check) for op in selfcheck.OPS for check in selfcheck.CHECKS}
    assert all(c["ok"] and c["max_error"] <= c["allowed"] for c in cases)
    labels = " | ".join(c["case"] for c in cases)
    for part in ("float32", "float16", "up=4", "down=4", "up=(2,1)", "pad=(-1, 3)", "kernel 5x4", "kernel 2x2",
                 "non-contiguous", "act=swish", "without bias"):
        assert part in labels, part


@pytest.mark.parametrize(
    "kernels,op,expected",
    [
        (OffsetUpfirdn2d, "upfirdn2d",
         r"up=2 down=1 pad=\(2, 1\) kernel 4x4 .* float32, forward: error 1\.0e-02 \(allowed"),
        (RaisingBiasAct, "fused_bias_act", "act=linear .* forward: raised RuntimeError: CUDA error: an illegal memory"),
        (WrongSecondDerivative, "fused_bias_act", r"act=tanh .* float32, second-order: error"),
        (WrongHalfUpfirdn2d, "upfirdn2d", r"up=2 down=1 pad=\(2, 1\) kernel 4x4 .* float16, forward: error"),
        # up=4's gradient downsamples by 4, so it fails before the forward of down=4 is reached
        (WrongDownsampling, "upfirdn2d", r"up=4 down=1 pad=\(3, 2\) kernel 5x4 .* float32, gradient: error"),
    ],
    ids=["offset", "raises", "second-order", "float16", "down=4"],
)
def test_a_wrong_kernel_is_caught_bypassed_and_warned_once(use_kernels, caplog, kernels, op, expected):
    result = use_kernels(kernels)
    x, bias, k = _inputs()
    x = x.requires_grad_()
    calls = {"upfirdn2d": lambda: upfirdn2d(x, k, up=2, pad=(2, 1)), "fused_bias_act": lambda: fused_bias_act(x, bias)}
    refs = {"upfirdn2d": lambda: upfirdn2d(x, k, up=2, pad=(2, 1), impl="ref"),
            "fused_bias_act": lambda: fused_bias_act(x, bias, impl="ref")}
    kernel_name = "upfirdn2d" if op == "upfirdn2d" else "bias_act"

    y = calls[op]()
    checked = kernels.calls[kernel_name]
    assert checked > 0
    assert torch.equal(y, refs[op]())  # auto ran the reference, exactly
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    (gx_ref,) = torch.autograd.grad(refs[op]().square().sum(), x)
    assert torch.equal(gx, gx_ref)
    for _ in range(3):
        calls[op]()
    assert kernels.calls[kernel_name] == checked  # never again: the failed op is bypassed

    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert f"{op} (" in warnings[0] and "impl='auto' runs the pure-PyTorch reference for " + op in warnings[0]
    assert "i2edit ops check" in warnings[0] and str(result.build_dir / "selfcheck-cpu.json") in warnings[0]
    failure = selfcheck.verdict_for(result, torch.device("cpu")).first_failure(op)
    assert failure is not None
    assert re.search(expected, failure.describe()), failure.describe()
    assert failure.describe() in warnings[0]

    other = "fused_bias_act" if op == "upfirdn2d" else "upfirdn2d"
    other_kernel = "upfirdn2d" if other == "upfirdn2d" else "bias_act"
    before = kernels.calls[other_kernel]
    torch.testing.assert_close(calls[other](), refs[other]())
    assert kernels.calls[other_kernel] == before + 1  # the op that passed still runs its kernel

    stored = json.loads((result.build_dir / "selfcheck-cpu.json").read_text())
    assert stored["passed"] == {op: False, other: True}


def test_cuda_impl_still_runs_a_kernel_that_failed(use_kernels, caplog):
    """impl='cuda' means the kernels, checked or not (the GPU parity tests rely on this)."""
    use_kernels(OffsetUpfirdn2d)
    x, _, k = _inputs()
    torch.testing.assert_close(upfirdn2d(x, k, up=2, pad=(2, 1), impl="cuda"),
                               upfirdn2d(x, k, up=2, pad=(2, 1), impl="ref") + 1e-2)
    assert len(_warnings(caplog)) == 1


def test_the_stored_verdict_is_reused_by_later_processes(use_kernels, caplog, monkeypatch):
    use_kernels(OffsetUpfirdn2d)
    x, _, k = _inputs()
    upfirdn2d(x, k, up=2, pad=(2, 1))
    assert len(_warnings(caplog)) == 1
    caplog.clear()

    use_kernels(OffsetUpfirdn2d)  # a new process: nothing in memory, the verdict file on disk
    torch.testing.assert_close(upfirdn2d(x, k, up=2, pad=(2, 1)), upfirdn2d(x, k, up=2, pad=(2, 1), impl="ref"))
    assert OffsetUpfirdn2d.calls == {"bias_act": 0, "upfirdn2d": 0}  # not checked again
    assert len(_warnings(caplog)) == 1  # but this process is told once too

    use_kernels(CountingKernels)
    monkeypatch.setattr(selfcheck, "source_key", lambda: "changed-python-sources")
    upfirdn2d(x, k, up=2, pad=(2, 1))
    assert CountingKernels.calls["upfirdn2d"] > 1  # other sources: checked again, and now it passes


def test_the_check_runs_under_no_grad_and_inference_mode_and_leaves_the_random_state(use_kernels, caplog):
    use_kernels(WrongSecondDerivative)
    x, bias, _ = _inputs()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with torch.inference_mode():
        y = fused_bias_act(x, bias, act="tanh")
    assert torch.equal(torch.rand(3), expected_next)
    torch.testing.assert_close(y, fused_bias_act(x, bias, act="tanh", impl="ref"))
    assert len(_warnings(caplog)) == 1 and "second-order" in _warnings(caplog)[0]


def test_an_unwritable_cache_keeps_the_verdict_for_this_process(use_kernels, caplog, monkeypatch):
    result = use_kernels(OffsetUpfirdn2d)
    monkeypatch.setattr(build, "load_build", lambda device: build.BuildResult(
        result.module, result.build_dir / "missing", ("cpu",), 0.0, compiled=True))
    x, _, k = _inputs()
    torch.testing.assert_close(upfirdn2d(x, k, up=2, pad=(2, 1)), upfirdn2d(x, k, up=2, pad=(2, 1), impl="ref"))
    warnings = _warnings(caplog)
    assert len(warnings) == 2 and "could not store" in warnings[0] and "will run again next time" in warnings[0]
    assert "verdict:" not in warnings[1]  # not stored, so no file to point at
    upfirdn2d(x, k, up=2, pad=(2, 1))
    assert len(_warnings(caplog)) == 2


def test_i2edit_ops_check_prints_the_verdict_and_cases(use_kernels, capsys):
    use_kernels(CountingKernels)
    assert i2edit(["ops", "check"]) == 0
    out = capsys.readouterr().out
    assert "verdict: fused_bias_act passed, upfirdn2d passed" in out
    assert "selfcheck-cpu.json" in out
    lines = out.splitlines()
    assert any(line.startswith("upfirdn2d ") and "up=4 down=2" in line and line.endswith("ok") for line in lines)
    first_calls = CountingKernels.calls["upfirdn2d"]

    assert i2edit(["ops", "check"]) == 0  # the stored verdict
    assert CountingKernels.calls["upfirdn2d"] == first_calls
    assert i2edit(["ops", "check", "--rerun"]) == 0
    assert CountingKernels.calls["upfirdn2d"] == 2 * first_calls
    capsys.readouterr()

    use_kernels(WrongDownsampling)
    assert i2edit(["ops", "check", "--rerun"]) == 1
    out = capsys.readouterr().out
    assert "verdict: fused_bias_act passed, upfirdn2d FAILED" in out
    failed = [line for line in out.splitlines() if line.startswith("upfirdn2d ") and line.endswith("FAILED")]
    assert any("down=4" in line and " forward " in line for line in failed)
    assert all("down=4" in line or "up=4" in line for line in failed)  # (up=4's gradient downsamples by 4)


def test_i2edit_ops_check_without_a_gpu_says_so(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert i2edit(["ops", "check"]) == 1
    err = capsys.readouterr().err
    assert "error: no CUDA GPU is visible to torch" in err
