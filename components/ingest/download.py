"""Downloads the public datasets from their official hosts.

`download("mind-small", "data")` leaves `data/mind-small/` holding the train zip's files
(behaviors.tsv, news.tsv, entity_embedding.vec, ...) and `data/mind-small/dev/` holding the
dev zip's; MovieLens releases land in `data/ml-1m/` etc. with the zip's top folder removed.

The result appears atomically: archives are streamed to temporary files, extracted into a
hidden staging folder next to the target and renamed into place at the end, so an
interrupted download never leaves a half-filled dataset folder that later looks complete.
Only the standard library is used (urllib).
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import pathlib
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from typing import BinaryIO

from components.ingest.report import DatasetError

MIND_BASE_URL = "https://mind201910small.blob.core.windows.net/release"
MOVIELENS_BASE_URL = "https://files.grouplens.org/datasets/movielens"

_CHUNK_BYTES = 1 << 20
_PROGRESS_STEPS = 20
_UNKNOWN_SIZE_PROGRESS_BYTES = 16 << 20


@dataclasses.dataclass(frozen=True)
class Archive:
    """One zip of a dataset and the sub-folder of the dataset folder it is extracted to."""

    url: str
    subdir: str = ""


SOURCES: dict[str, tuple[Archive, ...]] = {
    "mind-small": (
        Archive(f"{MIND_BASE_URL}/MINDsmall_train.zip"),
        Archive(f"{MIND_BASE_URL}/MINDsmall_dev.zip", "dev"),
    ),
    "mind-large": (
        Archive(f"{MIND_BASE_URL}/MINDlarge_train.zip"),
        Archive(f"{MIND_BASE_URL}/MINDlarge_dev.zip", "dev"),
    ),
    "ml-1m": (Archive(f"{MOVIELENS_BASE_URL}/ml-1m.zip"),),
    "ml-latest-small": (Archive(f"{MOVIELENS_BASE_URL}/ml-latest-small.zip"),),
}
"""The datasets `download` knows, by name."""


def download(
    name: str,
    dest_dir: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> pathlib.Path:
    """Downloads and unpacks dataset `name` into `dest_dir/<name>/`.

    Progress is printed to stderr.

    Args:
        name: A key of `SOURCES`: "mind-small", "mind-large", "ml-1m", "ml-latest-small".
        dest_dir: The folder that receives the dataset folder; created when missing.
        base_url: Replaces the official location of every archive (the file names stay),
            e.g. a mirror, or a local server in tests.
        force: Download again when `dest_dir/<name>/` exists (it is replaced at the end);
            otherwise an existing folder is returned as is.
        timeout: Seconds to wait for the server at connection and at each read.

    Returns:
        The dataset folder.

    Raises:
        DatasetError: On an unknown name, an unreachable host, an HTTP error, a truncated
            transfer or a bad zip; the message is one line with the URL and the reason.
    """
    if name not in SOURCES:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(SOURCES)}")
    dest = pathlib.Path(dest_dir)
    target = dest / name
    if target.exists() and not force:
        print(f"{name}: already present in {target}", file=sys.stderr)
        return target
    dest.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=dest))
    try:
        for archive in SOURCES[name]:
            url = _resolve(archive.url, base_url)
            zip_path = _fetch(url, dest, timeout=timeout, target=target)
            try:
                _extract(zip_path, staging / archive.subdir, url)
            finally:
                zip_path.unlink()
        _replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"{name}: ready in {target}", file=sys.stderr)
    return target


def _resolve(url: str, base_url: str | None) -> str:
    """Moves `url`'s file name under `base_url` when one is given."""
    if base_url is None:
        return url
    return f"{base_url.rstrip('/')}/{url.rsplit('/', 1)[1]}"


def _fetch(
    url: str, tmp_dir: pathlib.Path, *, timeout: float, target: pathlib.Path
) -> pathlib.Path:
    """Streams `url` into a new temporary file in `tmp_dir` and returns its path.

    Raises:
        DatasetError: When the transfer fails or ends before the announced length.
    """
    fd, name = tempfile.mkstemp(prefix=".download.", suffix=".partial", dir=tmp_dir)
    path = pathlib.Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            received, expected = _copy_response(url, out, timeout)
        if expected is not None and received != expected:
            raise DatasetError(
                f"cannot download {url}: got {received:,} of {expected:,} bytes. {_hint(target)}"
            )
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        path.unlink()
        raise DatasetError(f"cannot download {url}: {_reason(error)}. {_hint(target)}") from None
    except BaseException:
        path.unlink()
        raise
    return path


def _copy_response(url: str, out: BinaryIO, timeout: float) -> tuple[int, int | None]:
    """Copies the body of `url` to `out`, printing progress; returns (received, expected)."""
    file_name = url.rsplit("/", 1)[-1]
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received, next_report = 0, 0
        while chunk := response.read(_CHUNK_BYTES):
            out.write(chunk)
            received += len(chunk)
            if received >= next_report:
                print(f"{file_name}: {_progress(received, expected)}", file=sys.stderr, flush=True)
                step = expected // _PROGRESS_STEPS if expected else _UNKNOWN_SIZE_PROGRESS_BYTES
                next_report = received + max(step, 1)
    print(f"{file_name}: {_progress(received, expected)} done", file=sys.stderr, flush=True)
    return received, expected


def _progress(received: int, expected: int | None) -> str:
    if not expected:
        return f"{received / 1e6:,.1f} MB"
    return f"{received / 1e6:,.1f} of {expected / 1e6:,.1f} MB ({100 * received // expected} %)"


def _reason(error: BaseException) -> str:
    """One line saying why a transfer failed."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _hint(target: pathlib.Path) -> str:
    return f"To install by hand, download the archive elsewhere and copy its files into {target}/"


def _extract(zip_path: pathlib.Path, dest: pathlib.Path, url: str) -> None:
    """Extracts a zip into `dest`, dropping a single top-level folder shared by all files.

    MovieLens zips wrap their files in "ml-1m/" and the like, MIND zips do not; both end
    up with the data files directly in `dest`. Members that would escape `dest` are refused.

    Raises:
        DatasetError: When the file is not a valid zip or a member path is unsafe.
    """
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [
                m
                for m in archive.infolist()
                if not m.is_dir() and not m.filename.startswith("__MACOSX/")
            ]
            parts = [pathlib.PurePosixPath(m.filename).parts for m in members]
            strip = _shared_top_folder(parts)
            for member, member_parts in zip(members, parts):
                relative = member_parts[1:] if strip else member_parts
                if not relative or ".." in member_parts or member_parts[0] == "/":
                    raise DatasetError(f"{url}: unsafe path {member.filename!r} in the archive")
                out_path = dest.joinpath(*relative)
                out_path.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(out_path, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK_BYTES)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as error:
        raise DatasetError(f"{url}: not a valid zip archive ({error})") from None
    dest.mkdir(parents=True, exist_ok=True)


def _shared_top_folder(parts: list[tuple[str, ...]]) -> bool:
    """Whether every path is inside one and the same top-level folder."""
    tops = {p[0] for p in parts if p}
    return len(tops) == 1 and all(len(p) > 1 for p in parts)


def _replace(staging: pathlib.Path, target: pathlib.Path) -> None:
    """Renames `staging` to `target`, moving an existing `target` out of the way first."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)
