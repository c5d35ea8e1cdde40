"""Lazy build of the CUDA extension (`csrc/`) with `torch.utils.cpp_extension.load` and ninja.

Nothing here runs at import. `load_build(device)` (or `load_plugin`) builds on first use, into
`cache_root() / "<source key>-<arch key>"`, where the source key hashes the C++/CUDA sources and
the torch, CUDA and Python versions, and the arch key the list of GPU architectures compiled for.
A later process (or another arch list that covers the GPU, such as the one `i2edit ops build`
made) reuses the build. Before compiling, the usual causes of failure are checked and reported
as `OpsBuildError` with what to do: CPU-only torch, no ninja, no nvcc, an nvcc whose major
version differs from torch's CUDA, a GPU architecture this nvcc cannot compile for.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

EXTENSION_NAME = "i2edit_stylegan_ops"
CSRC_DIR = Path(__file__).with_name("csrc")
SOURCES = ("ops.cpp", "bias_act_kernel.cu", "upfirdn2d_kernel.cu")
CACHE_ENV_VAR = "I2EDIT_OPS_CACHE"
ARCHS_FILE = "archs.txt"

_lock = threading.Lock()
_loaded: "BuildResult | None" = None
_failure: "OpsBuildError | None" = None


def _cpp_extension() -> ModuleType:
    """torch.utils.cpp_extension, imported without its import-time warning about CUDA_HOME
    (we choose the toolkit ourselves, see `_cuda_home`)."""
    torch_log = logging.getLogger("torch.utils.cpp_extension")
    def quiet(record: logging.LogRecord) -> bool:
        return "CUDA_HOME" not in record.getMessage()

    torch_log.addFilter(quiet)
    try:
        from torch.utils import cpp_extension
    finally:
        torch_log.removeFilter(quiet)
    return cpp_extension


class OpsBuildError(RuntimeError):
    """The CUDA extension could not be built or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class BuildResult:
    """A built and imported extension."""

    module: ModuleType
    build_dir: Path
    archs: tuple[str, ...]
    seconds: float
    compiled: bool  # False when an up-to-date build was reused


def cache_root() -> Path:
    """Where builds go: `$I2EDIT_OPS_CACHE`, else `$XDG_CACHE_HOME/i2edit/stylegan_ops`
    (default `~/.cache/i2edit/stylegan_ops`)."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "i2edit" / "stylegan_ops"


def load_plugin(device: torch.device) -> ModuleType:
    """The extension module for a CUDA `device` (see `load_build`); raises `OpsBuildError`."""
    return load_build(device).module


def load_build(device: torch.device) -> BuildResult:
    """The extension for a CUDA `device` and where it was built, built on the first call; later calls
    return it at once.

    A failure is remembered, so the build is attempted once per process; raises `OpsBuildError`.
    """
    global _loaded, _failure
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None and _failure is None:
            try:
                _loaded = _load_for_device(device)
            except OpsBuildError as exc:
                _failure = exc
        if _failure is not None:
            raise _failure
        return _loaded  # type: ignore[return-value]


def build(archs: list[str] | None = None, verbose: bool = False) -> BuildResult:
    """Compile (or reuse) the extension for `archs` (default: `default_archs()`); no GPU needed."""
    archs = archs or default_archs()
    nvcc = _check_toolchain()
    _check_archs_supported(archs, nvcc)
    return _build(archs, verbose)


def default_archs() -> list[str]:
    """Architectures for a build without a GPU: `$TORCH_CUDA_ARCH_LIST` if set, else the
    architectures this torch was built for that the installed nvcc supports, the newest with PTX."""
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if env and env != "native":
        archs = [a for a in re.split(r"[;\s]+", env) if a]
        bad = [a for a in archs if not re.fullmatch(r"\d+\.\d+a?(\+PTX)?", a)]
        if bad:
            raise OpsBuildError(
                f"TORCH_CUDA_ARCH_LIST={env!r}: cannot read {', '.join(bad)}; give compute capabilities "
                "separated by ';', e.g. '8.6' or '8.0;9.0+PTX'"
            )
        return archs
    archs = [_sm_to_arch(a) for a in torch.cuda.get_arch_list() if a.startswith("sm_")]
    nvcc = _find_nvcc()
    if nvcc is not None:
        supported = _nvcc_archs(nvcc)
        archs = [a for a in archs if a.replace(".", "") in supported] or archs
    if not archs:
        raise OpsBuildError(
            "cannot tell which GPU architectures to build for: this torch lists none; "
            "set TORCH_CUDA_ARCH_LIST, e.g. TORCH_CUDA_ARCH_LIST='8.6'"
        )
    archs = sorted(set(archs), key=lambda a: tuple(int(v) for v in a.split(".")))
    archs[-1] += "+PTX"
    return archs


def _load_for_device(device: torch.device) -> BuildResult:
    major, minor = torch.cuda.get_device_capability(device)
    arch = f"{major}.{minor}"
    nvcc = _check_toolchain()
    for build_dir, archs in _existing_builds():
        if _covers(archs, arch):
            log.debug("reusing the CUDA ops build in %s (archs %s)", build_dir, ";".join(archs))
            return _build(archs, verbose=False)
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    archs = default_archs() if env and env != "native" else [arch]
    if not _covers(archs, arch):
        raise OpsBuildError(
            f"TORCH_CUDA_ARCH_LIST={env!r} does not include this GPU's architecture {arch} "
            f"({torch.cuda.get_device_name(device)}); add {arch} to it or unset it"
        )
    _check_archs_supported(archs, nvcc)
    log.info("building the CUDA ops for sm_%d%d: first use, takes minutes, cached for later runs", major, minor)
    return _build(archs, verbose=False)


def _build(archs: list[str], verbose: bool) -> BuildResult:
    cpp_extension = _cpp_extension()

    build_dir = cache_root() / f"{_source_key()}-{_arch_key(archs)}"
    build_dir.mkdir(parents=True, exist_ok=True)
    before = _library_mtime(build_dir)
    start = time.perf_counter()
    try:
        with _build_settings(archs):
            module = cpp_extension.load(
                # One module name per build directory: torch's JIT versioning renames (and rebuilds)
                # a name that was loaded earlier in this process from other sources or flags.
                name=f"{EXTENSION_NAME}_{build_dir.name.replace('-', '_')}",
                sources=[str(CSRC_DIR / s) for s in SOURCES],
                build_directory=str(build_dir),
                extra_cflags=["-O3"],
                extra_cuda_cflags=["-O3", "--allow-unsupported-compiler"],
                verbose=verbose,
            )
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        raise OpsBuildError(_explain_failure(str(exc), build_dir)) from exc
    except ImportError as exc:
        raise OpsBuildError(
            f"the CUDA ops built in {build_dir} do not load ({exc}); delete that directory and try again"
        ) from exc
    (build_dir / ARCHS_FILE).write_text(";".join(archs) + "\n")
    seconds = time.perf_counter() - start
    return BuildResult(module, build_dir, tuple(archs), seconds, compiled=_library_mtime(build_dir) != before)


def _library_mtime(build_dir: Path) -> float | None:
    libraries = sorted(build_dir.glob(f"{EXTENSION_NAME}*.so"))
    return libraries[-1].stat().st_mtime if libraries else None


def _check_toolchain() -> Path:
    """Fail early, with the fix, when this machine cannot build CUDA extensions; returns nvcc."""
    cpp_extension = _cpp_extension()

    if torch.version.cuda is None:
        raise OpsBuildError(
            f"torch {torch.__version__} is a CPU-only build, so the CUDA ops cannot be built; "
            "install a CUDA build of torch, or use impl='ref'"
        )
    if not cpp_extension.is_ninja_available():
        raise OpsBuildError("ninja is required to build the CUDA ops and was not found; run `pip install ninja`")
    nvcc = _find_nvcc()
    if nvcc is None:
        where = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
        raise OpsBuildError(
            (f"CUDA_HOME={where} holds no CUDA toolkit (bin/nvcc and include/cuda_runtime.h); " if where else
             "no CUDA toolkit (nvcc, the CUDA compiler) was found; ")
            + f"install the CUDA toolkit {torch.version.cuda} (the version torch was built with) and set "
            "CUDA_HOME to it, or use impl='ref'"
        )
    nvcc_version = _nvcc_release(nvcc)
    if nvcc_version and nvcc_version.split(".")[0] != torch.version.cuda.split(".")[0]:
        raise OpsBuildError(
            f"{nvcc} is CUDA {nvcc_version} but torch {torch.__version__} was built with CUDA "
            f"{torch.version.cuda}; the major versions must match: install CUDA toolkit "
            f"{torch.version.cuda} and point CUDA_HOME at it (or install a torch built for CUDA {nvcc_version})"
        )
    return nvcc


def _check_archs_supported(archs: list[str], nvcc: Path) -> None:
    supported = _nvcc_archs(nvcc)
    if not supported:
        return
    missing = [a for a in archs if a.split("+")[0].replace(".", "") not in supported]
    if missing:
        raise OpsBuildError(
            f"{nvcc} (CUDA {_nvcc_release(nvcc)}) cannot compile for GPU architecture(s) {', '.join(missing)}; "
            f"it supports sm_{', sm_'.join(sorted(supported, key=int))}. Install a CUDA toolkit that "
            "supports your GPU (and a matching torch), or set TORCH_CUDA_ARCH_LIST to supported archs"
        )


def _explain_failure(message: str, build_dir: Path) -> str:
    tail = "\n".join(message.strip().splitlines()[-40:])
    if "Unsupported gpu architecture" in message or "unsupported gpu architecture" in message:
        hint = ("nvcc does not support a requested GPU architecture; install a newer CUDA toolkit or set "
                "TORCH_CUDA_ARCH_LIST to architectures it supports")
    elif "unsupported GNU version" in message or "unsupported clang version" in message:
        hint = "the host C++ compiler is not supported by this nvcc; install a gcc version it supports and set CXX"
    elif "Ninja is required" in message:
        hint = "run `pip install ninja`"
    else:
        hint = f"the compiler's messages are below (with --verbose, above); the build files are in {build_dir}"
    return f"building the CUDA ops failed: {hint}.\n{tail}"


def _cuda_home() -> Path | None:
    """The CUDA toolkit to build with: `$CUDA_HOME` (or `$CUDA_PATH`) when set, else torch's guess
    if it holds a toolkit, else /usr/local/cuda. (torch guesses the parent of the `nvcc` on PATH; a
    wrapper script such as /usr/local/bin/nvcc makes that /usr/local, which has no libcudart.)"""
    cpp_extension = _cpp_extension()

    explicit = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    candidates = [explicit] if explicit else [cpp_extension.CUDA_HOME, "/usr/local/cuda"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "include" / "cuda_runtime.h").exists() and _nvcc_in(Path(candidate)):
            return Path(candidate)
    return None


def _nvcc_in(cuda_home: Path) -> Path | None:
    nvcc = cuda_home / "bin" / ("nvcc.exe" if platform.system() == "Windows" else "nvcc")
    return nvcc if nvcc.exists() else None


def _find_nvcc() -> Path | None:
    cuda_home = _cuda_home()
    return _nvcc_in(cuda_home) if cuda_home else None


def _nvcc_release(nvcc: Path) -> str:
    try:
        out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    match = re.search(r"release (\d+\.\d+)", out)
    return match.group(1) if match else ""


def _nvcc_archs(nvcc: Path) -> set[str]:
    """Compute capabilities nvcc can target, as digit strings ('86', '120'); empty if it cannot say."""
    try:
        out = subprocess.run([str(nvcc), "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return set()
    return set(re.findall(r"compute_(\d+)", out))


def _sm_to_arch(sm: str) -> str:
    digits = re.sub(r"\D", "", sm)
    return f"{digits[:-1]}.{digits[-1]}"


def _covers(archs: list[str] | tuple[str, ...], arch: str) -> bool:
    """Whether a build for `archs` runs on a GPU of compute capability `arch` ('8.6')."""
    want = tuple(int(v) for v in arch.split("."))
    for entry in archs:
        base = entry.split("+")[0].rstrip("a")
        have = tuple(int(v) for v in base.split("."))
        if have == want or (entry.endswith("+PTX") and have <= want):
            return True
    return False


def _existing_builds() -> list[tuple[Path, list[str]]]:
    """Finished builds of the current sources: (directory, archs)."""
    found = []
    for build_dir in sorted(cache_root().glob(f"{_source_key()}-*")):
        archs_file = build_dir / ARCHS_FILE
        if archs_file.exists() and any(build_dir.glob(f"{EXTENSION_NAME}*.so")):
            found.append((build_dir, archs_file.read_text().strip().split(";")))
    return found


def _source_key() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode())
        digest.update((CSRC_DIR / name).read_bytes())
    versions = f"{torch.__version__}|{torch.version.cuda}|{sys.version_info[0]}.{sys.version_info[1]}"
    digest.update(versions.encode())
    return digest.hexdigest()[:16]


def _arch_key(archs: list[str]) -> str:
    return hashlib.sha256(";".join(archs).encode()).hexdigest()[:8]


@contextlib.contextmanager
def _build_settings(archs: list[str]):
    """For the duration of a build, point cpp_extension at our CUDA toolkit and arch list
    (it reads its module-level CUDA_HOME and $TORCH_CUDA_ARCH_LIST)."""
    cpp_extension = _cpp_extension()

    saved_home = cpp_extension.CUDA_HOME
    saved_archs = os.environ.get("TORCH_CUDA_ARCH_LIST")
    cpp_extension.CUDA_HOME = str(_cuda_home())
    os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(archs)
    try:
        yield
    finally:
        cpp_extension.CUDA_HOME = saved_home
        if saved_archs is None:
            del os.environ["TORCH_CUDA_ARCH_LIST"]
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = saved_archs
