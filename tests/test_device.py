"""dialogue.device.resolve_device: the one `auto` rule every package uses."""
from __future__ import annotations

import pytest
import torch

from dialogue.device import resolve_device


def test_auto_picks_cuda_only_when_a_gpu_is_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == resolve_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_named_devices_pass_through_and_bad_names_say_what_to_use():
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown torch device 'gpu0': use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
