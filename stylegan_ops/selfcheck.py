"""Self-check of a freshly built CUDA extension against the pure-PyTorch reference, once per build.

The first time `impl` hands out the extension for a device, `verdict_for(build, device)` runs both
ops through their CUDA autograd Functions on small random inputs and compares every result with
the reference computed in float64 on the CPU from the same (rounded) inputs:

- `fused_bias_act`: every activation in float32 (forward, gradients of x and bias, second-order
  gradients of x, bias and the incoming gradient), a 2-D input without bias, and lrelu and linear
  (the generator's) in float16 (forward and gradients);
- `upfirdn2d`: the generator's and discriminator's resampling steps and harder ones (up and down
  1, 2 and 4, anisotropic factors, kernels of 2 to 5 taps, cropping pads, a non-contiguous input)
  in float32 (forward, gradient, second order) and the generator's three in float16.

Each element passes when |kernel − reference| ≤ tolerance · (|reference| + max(rms(reference), 1)),
with the tolerance of `TOLERANCES` (×4 for gradients, ×16 for second order); a case reports its
worst element (the largest error relative to what it was allowed). The verdict (per op passed or
not, and each case's error) is stored beside the build, `<build dir>/selfcheck-<device key>.json`,
with a key of the Python sources that drive the kernels and check them; a later process with the
same build, GPU architecture and sources reads it instead of checking again. The inputs come from
a private generator, so the check leaves the global random state alone, and it runs the same under
`torch.no_grad()` or `torch.inference_mode()`.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Sequence

import torch

from stylegan_ops.activations import ACTIVATIONS, get_activation
from stylegan_ops.bias_act_cuda import bias_act_kernels
from stylegan_ops.bias_act_ref import bias_act_ref
from stylegan_ops.build import BuildResult
from stylegan_ops.upfirdn2d_cuda import upfirdn2d_kernels
from stylegan_ops.upfirdn2d_params import UpFirDnParams
from stylegan_ops.upfirdn2d_ref import upfirdn2d_simple

log = logging.getLogger(__name__)

OPS = ("fused_bias_act", "upfirdn2d")
CHECKS = ("forward", "gradient", "second-order")
FORMAT = 1
# dtype -> tolerance of the forward result, relative to |reference| + max(rms(reference), 1).
TOLERANCES = {torch.float32: 1e-5, torch.float16: 2e-3}
_ORDER_FACTOR = {"forward": 1, "gradient": 4, "second-order": 16}

_lock = threading.Lock()
_verdicts: dict[tuple[Path, torch.device], "Verdict"] = {}
_warned: set[tuple[Path, torch.device]] = set()


@dataclass(frozen=True)
class CaseResult:
    """One comparison: `op` on `case` (parameters and dtype), one `check` of `CHECKS`."""

    op: str
    case: str
    check: str
    ok: bool
    max_error: float | None = None  # |kernel - reference| at the worst element of the check's tensors
    allowed: float | None = None  # the tolerance that element was held to
    error: str | None = None  # what the kernels raised, or why the results cannot be compared

    def describe(self) -> str:
        """'<case>, <check>: error 1.0e-02 (allowed 4.0e-05)', or what was raised."""
        if self.error is not None:
            return f"{self.case}, {self.check}: {self.error}"
        return f"{self.case}, {self.check}: error {self.max_error:.1e} (allowed {self.allowed:.1e})"


@dataclass
class Verdict:
    """The outcome of one self-check: which ops passed, and every case."""

    passed: dict[str, bool]
    cases: list[CaseResult]
    device: str
    seconds: float
    checked_at: str
    source_key: str
    path: Path | None = None  # where it is stored (None: not stored)

    def ok(self, op: str) -> bool:
        return self.passed.get(op, False)

    def first_failure(self, op: str) -> CaseResult | None:
        return next((c for c in self.cases if c.op == op and not c.ok), None)

    def to_json(self) -> dict:
        return {"format": FORMAT, "source_key": self.source_key, "device": self.device, "checked_at": self.checked_at,
                "seconds": self.seconds, "passed": self.passed, "cases": [dataclasses.asdict(c) for c in self.cases]}

    @classmethod
    def from_json(cls, data: dict, path: Path) -> "Verdict":
        return cls(passed=dict(data["passed"]), cases=[CaseResult(**c) for c in data["cases"]], device=data["device"],
                   seconds=float(data["seconds"]), checked_at=data["checked_at"], source_key=data["source_key"],
                   path=path)


def verdict_for(result: BuildResult, device: torch.device, rerun: bool = False) -> Verdict:
    """The self-check verdict of the extension `result` on `device`: from memory, else from the file
    beside the build, else checked now (and stored). Logs one warning per process when an op failed.
    `rerun` checks again even when a verdict is stored."""
    key = (result.build_dir, device)
    verdict = _verdicts.get(key)
    if verdict is not None and not rerun:
        return verdict
    with _lock:
        path = result.build_dir / f"selfcheck-{device_key(device)}.json"
        verdict = None if rerun else _verdicts.get(key) or _read(path)
        if verdict is None:
            verdict = run_checks(result.module, device)
            verdict.path = _write(path, verdict)
        _verdicts[key] = verdict
        if key not in _warned and not all(verdict.ok(op) for op in OPS):
            _warned.add(key)
            log.warning("%s", failure_message(verdict))
    return verdict


def failure_message(verdict: Verdict) -> str:
    """One message naming each failed op, its first failing case and the error size."""
    failed = [op for op in OPS if not verdict.ok(op)]
    details = "; ".join(f"{op} ({_describe_first_failure(verdict, op)})" for op in failed)
    where = f"; verdict: {verdict.path}" if verdict.path else ""
    return (f"the compiled stylegan_ops kernels failed their self-check against the reference on {verdict.device}: "
            f"{details}. impl='auto' runs the pure-PyTorch reference for {' and '.join(failed)} instead; "
            f"`i2edit ops check` lists every case{where}")


def _describe_first_failure(verdict: Verdict, op: str) -> str:
    case = verdict.first_failure(op)
    return case.describe() if case else "not checked"


def device_key(device: torch.device) -> str:
    """'sm90' for a CUDA device of compute capability 9.0; the device type otherwise."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"sm{major}{minor}"
    return device.type


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})"
    return str(device)


def source_key() -> str:
    """Hash of this package's Python files (the autograd Functions, the references, these cases) and
    the torch version: a verdict stored under another key is checked again."""
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_checks(plugin: ModuleType, device: torch.device) -> Verdict:
    """Run every case of both ops with the extension `plugin` on `device`; nothing is stored."""
    start = time.perf_counter()
    cases: list[CaseResult] = []
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        for index, case in enumerate(_cases()):
            cases.extend(_run_case(case, plugin, device, seed=index))
    passed = {op: all(c.ok for c in cases if c.op == op) for op in OPS}
    verdict = Verdict(passed, cases, device_description(device), time.perf_counter() - start,
                      datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), source_key())
    log.info("self-check of the compiled stylegan_ops on %s: %s (%d comparisons, %.2f s)", verdict.device,
             ", ".join(f"{op} {'passed' if ok else 'FAILED'}" for op, ok in passed.items()), len(cases),
             verdict.seconds)
    return verdict


@dataclass(frozen=True)
class _Case:
    """One op call: `inputs(gen)` makes the float64 differentiable inputs (x first); `call(plugin, *inputs)`
    runs the kernels when `plugin` is a module, the reference when it is None."""

    op: str
    label: str
    dtype: torch.dtype
    order: int  # highest derivative checked: 1 or 2
    inputs: Callable[[torch.Generator], list[torch.Tensor]]
    call: Callable[..., torch.Tensor]
    non_contiguous: bool = False


def _cases() -> list[_Case]:
    return _bias_act_cases() + _upfirdn2d_cases()


def _bias_act_cases() -> list[_Case]:
    def make(shape: Sequence[int], with_bias: bool) -> Callable[[torch.Generator], list[torch.Tensor]]:
        def inputs(gen: torch.Generator) -> list[torch.Tensor]:
            bias = torch.randn(shape[1], generator=gen, dtype=torch.float64)
            x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 3
            s = x + bias.reshape([1, -1] + [1] * (len(shape) - 2)) if with_bias else x
            x = torch.where(s.abs() < 0.1, x + 0.3, x)  # away from the kinks of relu, lrelu, elu, selu at 0
            return [x, bias] if with_bias else [x]
        return inputs

    def op(act: str) -> Callable[..., torch.Tensor]:
        spec = get_activation(act)
        alpha, gain = (spec.default_alpha or 0.0), spec.default_gain

        def call(plugin, x, bias=None):
            if plugin is None:
                return bias_act_ref(x, bias, spec, alpha, gain)
            return bias_act_kernels(plugin, x, bias, spec, alpha, gain)
        return call

    shape = (2, 8, 5, 6)
    cases = [_Case("fused_bias_act", f"act={act} {list(shape)} with bias float32", torch.float32, 2,
                   make(shape, True), op(act)) for act in ACTIVATIONS]
    cases.append(_Case("fused_bias_act", "act=lrelu [4, 16] without bias float32", torch.float32, 2,
                       make((4, 16), False), op("lrelu")))
    cases += [_Case("fused_bias_act", f"act={act} {list(shape)} with bias float16", torch.float16, 1,
                    make(shape, True), op(act)) for act in ("lrelu", "linear")]
    return cases


# (up, down, pad, kernel taps or 2-D shape, kernel gain): the generator's Upsample and Blur, the
# discriminator's downsampling, then less common factors, pads and kernel shapes.
_GENERATOR_RESAMPLING = [
    (2, 1, (2, 1), [1, 3, 3, 1], 4.0),
    (1, 1, (1, 1), [1, 3, 3, 1], 4.0),
    (1, 2, (1, 1), [1, 3, 3, 1], 1.0),
]
_OTHER_RESAMPLING = [
    (1, 1, (0, 0), (3, 3), 1.0),
    (4, 1, (3, 2), (5, 4), 1.0),
    (1, 4, (2, 1), (4, 5), 1.0),
    (4, 2, (-1, 3), (3, 3), 1.0),
    (2, 4, (3, -2), (4, 3), 1.0),
    (1, 1, (-2, -1), (2, 2), 1.0),
    ((2, 1), (1, 2), (1, 2, -1, 0), (4, 3), 1.0),
]


def _upfirdn2d_cases() -> list[_Case]:
    in_shape = (2, 3, 9, 8)

    def make_case(setting, dtype: torch.dtype, order: int, non_contiguous: bool = False) -> _Case:
        up, down, pad, taps, gain = setting
        params = UpFirDnParams.parse(up, down, pad)
        fixed = isinstance(taps, list)
        kh, kw = (len(taps), len(taps)) if fixed else taps

        def inputs(gen: torch.Generator) -> list[torch.Tensor]:
            kernel = (torch.tensor(taps, dtype=torch.float64).outer(torch.tensor(taps, dtype=torch.float64))
                      if fixed else torch.randn(kh, kw, generator=gen, dtype=torch.float64))
            kernel = kernel / kernel.sum() * gain if fixed else kernel
            return [torch.randn(*in_shape, generator=gen, dtype=torch.float64), kernel]

        def call(plugin, x, kernel):
            if plugin is None:
                return upfirdn2d_simple(x, kernel, params)
            return upfirdn2d_kernels(plugin, x, kernel, params)

        label = (f"up={_factor(up)} down={_factor(down)} pad={tuple(pad)} kernel {kh}x{kw} {list(in_shape)}"
                 f"{' non-contiguous' if non_contiguous else ''} {str(dtype).removeprefix('torch.')}")
        return _Case("upfirdn2d", label, dtype, order, inputs, call, non_contiguous)

    cases = [make_case(s, torch.float32, 2) for s in _GENERATOR_RESAMPLING + _OTHER_RESAMPLING]
    cases.append(make_case(_GENERATOR_RESAMPLING[0], torch.float32, 1, non_contiguous=True))
    cases += [make_case(s, torch.float16, 1) for s in _GENERATOR_RESAMPLING]
    return cases


def _factor(value) -> str:
    return str(value) if isinstance(value, int) else f"({value[0]},{value[1]})"


def _run_case(case: _Case, plugin: ModuleType, device: torch.device, seed: int) -> list[CaseResult]:
    """Compare the kernels with the reference on `case`; one result per check up to `case.order`."""
    values = case.inputs(torch.Generator().manual_seed(seed))
    if case.op == "upfirdn2d":  # the kernels treat the FIR kernel as a constant, in float32
        differentiable, constants = values[:1], [t.float() for t in values[1:]]
    else:
        differentiable, constants = values, []
    # Inputs and incoming gradients are rounded to the case's dtype, so that both sides see the same numbers.
    rounded = [t.to(case.dtype) for t in differentiable]
    expected: dict[str, list[torch.Tensor | None]] = {}
    _derivatives(case, None, [t.double() for t in rounded], [t.double() for t in constants], seed, expected)
    device_inputs = [t.to(device) for t in rounded]
    if case.non_contiguous:  # the same values in a transposed memory layout
        device_inputs[0] = device_inputs[0].transpose(2, 3).contiguous().transpose(2, 3)
    got: dict[str, list[torch.Tensor | None]] = {}
    failure = None
    try:
        _derivatives(case, plugin, device_inputs, [t.to(device) for t in constants], seed, got)
    except Exception as exc:  # a kernel that raises fails its check and the ones after it
        text = str(exc).strip()
        failure = f"raised {type(exc).__name__}" + (f": {text.splitlines()[0]}" if text else "")
    return [_compare(case, check, got[check], expected[check]) if check in got
            else CaseResult(case.op, case.label, check, False, error=failure)
            for check in CHECKS[:case.order + 1]]


def _derivatives(case: _Case, plugin: ModuleType | None, inputs: list[torch.Tensor], constants: list[torch.Tensor],
                 seed: int, out: dict[str, list[torch.Tensor | None]]) -> None:
    """Fill `out` with the forward result, the gradient of each input for a random incoming gradient dy
    and, for order 2, the gradient of x's gradient (for a random v) with respect to every input and dy;
    each as float64 on the CPU, in that order (a check that raises leaves the later ones out).

    dy and v are drawn from `seed` and rounded to the case's dtype, so both sides use the same ones."""
    gen = torch.Generator().manual_seed(seed + 10_000)
    inputs = [t.detach().requires_grad_() for t in inputs]
    y = case.call(plugin, *inputs, *constants)
    out["forward"] = _on_cpu([y])
    dy = _random_like(y, case.dtype, gen).requires_grad_(case.order >= 2)
    # Vector-Jacobian products as gradients of scalars: the same numbers, and autograd.grad with explicit
    # output gradients would import sympy on first use (about a second, most of the check's first run).
    grads = torch.autograd.grad((y * dy).sum(), inputs, create_graph=case.order >= 2)
    out["gradient"] = _on_cpu(grads)
    if case.order >= 2:
        v = _random_like(grads[0], case.dtype, gen)
        out["second-order"] = _on_cpu(torch.autograd.grad((grads[0] * v).sum(), inputs + [dy], allow_unused=True))


def _on_cpu(tensors: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
    return [None if t is None else t.detach().to("cpu", torch.float64) for t in tensors]


def _random_like(t: torch.Tensor, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """Standard normal values shaped like `t`, rounded to `dtype`, on `t`'s device in `t`'s dtype."""
    return torch.randn(t.shape, generator=gen, dtype=torch.float64).to(dtype).to(t.device, t.dtype)


def _compare(case: _Case, check: str, got: list[torch.Tensor | None],
             expected: list[torch.Tensor | None]) -> CaseResult:
    tolerance = TOLERANCES[case.dtype] * _ORDER_FACTOR[check]
    worst_error, worst_allowed, worst_ratio = 0.0, tolerance, 0.0
    for g, e in zip(got, expected):
        if g is None and e is None:
            continue
        g = torch.zeros_like(e) if g is None else g
        e = torch.zeros_like(g) if e is None else e
        if g.shape != e.shape:
            return CaseResult(case.op, case.label, check, False,
                              error=f"shape {list(g.shape)} differs from the reference's {list(e.shape)}")
        if not torch.isfinite(g).all():
            return CaseResult(case.op, case.label, check, False, error="the kernels returned NaN or Inf")
        if not e.numel():
            continue
        errors = (g - e).abs()
        allowed = tolerance * (e.abs() + max(float(e.square().mean().sqrt()), 1.0))
        i = int((errors / allowed).argmax())
        if float(errors.flatten()[i] / allowed.flatten()[i]) >= worst_ratio:
            worst_error, worst_allowed = float(errors.flatten()[i]), float(allowed.flatten()[i])
            worst_ratio = worst_error / worst_allowed
    return CaseResult(case.op, case.label, check, worst_error <= worst_allowed, worst_error, worst_allowed)


def _read(path: Path) -> Verdict | None:
    """The stored verdict at `path` if it is readable and was made by the current sources."""
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT or data.get("source_key") != source_key():
            return None
        return Verdict.from_json(data, path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(path: Path, verdict: Verdict) -> Path | None:
    """Store `verdict` at `path` atomically; None (and a log line) when the cache is not writable."""
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(verdict.to_json(), f, indent=1)
        os.replace(temp, path)
    except OSError as exc:
        log.warning("could not store the stylegan_ops self-check verdict in %s (%s); it will run again next time",
                    path, exc)
        return None
    return path
