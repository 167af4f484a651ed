"""The NTM on raw text, end to end: topics named by the auxiliary channel's vocabulary or by
the word sketch of hashed text, never by columns no document reached, and the bag-of-words
checks of its channels (file, line and field; skipped and counted on request)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamfit import DataError, SourceOptions, open_source, predict_records, train
from streamfit.cli.main import cli
from streamfit.data.vocabulary import Vocabulary

THEMES = [
    [
        "kernel",
        "driver",
        "gpu",
        "linux",
        "module",
        "firmware",
        "boot",
        "device",
        "memory",
        "interrupt",
    ],
    ["pasta", "tomato", "sauce", "garlic", "basil", "oven", "cheese", "bread", "olive", "recipe"],
    [
        "violin",
        "piano",
        "guitar",
        "melody",
        "chord",
        "rhythm",
        "song",
        "concert",
        "orchestra",
        "drum",
    ],
]
HP = {"num_topics": 3, "mini_batch_size": 50, "seed": 1}


def _documents(path: Path, n: int = 4000) -> Path:
    rng = random.Random(0)
    path.write_text(
        "".join(" ".join(rng.choices(rng.choice(THEMES), k=8)) + "\n" for _ in range(n))
    )
    return path


def _themes_found(topics: list[list[dict[str, object]]]) -> int:
    """How many themes have a topic whose top 5 words are all of that theme."""
    tops = [{w["word"] for w in topic[:5]} for topic in topics]
    return sum(any(top <= set(theme) for top in tops) for theme in THEMES)


def test_topics_name_the_words_of_the_vocabulary(tmp_path: Path) -> None:
    docs = _documents(tmp_path / "docs.txt")
    vocab = tmp_path / "vocab.txt"
    words = sorted({w for theme in THEMES for w in theme})
    vocab.write_text("".join(f"{w}\n" for w in words))
    out = tmp_path / "out"
    hp = {**HP, "feature_dim": len(words)}
    result = train("ntm", str(docs), hyperparameters=hp, auxiliary=vocab, output=out)
    topics = json.loads((out / "model" / "topics.json").read_text())["topics"]
    assert all(w["word"] == words[w["id"]] for topic in topics for w in topic)
    assert _themes_found(topics) == 3
    answers = list(predict_records(out / "model", str(docs)))
    assert len(answers) == 4000
    assert all(sum(a["topic_weights"]) == pytest.approx(1, abs=1e-5) for a in answers)
    assert result.metrics["train:rows"] == 4000


def test_hashed_text_over_many_more_columns_than_words_lists_only_words_seen(
    tmp_path: Path,
) -> None:
    docs = _documents(tmp_path / "docs.txt")
    result = train("ntm", str(docs), hyperparameters={**HP, "feature_dim": 2048})
    topics = result.model.meta["topics"]
    # 30 words in 2,048 columns: before topics listed only words that were seen, whole
    # topics were columns no document reached (word null)
    assert all(w["word"] is not None for topic in topics for w in topic)
    assert _themes_found(topics) == 3


def test_empty_documents_and_negative_counts_are_bad_rows(tmp_path: Path) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text("gpu kernel linux\nthe and of\npasta tomato basil\n" * 4)
    hp = {**HP, "feature_dim": 64, "mini_batch_size": 4}
    with pytest.raises(DataError, match=r"docs\.txt, line 2: an empty document"):
        train("ntm", str(docs), hyperparameters=hp)
    skipped = train("ntm", str(docs), hyperparameters=hp, on_bad_rows="skip")
    assert (skipped.state.trainer.rows, skipped.state.trainer.bad_rows) == (8, 4)
    counts = tmp_path / "counts.libsvm"
    counts.write_text("0 1:2 5:1\n0 2:1 3:-1\n0 4:3\n")
    with pytest.raises(DataError, match=r"counts\.libsvm, line 2.*negative"):
        train("ntm", str(counts), hyperparameters=hp)


def test_text_piped_to_predict_is_read_as_text(tmp_path: Path) -> None:
    docs = _documents(tmp_path / "docs.txt", 500)
    out = tmp_path / "out"
    train("ntm", str(docs), hyperparameters={**HP, "feature_dim": 64}, output=out)
    piped = "a new gpu driver for the linux kernel\npasta with tomato sauce\n"
    result = CliRunner().invoke(cli, ["predict", str(out / "model"), "--input", "-"], input=piped)
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 2 and all(len(a["topic_weights"]) == 3 for a in answers)


def test_a_source_passed_in_keeps_its_vocabulary_and_content_type(tmp_path: Path) -> None:
    docs = _documents(tmp_path / "docs.data")  # an extension that says nothing
    words = sorted({w for theme in THEMES for w in theme})
    options = SourceOptions(content_type="text/plain", vocabulary=Vocabulary(words))
    result = train(
        "ntm", open_source(str(docs), options), hyperparameters={**HP, "feature_dim": 30}
    )
    assert result.state.vocabulary == words
    assert _themes_found(result.model.meta["topics"]) == 3
