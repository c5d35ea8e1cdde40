"""Building the CUDA extension: toolchain diagnosis, fallback rules, and one real build.

The real build (`test_i2edit_ops_build_compiles_and_loads`) compiles for one architecture into the
normal ops cache (`$I2EDIT_OPS_CACHE`, default ~/.cache/i2edit/stylegan_ops), so after the first
run it only checks and loads the cached library. It needs nvcc and a CUDA build of torch, not a GPU.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from server.cli import main as i2edit
from stylegan_ops import build, impl

REPO = Path(__file__).resolve().parents[1]
TEST_ARCH = "8.6"


def _can_build() -> str | None:
    """Why this machine cannot build CUDA extensions, or None."""
    try:
        build._check_toolchain()
    except build.OpsBuildError as exc:
        return str(exc)
    return None


needs_toolchain = pytest.mark.skipif(_can_build() is not None, reason=f"cannot build CUDA ops here: {_can_build()}")


@pytest.fixture
def fresh_plugin_state(monkeypatch):
    """Forget any loaded extension, remembered failure and warning, for this test only."""
    monkeypatch.setattr(build, "_loaded", None)
    monkeypatch.setattr(build, "_failure", None)
    monkeypatch.setattr(impl, "_warned", False)


CUDA_TENSOR = SimpleNamespace(device=torch.device("cuda", 0))  # `cuda_plugin` only looks at .device


def test_auto_falls_back_with_one_warning_and_cuda_raises_the_same_reason(monkeypatch, caplog, fresh_plugin_state):
    attempts = []

    def failing_build(device):
        attempts.append(device)
        raise build.OpsBuildError("ninja is required to build the CUDA ops and was not found; run `pip install ninja`")

    monkeypatch.setattr(build, "_load_for_device", failing_build)
    with caplog.at_level(logging.WARNING, logger="stylegan_ops"):
        assert impl.cuda_plugin("auto", CUDA_TENSOR, "upfirdn2d") is None
        assert impl.cuda_plugin("auto", CUDA_TENSOR, "fused_bias_act") is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "pip install ninja" in warnings[0].getMessage()
    with pytest.raises(build.OpsBuildError, match="pip install ninja"):
        impl.cuda_plugin("cuda", CUDA_TENSOR, "upfirdn2d")
    assert len(attempts) == 1  # the failure is remembered, not retried on every call


def test_cpu_tensors_never_touch_the_build(monkeypatch, fresh_plugin_state):
    monkeypatch.setattr(build, "_load_for_device", lambda device: pytest.fail("built for a CPU tensor"))
    assert impl.cuda_plugin("auto", torch.zeros(1), "upfirdn2d") is None
    monkeypatch.setenv("I2EDIT_OPS_IMPL", "ref")
    assert impl.cuda_plugin("auto", CUDA_TENSOR, "upfirdn2d") is None


def test_importing_the_package_compiles_nothing():
    code = ("import sys, stylegan_ops; from stylegan_ops import upfirdn2d, fused_bias_act; "
            "assert 'torch.utils.cpp_extension' not in sys.modules, 'cpp_extension imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_cpu_only_torch_is_reported(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(build.OpsBuildError, match="CPU-only build.*install a CUDA build of torch"):
        build._check_toolchain()


def test_missing_ninja_is_reported(monkeypatch):
    cpp_extension = build._cpp_extension()
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    with pytest.raises(build.OpsBuildError, match="pip install ninja"):
        build._check_toolchain()


def test_missing_toolkit_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(build._cpp_extension(), "is_ninja_available", lambda: True)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    with pytest.raises(build.OpsBuildError, match=f"CUDA_HOME={tmp_path} holds no CUDA toolkit"):
        build._check_toolchain()


def _fake_toolkit(tmp_path: Path, release: str, archs: str) -> Path:
    """A CUDA_HOME whose nvcc reports `release` and lists `archs` (compute_XX lines)."""
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "cuda_runtime.h").write_text("")
    (tmp_path / "bin").mkdir()
    nvcc = tmp_path / "bin" / "nvcc"
    listing = "\\n".join(f"compute_{a}" for a in archs.split())
    nvcc.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--list-gpu-arch" ]; then printf "{listing}\\n"; '
        f'else echo "Cuda compilation tools, release {release}, V{release}.1"; fi\n'
    )
    nvcc.chmod(0o755)
    return nvcc


def test_nvcc_and_torch_cuda_major_mismatch_is_reported(monkeypatch, tmp_path):
    _fake_toolkit(tmp_path, "12.4", "75 80 86")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(build._cpp_extension(), "is_ninja_available", lambda: True)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    with pytest.raises(build.OpsBuildError, match=r"is CUDA 12\.4 but torch .* CUDA 13\.0.*major versions must match"):
        build._check_toolchain()


def test_unsupported_gpu_architecture_is_reported(tmp_path):
    nvcc = _fake_toolkit(tmp_path, "11.0", "60 70 75 80")
    with pytest.raises(build.OpsBuildError, match=r"cannot compile for GPU architecture\(s\) 8\.6.*sm_60, sm_70"):
        build._check_archs_supported(["8.0", "8.6"], nvcc)
    build._check_archs_supported(["7.5", "8.0+PTX"], nvcc)


def test_default_archs_follow_env_then_torch_and_nvcc(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;8.6+PTX")
    assert build.default_archs() == ["8.0", "8.6+PTX"]
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "Ampere")
    with pytest.raises(build.OpsBuildError, match="cannot read Ampere"):
        build.default_archs()
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST")
    _fake_toolkit(tmp_path, "13.0", "75 80 86 90")
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_70", "sm_80", "sm_86", "sm_120", "compute_120"])
    assert build.default_archs() == ["8.0", "8.6+PTX"]


def test_build_covers_a_gpu_exactly_or_through_ptx():
    assert build._covers(["8.0", "8.6"], "8.6")
    assert not build._covers(["8.0", "9.0"], "8.6")
    assert build._covers(["7.5", "8.0+PTX"], "8.9")
    assert not build._covers(["9.0+PTX"], "8.6")


@needs_toolchain
def test_compiler_errors_reach_the_user_with_a_nonzero_exit(monkeypatch, tmp_path, capsys):
    """Broken sources (fast to fail): `i2edit ops build` exits 1 and prints the compiler's message."""
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    for name in build.SOURCES:
        (csrc / name).write_text("this_is_not_valid_cxx;\n")
    monkeypatch.setattr(build, "CSRC_DIR", csrc)
    monkeypatch.setenv("I2EDIT_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", TEST_ARCH)
    assert i2edit(["ops", "build"]) == 1
    err = capsys.readouterr().err
    assert "error: building the CUDA ops failed" in err
    assert "this_is_not_valid_cxx" in err  # the compiler's own diagnostic


@pytest.mark.slow
@needs_toolchain
def test_i2edit_ops_build_compiles_and_loads():
    """One real build for one architecture (minutes the first time; reused afterwards)."""
    env = {**os.environ, "TORCH_CUDA_ARCH_LIST": TEST_ARCH}
    done = subprocess.run([sys.executable, "-m", "server.cli", "ops", "build"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    cache_line = next(line for line in done.stdout.splitlines() if line.startswith("cache: "))
    build_dir = Path(cache_line.removeprefix("cache: "))
    assert build_dir.parent == build.cache_root()
    assert (build_dir / build.ARCHS_FILE).read_text().strip() == TEST_ARCH
    assert list(build_dir.glob(f"{build.EXTENSION_NAME}*.so"))
    # The library imports without a GPU and exports both kernels (loading reuses the build above).
    result = build.build([TEST_ARCH])
    assert not result.compiled and result.build_dir == build_dir
    assert callable(result.module.bias_act) and callable(result.module.upfirdn2d)
