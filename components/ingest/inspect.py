"""`usermodel data inspect`: parse a dataset directory and report what would be ingested.

Runs the same readers as the ExampleGens, without TFX, so a user can check a download or a
hand-made file (rows, malformed lines with file:line, ids missing from the news table) in
seconds before starting a pipeline.
"""

from __future__ import annotations

import os
import pathlib

from components.ingest import mind, movielens, taobao
from components.ingest.report import DatasetError, IngestReport


def inspect_mind(data_dir: str | os.PathLike[str]) -> IngestReport:
    report = IngestReport()
    files = mind.find_mind_files(data_dir)
    news = mind.read_news_table([files.news], report)
    report.count("news articles", len(news))
    impressions = mind.track_news_coverage(mind.read_behaviors(files.behaviors, report), news, report)
    report.count("impressions", sum(1 for _ in impressions))
    if files.entity_embedding is not None:
        report.count("entity vectors", len(mind.read_entity_vectors(files.entity_embedding, report)))
    return report


def inspect_movielens(data_dir: str | os.PathLike[str]) -> IngestReport:
    report = IngestReport()
    data = movielens.load_movielens(data_dir, report)
    for name, value in (("ratings", data.ratings), ("movies", data.movies), ("tag applications", data.tags),
                        ("users with ratings", {r.user_id for r in data.ratings})):
        report.count(name, len(value))
    return report


def inspect_taobao(data_dir: str | os.PathLike[str]) -> IngestReport:
    report = IngestReport()
    files = sorted(pathlib.Path(data_dir).glob("UserBehavior*.csv*"))
    if not files:
        raise DatasetError(f"Taobao directory {data_dir} has no UserBehavior*.csv file")
    users, items = set(), set()
    for path in files:
        for event in taobao.read_behaviors(path, report):
            users.add(event.user_id)
            items.add(event.item_id)
    report.count("users", len(users))
    report.count("items", len(items))
    return report


INSPECTORS = {"mind": inspect_mind, "movielens": inspect_movielens, "taobao": inspect_taobao}


def inspect(kind: str, data_dir: str | os.PathLike[str]) -> IngestReport:
    if kind not in INSPECTORS:
        raise DatasetError(f"unknown dataset kind {kind!r}; known: {', '.join(INSPECTORS)}")
    return INSPECTORS[kind](data_dir)
