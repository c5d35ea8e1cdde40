"""Suite-wide guards: no test may reach the network or a model hub; a test that needs a system part
(chromium, PostgreSQL, the dev extra's playwright and psycopg2) gives up through `system_parts` only."""
from __future__ import annotations

import importlib
import ipaddress
import os
import socket
from types import ModuleType
from typing import Mapping, NoReturn

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded(real):
    def connect(self, address):
        if not _is_local(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real(self, address)

    return connect


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded(_real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded(_real_connect_ex))
    yield


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch intra-op thread. For tests on tiny tensors, extra threads only add
    contention (about 10x slower on a busy 2-core machine). Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


REQUIRE_SYSTEM_TESTS_ENV = "I2EDIT_REQUIRE_SYSTEM_TESTS"


class SystemParts:
    """What a test does when a system part it needs is absent: skip with the reason on a local run, fail with
    the same reason when `$I2EDIT_REQUIRE_SYSTEM_TESTS` is set (`.ci/run` sets it, so CI cannot skip them)."""

    def __init__(self, required: bool):
        self.required = required

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "SystemParts":
        return cls(required=environ.get(REQUIRE_SYSTEM_TESTS_ENV, "") not in ("", "0"))

    def missing(self, reason: str) -> NoReturn:
        if self.required:
            pytest.fail(f"{reason} (${REQUIRE_SYSTEM_TESTS_ENV} is set: this test must run)", pytrace=False)
        pytest.skip(reason)

    def import_module(self, name: str, reason: str) -> ModuleType:
        """`import name`, or `missing(reason)` when it is not installed."""
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            self.missing(f"{reason}: {exc}")


@pytest.fixture(scope="session")
def system_parts() -> SystemParts:
    return SystemParts.from_environment()
