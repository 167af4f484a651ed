"""text/plain: a document a line, positions that count lines (blank ones too), exact resume,
batches whose words match their rows, and bad lines named."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from streamfit.core.batch import Batch
from streamfit.data.batcher import Batcher
from streamfit.data.chunk import word_arrays
from streamfit.data.source import SourceOptions, open_source
from streamfit.data.vocabulary import Vocabulary
from streamfit.errors import ConfigError, DataError
from tests.data.conftest import expect_data_error, read, write_lines

WIDTH = 64
DOCS = [
    "The Linux kernel and its GPU drivers",
    "",
    "A compiler for Rust, written in Rust",
    "   ",
    "the of and",  # stop words only
    "Kernel's scheduler: the kernel schedules",
    "naïve Unicode — 日本語 text",
]


def corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` lines of words from a small vocabulary, some blank."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}x" for i in range(40)] + ["the", "and"]
    return [
        "" if rng.random() < 0.1 else " ".join(rng.choice(words, rng.integers(1, 12)))
        for _ in range(n)
    ]


def test_a_document_a_line_counted_by_hashing(tmp_path: Path) -> None:
    got = read(write_lines(tmp_path / "d.txt", DOCS), labelled=False, max_index=WIDTH)
    assert got.sparse and got.labels is None
    assert got.positions.tolist() == [0, 2, 4, 5, 6]  # blank lines are no documents
    assert got.end == len(DOCS)
    words = [
        {w: c for w, c in zip(row["words"], row["word_counts"], strict=True)}
        for c in got.chunks
        for row in c.batch.to_pylist()
    ]
    assert words[0] == {"linux": 1, "kernel": 1, "gpu": 1, "drivers": 1}
    assert words[1] == {"compiler": 1, "rust": 2, "written": 1}
    assert words[2] == {}
    assert words[3] == {"kernel": 2, "scheduler": 1, "schedules": 1}
    assert words[4] == {"naïve": 1, "unicode": 1, "日本語": 1, "text": 1}
    _, indices, values = got.csr
    assert indices.max() < WIDTH and values.sum() == sum(sum(w.values()) for w in words)


def test_the_format_comes_from_the_content_type_or_the_extension(tmp_path: Path) -> None:
    plain = write_lines(tmp_path / "docs.data", DOCS[:1])
    got = read(plain, content_type="text/plain", labelled=False, max_index=WIDTH)
    assert got.csr[1].size == 4
    zipped = tmp_path / "docs.txt.gz"
    zipped.write_bytes(gzip.compress("\n".join(DOCS).encode()))
    assert read(zipped, labelled=False, max_index=WIDTH).positions.tolist() == [0, 2, 4, 5, 6]


def test_a_vocabulary_fixes_the_ids_and_counts_unknown_words(tmp_path: Path) -> None:
    vocab = Vocabulary(["kernel", "rust", "gpu"])
    got = read(write_lines(tmp_path / "d.txt", DOCS), labelled=False, vocabulary=vocab)
    indptr, indices, values = got.csr
    assert indptr.tolist() == [0, 2, 3, 3, 4, 4]
    assert indices.tolist() == [0, 2, 1, 0] and values.tolist() == [1, 1, 2, 2]
    unknown = np.concatenate([c.unknown for c in got.chunks if c.unknown is not None])
    assert unknown.tolist() == [2, 2, 0, 2, 4]
    assert all("words" not in c.batch.schema.names for c in got.chunks)


@pytest.mark.parametrize("block_bytes", [64, 1 << 20])
def test_resume_skips_lines_exactly(tmp_path: Path, block_bytes: int) -> None:
    path = write_lines(tmp_path / "d.txt", corpus(60))
    options = {"labelled": False, "max_index": WIDTH, "block_bytes": block_bytes}
    whole = read(path, **options)
    for skip in (0, 1, 7, 33, 59):
        tail = read(path, skip=skip, **options)
        keep = whole.positions >= skip
        assert tail.positions.tolist() == whole.positions[keep].tolist()
        rows = [r for c in whole.chunks for r in c.batch.to_pylist()]
        assert [r for c in tail.chunks for r in c.batch.to_pylist()] == [
            r for r, k in zip(rows, keep, strict=True) if k
        ]


def batches(path: Path, size: int, skip: int = 0, **options: object) -> list[Batch]:
    source = open_source(str(path), SourceOptions(labelled=False, **options))  # type: ignore[arg-type]
    return list(Batcher(source, size, skip=skip, n_features=WIDTH))


@pytest.mark.parametrize("size", [1, 4, 17, 1000])
def test_batches_carry_the_words_of_their_rows(tmp_path: Path, size: int) -> None:
    path = write_lines(tmp_path / "d.txt", corpus(80))
    got = read(path, labelled=False, max_index=WIDTH, block_bytes=128)
    rows = [r for c in got.chunks for r in c.batch.to_pylist()]
    out = batches(path, size, block_bytes=128)
    assert sum(b.n_rows for b in out) == len(rows)
    i = 0
    for batch in out:
        assert batch.words is not None
        entries = batch.words.entries
        assert entries.n_rows == batch.n_rows and len(batch.words.words) == entries.nnz
        # The features are the words' counts summed per column.
        assert torch.equal(entries.to_dense(), batch.features.to_dense())  # type: ignore[union-attr]
        ip = entries.indptr.tolist()
        for r in range(batch.n_rows):
            lo, hi = ip[r], ip[r + 1]
            assert batch.words.words[lo:hi] == rows[i]["words"]
            assert entries.indices[lo:hi].tolist() == rows[i]["word_indices"]
            assert entries.values[lo:hi].tolist() == rows[i]["word_counts"]
            i += 1
    if len(out) > 2:  # a read resumed after the second batch gives the same batches on
        resumed = batches(path, size, skip=out[1].end_position, block_bytes=128)
        assert [b.words.words for b in resumed if b.words] == [
            b.words.words for b in out[2:] if b.words
        ]
        assert [b.end_position for b in resumed] == [b.end_position for b in out[2:]]


def test_batches_count_the_unknown_words_of_their_rows(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.txt", DOCS)
    vocab = Vocabulary(["kernel", "rust", "gpu"] + [f"pad{i}" for i in range(WIDTH - 3)])
    out = batches(path, 2, vocabulary=vocab)
    assert [b.unknown_words for b in out] == [4, 2, 4]
    assert all(b.words is None for b in out)


def test_a_line_that_is_not_utf8_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_bytes(b"good words here\nbad \xff\xfe bytes\nmore good words\n")
    expect_data_error(
        path, row=2, field=None, message="not UTF-8 (byte 5)", labelled=False, max_index=WIDTH
    )
    got = read(path, labelled=False, max_index=WIDTH, on_bad_rows="skip")
    assert got.positions.tolist() == [0, 2] and got.bad.tolist() == [1]


def test_an_empty_document_is_a_bad_row_of_a_bag_of_words_channel(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.txt", DOCS)
    expect_data_error(
        path,
        row=5,
        field=None,
        message="an empty document (no word but stop words)",
        labelled=False,
        max_index=WIDTH,
        bag_of_words=True,
    )
    got = read(path, labelled=False, max_index=WIDTH, bag_of_words=True, on_bad_rows="skip")
    assert got.positions.tolist() == [0, 2, 5, 6] and got.bad.tolist() == [4]
    kept = read(path, labelled=False, max_index=WIDTH, bag_of_words=True, stop_words=False)
    assert kept.positions.tolist() == [0, 2, 4, 5, 6]


def test_text_has_no_labels_and_hashing_needs_a_width(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.txt", DOCS)
    with pytest.raises(ConfigError, match="carry no label"):
        read(path, max_index=WIDTH)
    with pytest.raises(ConfigError, match="set feature_dim, or give a vocabulary"):
        read(path, labelled=False)
    # the width of the read (a model's n_features) will do
    assert read(path, labelled=False, n_features=8).csr[1].max() < 8


def test_hashed_chunks_keep_their_words_through_the_arrow_layout(tmp_path: Path) -> None:
    got = read(write_lines(tmp_path / "d.txt", ["gpu gpu cuda"]), labelled=False, max_index=2)
    words = word_arrays(got.chunks[0].batch)
    assert words is not None
    indptr, _, counts, found = words
    assert indptr.tolist() == [0, 2] and sorted(found.tolist()) == ["cuda", "gpu"]
    assert float(got.csr[2].sum()) == 3.0 == float(counts.sum())
    with pytest.raises(DataError):
        read(write_lines(tmp_path / "e.txt", ["x"]), labelled=False, max_index=2, bag_of_words=True)
