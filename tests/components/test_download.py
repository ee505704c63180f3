"""Tests for components.ingest.download, against a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import io
import pathlib
import threading
import zipfile
from collections.abc import Iterator

import pytest

from components.ingest import download as dl
from components.ingest.report import DatasetError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; `/truncated.zip` announces more bytes than it sends."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        del format, args

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.endswith("/truncated.zip"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"PK\x03\x04 only a few bytes")
            self.close_connection = True
            return
        super().do_GET()


def _zip(path: pathlib.Path, members: dict[str, str]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    path.write_bytes(buffer.getvalue())


@pytest.fixture()
def server(tmp_path: pathlib.Path) -> Iterator[tuple[str, pathlib.Path]]:
    """A server on 127.0.0.1 for the files of a fresh folder: (base URL, folder)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/files", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture()
def served(server: tuple[str, pathlib.Path]) -> str:
    base_url, root = server
    (root / "files").mkdir()
    _zip(root / "files" / "ml-1m.zip", {"ml-1m/ratings.dat": "1::1::5::1\n", "ml-1m/README": "hi"})
    _zip(root / "files" / "MINDsmall_train.zip", {"behaviors.tsv": "train\n", "news.tsv": "n\n"})
    _zip(root / "files" / "MINDsmall_dev.zip", {"behaviors.tsv": "dev\n", "news.tsv": "d\n"})
    _zip(root / "files" / "ml-latest-small.zip", {"../evil.txt": "x"})
    (root / "files" / "MINDlarge_train.zip").write_bytes(b"this is not a zip file")
    return base_url


def _listing(path: pathlib.Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def test_download_movielens_strips_the_top_folder(
    served: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "data"
    target = dl.download("ml-1m", dest, base_url=served)
    assert target == dest / "ml-1m"
    assert _listing(dest) == ["ml-1m", "ml-1m/README", "ml-1m/ratings.dat"]
    assert (target / "ratings.dat").read_text() == "1::1::5::1\n"
    err = capsys.readouterr().err
    assert "ml-1m.zip:" in err and "done" in err and f"ready in {target}" in err


def test_download_mind_puts_dev_in_a_subfolder(served: str, tmp_path: pathlib.Path) -> None:
    target = dl.download("mind-small", tmp_path / "data", base_url=served + "/")
    assert _listing(target) == [
        "behaviors.tsv",
        "dev",
        "dev/behaviors.tsv",
        "dev/news.tsv",
        "news.tsv",
    ]
    assert (target / "behaviors.tsv").read_text() == "train\n"
    assert (target / "dev" / "behaviors.tsv").read_text() == "dev\n"


def test_existing_folder_is_kept_unless_forced(served: str, tmp_path: pathlib.Path) -> None:
    dest = tmp_path / "data"
    (dest / "ml-1m").mkdir(parents=True)
    (dest / "ml-1m" / "mine.txt").write_text("keep")
    assert dl.download("ml-1m", dest, base_url="http://127.0.0.1:9/") == dest / "ml-1m"
    assert _listing(dest) == ["ml-1m", "ml-1m/mine.txt"]
    dl.download("ml-1m", dest, base_url=served, force=True)
    assert _listing(dest) == ["ml-1m", "ml-1m/README", "ml-1m/ratings.dat"]


def test_unreachable_host_is_a_dataset_error(tmp_path: pathlib.Path) -> None:
    dest = tmp_path / "data"
    with pytest.raises(DatasetError) as info:
        dl.download("ml-1m", dest, base_url="http://127.0.0.1:9/", timeout=5)
    message = str(info.value)
    assert message.startswith("cannot download http://127.0.0.1:9/ml-1m.zip: ")
    assert "refused" in message.lower()
    assert message.endswith(f"copy its files into {dest / 'ml-1m'}/")
    assert "\n" not in message
    assert _listing(dest) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ml-latest-small", "unsafe path '../evil.txt'"),
        ("mind-large", "MINDlarge_train.zip: not a valid zip archive"),
    ],
)
def test_bad_archives_leave_nothing_behind(
    served: str, tmp_path: pathlib.Path, name: str, expected: str
) -> None:
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match=expected):
        dl.download(name, dest, base_url=served)
    assert _listing(dest) == []


def test_http_errors_and_truncation(served: str, tmp_path: pathlib.Path) -> None:
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match=r"MINDsmall_train.zip: HTTP 404"):
        dl.download("mind-small", dest, base_url=served + "/missing")
    assert _listing(dest) == []
    with pytest.raises(DatasetError, match=r"truncated.zip: got \d+ of 1,000 bytes"):
        dl._fetch(served + "/truncated.zip", dest, timeout=5, target=dest / "x")
    assert _listing(dest) == []


def test_unknown_dataset(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'ml-100m'; known: mind-small"):
        dl.download("ml-100m", tmp_path)


def test_official_sources() -> None:
    mind_release = "https://mind201910small.blob.core.windows.net/release"
    assert dl.SOURCES["mind-small"] == (
        dl.Archive(f"{mind_release}/MINDsmall_train.zip"),
        dl.Archive(f"{mind_release}/MINDsmall_dev.zip", "dev"),
    )
    assert dl.SOURCES["mind-large"][1] == dl.Archive(f"{mind_release}/MINDlarge_dev.zip", "dev")
    assert dl.SOURCES["ml-1m"] == (
        dl.Archive("https://files.grouplens.org/datasets/movielens/ml-1m.zip"),
    )
    assert dl.SOURCES["ml-latest-small"] == (
        dl.Archive("https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"),
    )
