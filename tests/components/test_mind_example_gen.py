"""MindExampleGen's executor: time split, ids-only impressions, news split, ingest report."""

from __future__ import annotations

import glob
import json
import os
import pathlib

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.ingest import mind_example_gen
from components.ingest.example_gen_utils import load_report

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "datasets"

NEWS = [
    "N1\tsports\tnfl\tBig game tonight\tThe game.\thttps://x/1\t[]\t[]",
    "N2\tnews\tus\tElection news\t\thttps://x/2\t[]\t[]",
    "N3\tnews\tus\tBroken row with too few fields",
]
BEHAVIORS = [
    "1\tU1\t11/10/2019 9:00:00 AM\tN1 N2\tN1-1 N2-0",
    "2\tU2\t11/11/2019 8:00:00 PM\tN2 N404\tN1-0 N2-1 N404-0",
    "3\tU1\t11/12/2019 1:00:00 AM\tN1\tN2-1 N1-0",  # the last day → eval
    "4\tU3\tnot a time\tN1\tN2-1",  # malformed
    "5\tU3\t11/12/2019 11:59:59 PM\t\tN1-0 N2-1",  # last day, empty history
]


def _run(input_base: str, out: pathlib.Path) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    mind_example_gen.Executor().Do({}, {"examples": [examples]}, {"input_base": input_base})
    return examples


def _read(examples, split: str) -> list[dict]:
    files = glob.glob(os.path.join(examples.uri, f"Split-{split}", "*.gz"))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feats = tf.train.Example.FromString(record.numpy()).features.feature
        rows.append({k: list(v.int64_list.value) or [b.decode() for b in v.bytes_list.value] for k, v in feats.items()})
    return rows


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    data = tmp_path_factory.mktemp("mind")
    (data / "news.tsv").write_text("\n".join(NEWS) + "\n")
    (data / "behaviors.tsv").write_text("\r\n".join(BEHAVIORS) + "\r\n")
    return _run(str(data), tmp_path_factory.mktemp("examples")), data


def test_splits_by_time_and_keeps_impressions_whole(generated):
    examples, _ = generated
    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "eval", "news"]
    train = {r["impression_id"][0]: r for r in _read(examples, "train")}
    eval_ = {r["impression_id"][0]: r for r in _read(examples, "eval")}
    assert set(train) == {1, 2} and set(eval_) == {3, 5}
    assert train[2]["candidates"] == ["N1", "N2", "N404"] and train[2]["labels"] == [0, 1, 0]
    assert train[2]["history"] == ["N2", "N404"]
    assert "title" not in train[2]  # ids only: no text copied into impressions
    assert eval_[5].get("history", []) == []


def test_news_split_holds_valid_articles(generated):
    examples, _ = generated
    news = {r["news_id"][0]: r for r in _read(examples, "news")}
    assert set(news) == {"N1", "N2"}
    assert news["N1"]["title"] == ["Big game tonight"] and news["N1"]["category"] == ["sports"]


def test_report_counts_malformed_rows_and_missing_news(generated):
    examples, data = generated
    report = load_report(examples)
    assert report == json.loads(examples.get_string_custom_property("ingest_report"))
    assert report["counters"]["impressions"] == 4
    assert report["counters"]["history ids missing from news.tsv"] == 1  # N404
    assert report["counters"]["candidate ids missing from news.tsv"] == 1
    problems = "\n".join(report["examples"])
    assert f"{data / 'behaviors.tsv'}:4" in problems
    assert f"{data / 'news.tsv'}:3" in problems
    assert (pathlib.Path(examples.uri) / "ingest_report.md").exists()


def test_missing_directory_is_a_clear_error(tmp_path):
    from components.ingest.report import DatasetError

    with pytest.raises(DatasetError, match="news.tsv"):
        (tmp_path / "behaviors.tsv").write_text(BEHAVIORS[0] + "\n")
        _run(str(tmp_path), tmp_path / "out")


@pytest.mark.skipif(not (SHARED / "mind-sample").exists(), reason=f"{SHARED / 'mind-sample'} not present")
def test_real_mind_sample_ingests_with_a_report(tmp_path):
    examples = _run(str(SHARED / "mind-sample"), tmp_path)
    report = load_report(examples)
    n_train, n_eval = len(_read(examples, "train")), len(_read(examples, "eval"))
    assert n_train + n_eval == 5000 and n_eval == 968  # the sample's last day, 2019-11-14
    assert len(_read(examples, "news")) == 2000
    assert report["counters"]["history ids missing from news.tsv"] == 153_641
    assert sum(f["malformed"] for f in report["files"].values()) == 0


def test_uri_input_is_read_and_reported_under_its_uri(tmp_path):
    """Kubeflow passes gs://… paths; TensorFlow's ram:// filesystem stands in for one here."""
    source = "ram://mind-input"
    tf.io.gfile.makedirs(source)
    with tf.io.gfile.GFile(f"{source}/news.tsv", "w") as f:
        f.write("\n".join(NEWS) + "\n")
    with tf.io.gfile.GFile(f"{source}/behaviors.tsv", "w") as f:
        f.write("\n".join(BEHAVIORS) + "\n")
    examples = _run(source, tmp_path)
    assert len(_read(examples, "train")) == 2 and len(_read(examples, "eval")) == 2
    report = load_report(examples)
    assert set(report["files"]) == {f"{source}/news.tsv", f"{source}/behaviors.tsv"}
    assert any(e.startswith(f"{source}/behaviors.tsv:4:") for e in report["examples"])
