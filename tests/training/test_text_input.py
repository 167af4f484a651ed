"""Raw text through training and predict: hashed or counted by a vocabulary (``--auxiliary``),
the settings recorded in the state and the model so that every later read counts words the
same way, unknown words reported, and an algorithm's bag-of-words channels checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamfit import ConfigError, DataError, predict_records, train
from streamfit.algorithms.kmeans.algorithm import KMeans
from streamfit.cli.main import cli

DOCS = [
    "the linux kernel and its gpu drivers",
    "a gpu compiler for the kernel",
    "",
    "rust rust and more rust",
    "cooking pasta with tomato",
    "tomato sauce for pasta",
]
WORDS = ["kernel", "gpu", "rust", "pasta", "tomato", "linux"]
HP = {"k": 2, "mini_batch_size": 2, "local_lloyd_num_trials": 1}


def files(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs.txt"
    docs.write_text("".join(f"{d}\n" for d in DOCS))
    aux = tmp_path / "aux"
    aux.mkdir()
    (aux / "vocab.txt").write_text("".join(f"{w}\n" for w in WORDS))
    return docs, aux


def test_hashed_text_trains_and_predicts(tmp_path: Path) -> None:
    docs, _ = files(tmp_path)
    result = train("kmeans", str(docs), hyperparameters={**HP, "feature_dim": 32})
    assert result.state.trainer.rows == 5  # the blank line is no document
    assert "text" not in result.state.inputs  # the defaults: nothing to record
    assert "train:unknown_words" not in result.metrics
    answers = list(predict_records(result.model, str(docs)))
    assert len(answers) == 5


def test_a_vocabulary_counts_text_and_is_recorded(tmp_path: Path) -> None:
    docs, aux = files(tmp_path)
    out = tmp_path / "out"
    result = train(
        "kmeans", str(docs), hyperparameters={**HP, "feature_dim": 6}, auxiliary=aux, output=out
    )
    # drivers, compiler, cooking, sauce (stop words are not unknown, "a" is no word)
    assert result.metrics["train:unknown_words"] == 4.0 == result.state.trainer.unknown_words
    recorded = result.state.inputs["text"]
    assert recorded["vocabulary"]["words"] == WORDS and recorded["stop_words"] is True
    assert result.model.meta["text"] == recorded
    # predict counts words by the recorded vocabulary, with or without --auxiliary
    plain = list(predict_records(out / "model", str(docs)))
    assert plain == list(predict_records(out / "model", str(docs), auxiliary=aux))
    other = tmp_path / "other"
    other.mkdir()
    (other / "vocab.txt").write_text("".join(f"{w}\n" for w in reversed(WORDS)))
    with pytest.raises(ConfigError, match="not the vocabulary the model was trained with"):
        list(predict_records(out / "model", str(docs), auxiliary=other))
    # resuming or continuing under another vocabulary is refused the same way
    with pytest.raises(ConfigError, match="not the vocabulary"):
        train("kmeans", str(docs), init_state=out / "state", auxiliary=other)
    again = train("kmeans", str(docs), init_state=out / "state")  # the recorded one
    assert again.state.trainer.unknown_words == 8


def test_a_vocabulary_of_another_width_is_refused_before_reading(tmp_path: Path) -> None:
    docs, aux = files(tmp_path)
    docs.write_text("not read\n\xff")
    with pytest.raises(ConfigError, match=r"vocab.txt: 6 words, fewer than feature_dim \(7\)"):
        train("kmeans", str(docs), hyperparameters={**HP, "feature_dim": 7}, auxiliary=aux)


class BagOfWordsKMeans(KMeans):
    """K-Means reading its channels as a topic model does."""

    def bag_of_words(self) -> bool:
        return True


def test_an_algorithm_reading_bags_of_words_refuses_empty_documents(tmp_path: Path) -> None:
    docs, _ = files(tmp_path)
    docs.write_text("gpu kernel\nthe and of\nrust compiler\n")
    algo = BagOfWordsKMeans({**HP, "feature_dim": 32})
    with pytest.raises(DataError, match=r"docs\.txt, line 2: an empty document"):
        train(algo, str(docs))
    skipped = train(algo, str(docs), on_bad_rows="skip")
    assert (skipped.state.trainer.rows, skipped.state.trainer.bad_rows) == (2, 1)
    assert (
        train("kmeans", str(docs), hyperparameters={**HP, "feature_dim": 32}).state.trainer.rows
        == 3
    )


def test_the_command_line_takes_the_auxiliary_channel(tmp_path: Path) -> None:
    docs, aux = files(tmp_path)
    out = tmp_path / "out"
    args = ["train", "kmeans", "--train", str(docs), "--output", str(out), "--json"]
    hp = ["--hp", "k=2", "--hp", "feature_dim=6", "--hp", "mini_batch_size=2"]
    result = CliRunner().invoke(cli, [*args, *hp, "--auxiliary", str(aux), "--no-stop-words"])
    assert result.exit_code == 0, result.output
    # with stop words kept, "the", "and", "for"... are unknown words too
    assert json.loads(result.stdout)["train:unknown_words"] == 13.0
    predicted = CliRunner().invoke(
        cli, ["predict", str(out / "model"), "--input", str(docs), "--auxiliary", str(aux)]
    )
    assert predicted.exit_code == 0, predicted.output
    assert len(predicted.stdout.splitlines()) == 5
    short = CliRunner().invoke(
        cli, [*args, "--hp", "k=2", "--hp", "feature_dim=9", "--auxiliary", str(aux)]
    )
    assert short.exit_code == 2 and "fewer than feature_dim" in short.stderr
