"""What an ingestion run read, kept and rejected.

Raw public datasets contain odd rows (a malformed entity list, an unlabelled test split, a
timestamp outside the documented period). Readers never crash on such a row: they skip or
repair it and record it here, so a run ends with one report that says exactly how much
data was used and why the rest was not. Reports from parallel workers are merged.

`numbered_lines` is the line source shared by the readers, so that every reader counts
lines, blank lines, encodings and line endings the same way.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
from collections.abc import Iterator
from typing import IO, Any

from components.errors import UserError

MAX_EXAMPLES = 10
"""How many "path:line: reason" examples a report keeps; counts are always complete."""


class DatasetError(UserError):
    """A dataset cannot be used at all: a missing file, a bad header, a failed download.

    Row-level problems are not errors: readers count them in an `IngestReport`.
    """


class MalformedRow(ValueError):
    """A line-level parser rejected a row; the message names the field and the problem."""


@dataclasses.dataclass
class FileStats:
    """Row counts of one source file.

    Attributes:
        rows_read: Non-empty lines (or CSV records) the reader looked at, headers excluded.
        rows_kept: Rows the reader yielded.
        malformed: Rows skipped because they could not be parsed.
    """

    rows_read: int = 0
    rows_kept: int = 0
    malformed: int = 0

    def add(self, other: FileStats) -> None:
        """Adds another file's counts to these."""
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept
        self.malformed += other.malformed


@dataclasses.dataclass
class IngestReport:
    """Per-file row counts, named counters and the first problem examples of a run.

    Readers fetch a file's `FileStats` once with `file()` and increment it directly, because
    a method call per row would dominate the cost of reading MIND-large.

    Attributes:
        files: Row counts keyed by the file's path as given to the reader.
        counters: Named event counts, e.g. "history ids missing from news.tsv".
        examples: The first `MAX_EXAMPLES` problems as "path:line: reason".
    """

    files: dict[str, FileStats] = dataclasses.field(default_factory=dict)
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    examples: list[str] = dataclasses.field(default_factory=list)

    def file(self, path: str | os.PathLike[str]) -> FileStats:
        """Returns the (mutable) counts of `path`, creating them on first use."""
        return self.files.setdefault(os.fspath(path), FileStats())

    def malformed(self, path: str | os.PathLike[str], lineno: int, reason: str) -> None:
        """Records a skipped row of `path` at 1-based line `lineno`."""
        self.file(path).malformed += 1
        self.note(path, lineno, reason)

    def note(self, path: str | os.PathLike[str], lineno: int, reason: str) -> None:
        """Keeps an example of a problem that did not cost the row (it was repaired)."""
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{os.fspath(path)}:{lineno}: {reason}")

    def count(self, name: str, n: int = 1) -> None:
        """Adds `n` to the counter `name`."""
        self.counters[name] = self.counters.get(name, 0) + n

    def merge(self, other: IngestReport) -> None:
        """Adds the counts and examples of `other` (e.g. a parallel worker) to this report."""
        for path, stats in other.files.items():
            self.file(path).add(stats)
        for name, n in other.counters.items():
            self.count(name, n)
        room = MAX_EXAMPLES - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])

    def relabel(self, local_dir: str, source: str) -> None:
        """Names files by where they came from (`source`) instead of a local copy's directory."""
        rename = lambda text: text.replace(local_dir.rstrip("/"), source.rstrip("/"), 1)  # noqa: E731
        self.files = {rename(path): stats for path, stats in self.files.items()}
        self.examples = [rename(example) for example in self.examples]

    @property
    def total_malformed(self) -> int:
        """Rows skipped over all files."""
        return sum(stats.malformed for stats in self.files.values())

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serializable copy of the report."""
        return {
            "files": {path: dataclasses.asdict(s) for path, s in self.files.items()},
            "counters": dict(self.counters),
            "examples": list(self.examples),
        }

    @classmethod
    def from_dict(cls, content: dict[str, Any]) -> IngestReport:
        """The report `to_dict` wrote (how a Beam pipeline hands its report to the executor)."""
        return cls(
            files={path: FileStats(**stats) for path, stats in content["files"].items()},
            counters=dict(content["counters"]),
            examples=list(content["examples"]),
        )

    def to_markdown(self) -> str:
        """Returns the report as Markdown tables (files, then counters, then examples)."""
        lines = ["| file | rows read | rows kept | malformed |", "|---|---:|---:|---:|"]
        for path, s in self.files.items():
            lines.append(f"| `{path}` | {s.rows_read:,} | {s.rows_kept:,} | {s.malformed:,} |")
        if self.counters:
            lines += ["", "| counter | count |", "|---|---:|"]
            lines += [f"| {name} | {n:,} |" for name, n in self.counters.items()]
        if self.examples:
            lines += ["", "Malformed or repaired rows (first examples):", ""]
            lines += [f"- `{example}`" for example in self.examples]
        return "\n".join(lines) + "\n"

    def summary_lines(self) -> list[str]:
        """Returns one plain-text line per file and per counter, for console output."""
        lines = [
            f"{path}: {s.rows_read:,} read, {s.rows_kept:,} kept, {s.malformed:,} malformed"
            for path, s in self.files.items()
        ]
        lines += [f"{name}: {n:,}" for name, n in self.counters.items()]
        return lines


def numbered_lines(
    path: str | os.PathLike[str],
    report: IngestReport,
    *,
    encoding: str = "utf-8",
    fallback_encoding: str | None = None,
) -> Iterator[tuple[int, str]]:
    """Yields `(line number, line)` for each non-blank line of a text file, streaming.

    The file is split on "\\n" only (a stray "\\r" inside a field does not end a row, as it
    would with Python's universal newlines) and a trailing "\\r\\n" or "\\n" is removed.
    Each yielded line counts as read in `report`; a line that cannot be decoded is counted
    as malformed and skipped. Files ending in ".gz" are decompressed on the fly.

    Args:
        path: The file to read.
        report: Receives the line counts and decoding failures.
        encoding: The file's encoding.
        fallback_encoding: Tried for a line that is not valid in `encoding`. MovieLens
            ".dat" files are latin-1 in ml-1m but UTF-8 in later releases; decoding each
            line as UTF-8 first and latin-1 second reads both correctly.

    Raises:
        DatasetError: When the file does not exist.
    """
    stats = report.file(path)
    with open_binary(path) as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            stats.rows_read += 1
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as error:
                if fallback_encoding is None:
                    report.malformed(path, lineno, f"not valid {encoding}: {error.reason}")
                    continue
                line = raw.decode(fallback_encoding)
            if lineno == 1:
                line = line.lstrip("\ufeff")
            yield lineno, line.rstrip("\r\n")


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Opens `path` for binary reading, decompressing ".gz" files.

    Raises:
        DatasetError: When the file does not exist.
    """
    if not os.path.isfile(path):
        raise DatasetError(f"{os.fspath(path)}: no such file")
    if os.fspath(path).endswith(".gz"):
        # GzipFile.readline is pure Python; a BufferedReader on top iterates lines in C.
        return io.BufferedReader(gzip.GzipFile(path, "rb"), buffer_size=1 << 20)
    return open(path, "rb")
