"""Weights registry, weight sets, `i2edit weights` commands and downloads from a server on 127.0.0.1."""
from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import pickle
import re
import threading
from pathlib import Path

import pytest
import torch

from editing.networks.checkpoints import CheckpointError, load_torch_file
from editing.weights import weight_set
from editing.weights.download import DownloadError, download, download_url
from editing.weights.registry import (
    FFHQ_SET, MIRROR_ENV, REGISTRY, WEIGHTS_DIR_ENV, WeightRecord, check_file, weights_dir, weights_dir_origin,
)
from editing.weights.weight_set import ROLES, EditorDefaults, WeightFile, resolve_set, write_manifest
from server.cli import main as i2edit

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` (name -> bytes) with HTTP Range support unless `ignore_range`; logs Range headers."""

    files: dict[str, bytes] = {}
    content_type = "application/octet-stream"
    ignore_range = False
    ranges: list[str | None] = []

    def do_GET(self):
        name = self.path.lstrip("/")
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        requested = self.headers.get("Range")
        type(self).ranges.append(requested)
        match = re.fullmatch(r"bytes=(\d+)-", requested or "")
        if match and not self.ignore_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    handler = type("Handler", (RangeHandler,), {"files": {}, "ranges": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def record(**changes) -> WeightRecord:
    fields = dict(name="payload", file_name="payload.bin", role="generator", sources=("https://example.org/payload",),
                  download_url="http://127.0.0.1:9/unused", sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                  size_bytes=len(PAYLOAD))
    fields.update(changes)
    return WeightRecord(**fields)


def test_registry_records_are_well_formed():
    assert set(FFHQ_SET) == set(ROLES)
    for rec in REGISTRY.values():
        assert rec.role in ROLES and rec.sources and rec.download_url.startswith("https://")
        assert rec.sha256 is None or re.fullmatch(r"[0-9a-f]{8}|[0-9a-f]{64}", rec.sha256)
        if rec.sha256 is not None:  # published in the URL (OpenAI) or as torch.hub's file-name prefix
            assert rec.sha256 in rec.download_url
    # OpenAI publishes the sha256 of ViT-B-32.pt in its URL; nobody publishes one for the Drive files.
    assert REGISTRY["clip-vit-b-32-torchscript"].sha256 in REGISTRY["clip-vit-b-32-torchscript"].download_url
    assert REGISTRY["lpips-alexnet"].sha256 == "7be5be79" and REGISTRY["fid-inception"].sha256 == "6726825d"
    assert REGISTRY["stylegan2-ffhq-config-f"].sha256 is None


def test_a_published_sha256_prefix_is_checked(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    ok = check_file(path, digest[:8])
    assert ok.status == "ok" and "published prefix" in ok.detail
    assert check_file(path, digest).status == "ok"
    assert check_file(path, "00000000").status == "mismatch"
    assert check_file(path, digest[:4]).status == "mismatch"  # too short to mean anything
    assert REGISTRY["ir-se50"].loader == "editing.networks.identity.load_identity"


def test_weights_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    assert weights_dir() == Path("~/.cache/i2edit/weights").expanduser()
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "env"))
    assert weights_dir() == tmp_path / "env"
    assert weights_dir(tmp_path / "cli") == tmp_path / "cli"
    assert weights_dir_origin(tmp_path) == "--weights-dir"


def test_ffhq_set_reports_where_it_looked_and_how_to_get_a_file(tmp_path):
    ws = resolve_set("ffhq", tmp_path)
    assert ws.missing() == ["generator", "e4e", "identity", "clip"]
    with pytest.raises(FileNotFoundError) as err:
        ws.path("identity")
    message = str(err.value)
    assert str(tmp_path / "model_ir_se50.pth") in message and "i2edit weights download ir-se50" in message
    (tmp_path / "e4e_ffhq_encode.pt").write_bytes(b"x")
    (tmp_path / "ViT-B-32.pt").write_bytes(b"x")
    ws = resolve_set(tmp_path)
    assert ws.path("generator") == tmp_path / "e4e_ffhq_encode.pt"  # e4e's decoder serves as the generator
    assert ws.path("clip") == tmp_path / "ViT-B-32.pt"  # the alternative CLIP file that is present
    assert ws.missing() == ["identity"]


def test_fixture_set_loads_every_role(tmp_path):
    ws = resolve_set(i2edit_fixtures(tmp_path))
    assert ws.name == "fixtures" and ws.missing() == []
    generator, e4e, identity, clip = (ws.load(r) for r in ("generator", "e4e", "identity", "clip"))
    assert (generator.size, e4e.encoder.n_styles, identity.kind, clip.image_size) == (32, 8, "arcface", 32)
    ckpt = torch.load(ws.path("generator"))
    assert set(ckpt) == {"g_ema", "latent_avg"} and set(generator.state_dict()) == set(ckpt["g_ema"])
    assert set(torch.load(ws.path("e4e"), weights_only=False)) == {"state_dict", "latent_avg", "opts"}
    ws.files["lpips-backbone"] = WeightFile("lpips-backbone", ws.path("identity"))
    with pytest.raises(ValueError, match="no loader for role 'lpips-backbone'"):
        ws.load("lpips-backbone")


def i2edit_fixtures(tmp_path: Path) -> Path:
    out = tmp_path / "fixtures"
    assert i2edit(["weights", "make-fixtures", "--out", str(out), "--size", "32"]) == 0
    return out


def test_verify_and_list_commands(tmp_path, capsys):
    out = i2edit_fixtures(tmp_path)
    capsys.readouterr()
    assert i2edit(["weights", "verify", "--set", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["status"] for f in report["files"]] == ["ok"] * 4
    data = bytearray((out / "identity.pth").read_bytes())
    data[-1] ^= 0xFF
    (out / "identity.pth").write_bytes(bytes(data))
    assert i2edit(["weights", "verify", "--set", str(out), "identity"]) == 1
    assert "mismatch" in capsys.readouterr().out
    assert i2edit(["weights", "list", "--weights-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert str(tmp_path) in listing and "model_ir_se50.pth" in listing and "missing" in listing


def test_manifest_and_set_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_set, "DEMO_SET_DIR", tmp_path / "no_demo")
    with pytest.raises(FileNotFoundError, match="demo weight set"):
        resolve_set("demo")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "i2edit-weight-set", "files": {"painter": {"file": "x.pt"}}}))
    with pytest.raises(ValueError, match="unknown role 'painter'"):
        resolve_set(bad)
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a weight-set manifest"):
        resolve_set(bad)
    with pytest.raises(FileNotFoundError, match="neither"):
        resolve_set(tmp_path / "nothing-here")


def test_download_with_progress_and_checksum(server, tmp_path):
    handler, base = server
    handler.files["payload.bin"] = PAYLOAD
    path = download(record(), tmp_path, url=f"{base}/payload.bin", progress=False)
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "payload.bin.part").exists()


def test_download_resumes_a_partial_file(server, tmp_path):
    handler, base = server
    handler.files["payload.bin"] = PAYLOAD
    (tmp_path / "payload.bin.part").write_bytes(PAYLOAD[:300_000])
    path = download_url(f"{base}/payload.bin", tmp_path / "payload.bin", record().sha256, len(PAYLOAD), progress=False)
    assert handler.ranges == ["bytes=300000-"]
    assert path.read_bytes() == PAYLOAD


def test_download_restarts_when_the_server_ignores_range(server, tmp_path):
    handler, base = server
    handler.files["payload.bin"] = PAYLOAD
    handler.ignore_range = True
    (tmp_path / "payload.bin.part").write_bytes(b"stale bytes")
    path = download_url(f"{base}/payload.bin", tmp_path / "payload.bin", record().sha256, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_discards_the_download(server, tmp_path):
    handler, base = server
    handler.files["payload.bin"] = PAYLOAD[:-1] + b"\x00"
    with pytest.raises(DownloadError, match=r"payload.bin .*does not match: sha256 .*expected .*by hand"):
        download(record(size_bytes=None), tmp_path, url=f"{base}/payload.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_web_page_and_http_errors_are_clear(server, tmp_path):
    handler, base = server
    handler.files["page"] = b"<html>quota exceeded</html>"
    handler.content_type = "text/html; charset=utf-8"
    with pytest.raises(DownloadError, match="web page instead of payload.bin"):
        download_url(f"{base}/page", tmp_path / "payload.bin", progress=False)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_url(f"{base}/absent", tmp_path / "payload.bin", progress=False)


def test_download_command_uses_the_mirror(server, tmp_path, monkeypatch, capsys):
    handler, base = server
    handler.files["model_ir_se50.pth"] = PAYLOAD
    handler.files["ViT-B-32.pt"] = PAYLOAD  # not OpenAI's file: its published sha256 cannot match
    monkeypatch.setenv(MIRROR_ENV, base)
    assert i2edit(["weights", "download", "ir-se50", "--weights-dir", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "model_ir_se50.pth").read_bytes() == PAYLOAD
    assert "saved" in capsys.readouterr().out
    assert i2edit(["weights", "download", "clip-vit-b-32-torchscript", "--weights-dir", str(tmp_path), "--quiet"]) == 1
    assert "does not match" in capsys.readouterr().err
    assert not (tmp_path / "ViT-B-32.pt").exists()


def test_the_manifest_says_how_the_set_edits(tmp_path):
    from editing.demo_world.settings import DEMO_OPTIMIZER

    (tmp_path / "g.pt").write_bytes(b"x")
    defaults = EditorDefaults(optimizer={"steps": 7, "text_objective": "per_attribute"}, align_faces=False,
                              real_photos=False)
    path = write_manifest(tmp_path, "faces", {"generator": {"file": "g.pt"}}, editor=defaults)
    ws = resolve_set(path)
    assert ws.editor == defaults
    settings = ws.optimizer_settings(preview_every=3)
    assert (settings.steps, settings.text_objective, settings.preview_every) == (7, "per_attribute", 3)
    assert settings.lr == 0.1  # the paper's, where the set says nothing
    assert ws.optimizer_settings(steps=2).steps == 2  # a caller's choice wins over the set's

    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "g.pt").write_bytes(b"x")
    plain = resolve_set(write_manifest(tmp_path / "plain", "plain", {"generator": {"file": "g.pt"}}))
    assert plain.editor == EditorDefaults() and plain.editor.align_faces and plain.editor.real_photos
    assert plain.optimizer_settings().steps == 300  # the paper's
    assert resolve_set("ffhq", tmp_path).editor == EditorDefaults()

    demo = resolve_set("demo").editor  # the shipped set carries what `ship` writes
    assert demo == EditorDefaults(optimizer=DEMO_OPTIMIZER, align_faces=False, real_photos=False)

    data = json.loads(path.read_text())
    for bad in ({"optimizer": [7]}, {"align_faces": "no"}, {"colour": True}, "fast"):
        path.write_text(json.dumps({**data, "editor": bad}))
        with pytest.raises(ValueError, match=r"manifest.json: \"editor\""):
            resolve_set(path)
    path.write_text(json.dumps({**data, "editor": {"optimizer": {"stepz": 3}}}))
    with pytest.raises(ValueError, match=r"weight set 'faces' \(.*manifest.json\): editor settings .*stepz"):
        resolve_set(path).optimizer_settings()


class _RunsCodeWhenUnpickled:
    """Pickles as a call to `print`: what a hostile checkpoint can hide where a class would be."""

    def __reduce__(self):
        return (print, ("code ran while unpickling",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_checkpoints_load_known_classes_and_refuse_other_objects(tmp_path, capsys, zip_format):
    known = tmp_path / "with_args.pt"
    torch.save({"g_ema": {"w": torch.ones(2)}, "args": argparse.Namespace(size=64)}, known,
               _use_new_zipfile_serialization=zip_format)
    loaded = load_torch_file(known, "StyleGAN2 generator")
    assert loaded["args"] == argparse.Namespace(size=64) and torch.equal(loaded["g_ema"]["w"], torch.ones(2))
    with pytest.raises(pickle.UnpicklingError):  # the allowlist is the loader's own, not left in torch's
        torch.load(known, weights_only=True)

    hostile = tmp_path / "hostile.pt"
    torch.save({"g_ema": {"w": torch.ones(2)}, "args": _RunsCodeWhenUnpickled()}, hostile,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError, match=r"generator file .*hostile.pt holds a Python object that i2edit does "
                                              r"not unpickle \(.*print\).*argparse.Namespace only"):
        load_torch_file(hostile, "StyleGAN2 generator")
    assert "code ran" not in capsys.readouterr().out

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(known.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read StyleGAN2 generator file .*truncated.pt"):
        load_torch_file(truncated, "StyleGAN2 generator")
