"""HTTP download of weights files: progress bar, resume with HTTP Range, size and checksum check.

A download goes to `<file>.part` first and is renamed only after it checks out, so an interrupted
download resumes where it stopped and a bad one never takes the real file's name.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from editing.weights.registry import MIRROR_ENV, WeightRecord, check_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT = (30, 120)  # seconds: connect, between bytes


class DownloadError(RuntimeError):
    """A download failed or produced a file that does not match its published size or checksum."""


def source_url(record: WeightRecord, url: str | None = None) -> str:
    """Where to fetch `record`: `url` > $I2EDIT_WEIGHTS_MIRROR/<file name> > the registry's download URL."""
    if url:
        return url
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{record.file_name}"
    return record.download_url


def download(record: WeightRecord, directory: Path, url: str | None = None, progress: bool = True) -> Path:
    """Fetch `record` into `directory` (resuming a `.part` file) and check it; returns the final path."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / record.file_name
    try:
        return download_url(source_url(record, url), target, record.sha256, record.size_bytes, progress)
    except DownloadError as exc:
        pages = ", ".join(record.sources)
        raise DownloadError(f"{exc}. You can also download {record.file_name} by hand ({pages}) "
                            f"and save it as {target}") from None


def download_url(url: str, target: Path, sha256: str | None = None, size: int | None = None,
                 progress: bool = True) -> Path:
    """Download `url` to `target` via `target.part`, resuming with a Range request if the part exists.

    After the transfer the size and sha256 are checked where known; a mismatch deletes the part file
    (so the next attempt starts afresh) and raises DownloadError.
    """
    import requests
    from tqdm import tqdm

    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
            if response.status_code == 416 and offset:
                log.info("%s: the server has no bytes past %d; checking the part file as complete", url, offset)
            else:
                if response.status_code == 200:
                    if offset:
                        log.info("%s ignored the resume request; starting %s again", url, target.name)
                    offset = 0
                elif response.status_code != 206:
                    raise DownloadError(f"{url} answered HTTP {response.status_code} {response.reason}")
                if "text/html" in response.headers.get("Content-Type", ""):
                    raise DownloadError(
                        f"{url} returned a web page instead of {target.name} (a quota, login or confirmation page)"
                    )
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length is not None else size
                with open(part, "ab" if offset else "wb") as out, tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=target.name, disable=not progress,
                ) as bar:
                    for block in response.iter_content(CHUNK):
                        out.write(block)
                        bar.update(len(block))
    except requests.RequestException as exc:
        raise DownloadError(f"downloading {url} failed: {exc} (run the command again to resume)") from exc
    result = check_file(part, sha256, size)
    if result.status == "mismatch":
        part.unlink()
        raise DownloadError(f"{target.name} from {url} does not match: {result.detail}; the download was discarded")
    part.replace(target)
    if result.status == "unverified":
        log.info("%s: no published checksum to compare with; its sha256 is %s", target, result.sha256)
    return target
