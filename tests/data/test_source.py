"""open_source: what a URI names (files, folders, globs, fsspec URLs, pipes), how the format is
found, and the behaviour every file format shares (positions across files, compression,
block sizes, resume)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pytest

from streamfit.data.source import (
    FileSource,
    PipeSource,
    SourceOptions,
    detect_format,
    open_source,
)
from streamfit.errors import ConfigError
from tests.data.conftest import (
    EXTENSIONS,
    FORMATS,
    TEXT_FORMATS,
    Read,
    assert_same_rows,
    batch_matrix,
    dense_batch,
    read,
    write,
)

D = 3  # features of the dense test data


def width_for(fmt: str) -> int | None:
    """libsvm reads dense rows back as sparse: compare them as a matrix of D columns."""
    return D if fmt == "libsvm" else None


def read_all_but(full: Read, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = full.positions >= k
    return full.positions[keep], full.labels[keep], full.matrix(D)[keep]


# -- format detection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("train.csv", "csv"),
        ("TRAIN.CSV", "csv"),
        ("part-0001.csv.gz", "csv"),
        ("d/x.parquet", "parquet"),
        ("x.pq", "parquet"),
        ("x.jsonl.bz2", "jsonl"),
        ("x.ndjson", "jsonl"),
        ("x.json", "jsonl"),
        ("x.svm", "libsvm"),
        ("x.libsvm.xz", "libsvm"),
        ("x.rec", "recordio"),
    ],
)
def test_format_from_extension(name: str, fmt: str) -> None:
    assert detect_format(name, b"PAR1 would say parquet") == fmt


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"PAR1\x15\x04", "parquet"),
        ((0xCED7230A).to_bytes(4, "little") + b"\x00", "recordio"),
        (b'\n  {"label": 1, "features": [1]}\n', "jsonl"),
        (b"1 3:0.5 7:1\n0 2:1\n", "libsvm"),
        (b"1 qid:2 3:0.5\n", "libsvm"),
        (b"1,0.5,7\n0,1,2\n", "csv"),
        (b"", "csv"),
    ],
)
def test_format_sniffed_from_the_first_bytes(head: bytes, fmt: str) -> None:
    assert detect_format("part-00000", head) == fmt
    assert detect_format("part-00000.gz", head) == fmt  # a compression suffix says nothing


@pytest.mark.parametrize("fmt", FORMATS)
def test_file_without_extension_is_sniffed(tmp_path: Path, fmt: str) -> None:
    batch = dense_batch(20)
    path = write(tmp_path / "part-00000", batch, fmt)
    assert_same_rows(read(path), batch, width_for(fmt))


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_compressed_file_without_extension_is_sniffed_after_decompressing(
    tmp_path: Path, fmt: str
) -> None:
    batch = dense_batch(20)
    path = write(tmp_path / "part-00000.gz", batch, fmt)
    assert_same_rows(read(path), batch, width_for(fmt))


def test_content_type_overrides_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("1 2:0.5\n0 1:1\n")
    got = read(path, content_type="text/x-libsvm; charset=utf-8")
    assert got.sparse and got.labels.tolist() == [1, 0]


def test_unknown_content_type_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", dense_batch(3))
    with pytest.raises(ConfigError, match=r"unknown content type 'text/tsv'.*text/csv"):
        read(path, content_type="text/tsv")


# -- what a URI names ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_folder_is_read_recursively_in_sorted_order(tmp_path: Path, fmt: str) -> None:
    ext = EXTENSIONS[fmt]
    parts = [dense_batch(n, D, offset=100 * i) for i, n in enumerate([5, 7, 4, 3])]
    # written out of order; names sort as a/part-0, part-1, part-2, sub/part-3
    write(tmp_path / "d" / f"part-2{ext}", parts[2], fmt)
    write(tmp_path / "d" / f"part-1{ext}", parts[1], fmt)
    write(tmp_path / "d" / f"a/part-0{ext}", parts[0], fmt)
    write(tmp_path / "d" / f"sub/part-3{ext}", parts[3], fmt)
    (tmp_path / "d" / "_SUCCESS").write_text("")
    (tmp_path / "d" / ".part-1.crc").write_text("not data")

    source = open_source(str(tmp_path / "d"))
    assert isinstance(source, FileSource)
    assert [Path(p).relative_to(tmp_path / "d").as_posix() for p in source.paths] == [
        f"a/part-0{ext}",
        f"part-1{ext}",
        f"part-2{ext}",
        f"sub/part-3{ext}",
    ]
    got = read(tmp_path / "d")
    np.testing.assert_array_equal(got.positions, np.arange(19))
    assert got.end == 19
    np.testing.assert_array_equal(got.labels, np.concatenate([p.column(0) for p in parts]))
    np.testing.assert_array_equal(
        got.matrix(D), np.concatenate([batch_matrix(p, D) for p in parts])
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_glob_reads_the_matching_files_in_sorted_order(tmp_path: Path, fmt: str) -> None:
    ext = EXTENSIONS[fmt]
    first, second = dense_batch(6, D), dense_batch(4, D, offset=50)
    write(tmp_path / f"part-b{ext}", second, fmt)
    write(tmp_path / f"part-a{ext}", first, fmt)
    write(tmp_path / f"other{ext}", dense_batch(9, D, offset=99), fmt)

    got = read(tmp_path / f"part-*{ext}")
    np.testing.assert_array_equal(got.positions, np.arange(10))
    np.testing.assert_array_equal(got.labels, np.concatenate([first.column(0), second.column(0)]))


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_gzipped_files_read_like_plain_ones(tmp_path: Path, fmt: str) -> None:
    ext = EXTENSIONS[fmt]
    batch = dense_batch(30, D)
    plain = read(write(tmp_path / f"d{ext}", batch))
    zipped = read(write(tmp_path / f"d{ext}.gz", batch), block_bytes=64)
    np.testing.assert_array_equal(zipped.positions, plain.positions)
    np.testing.assert_array_equal(zipped.labels, plain.labels)
    np.testing.assert_array_equal(zipped.matrix(D), plain.matrix(D))


def write_parts(folder: Path, fmt: str, sizes: list[int], row_group_size: int | None) -> str:
    """A folder of files of ``sizes`` rows (parquet: in row groups of ``row_group_size``)."""
    ext = EXTENSIONS[fmt]
    for i, n in enumerate(sizes):
        batch = dense_batch(n, D, offset=100 * i)
        write(folder / f"part-{i}{ext}", batch, fmt, row_group_size=row_group_size)
    return str(folder)


def many_chunks(tmp_path: Path, fmt: str) -> tuple[str, Read]:
    """Files of 13 and 11 rows, read in small chunks (text: 40 bytes; parquet: 3 rows)."""
    uri = write_parts(tmp_path / "small", fmt, [13, 11], row_group_size=3)
    return uri, read(uri, block_bytes=40)


@pytest.mark.parametrize("fmt", FORMATS)
def test_small_blocks_give_the_rows_of_one_big_block(tmp_path: Path, fmt: str) -> None:
    _, small = many_chunks(tmp_path, fmt)
    big = read(write_parts(tmp_path / "big", fmt, [13, 11], row_group_size=None))
    assert len(big.chunks) == 2 and len(small.chunks) > 6
    np.testing.assert_array_equal(small.positions, big.positions)
    np.testing.assert_array_equal(small.labels, big.labels)
    np.testing.assert_array_equal(small.matrix(D), big.matrix(D))
    # chunks follow each other: each starts at or after the previous one's end
    ends = [c.end for c in small.chunks]
    firsts = [int(c.positions[0]) if c.n_rows else c.end for c in small.chunks]
    assert ends[-1] == big.end == 24
    assert all(f >= e for f, e in zip(firsts[1:], ends, strict=False))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k", [0, 1, 4, 5, 12, 13, 14, 20, 24, 30])
def test_skip_equals_dropping_the_first_positions(tmp_path: Path, fmt: str, k: int) -> None:
    # 13 is the file boundary; 4 and 14 fall inside blocks and row groups
    uri, full = many_chunks(tmp_path, fmt)
    resumed = read(uri, skip=k, block_bytes=40)
    positions, labels, x = read_all_but(full, k)
    if not len(positions):
        assert resumed.chunks == [] or all(c.n_rows == 0 for c in resumed.chunks)
        return
    np.testing.assert_array_equal(resumed.positions, positions)
    np.testing.assert_array_equal(resumed.labels, labels)
    np.testing.assert_array_equal(resumed.matrix(D), x)
    assert resumed.end == full.end


# -- fsspec URLs ---------------------------------------------------------------------------


@pytest.fixture
def memory_folder() -> Iterator[str]:
    """A fresh folder of fsspec's (process-wide) memory filesystem, removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/streamfit-test-{uuid.uuid4().hex}"
    yield f"memory://{root}"
    if fs.exists(root):
        fs.rm(root, recursive=True)


def write_url(url: str, data: bytes) -> None:
    with fsspec.open(url, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_memory_urls_read_files_and_folders(tmp_path: Path, memory_folder: str, fmt: str) -> None:
    ext = EXTENSIONS[fmt]
    first, second = dense_batch(5, D), dense_batch(6, D, offset=7)
    write_url(f"{memory_folder}/b{ext}", write(tmp_path / f"b{ext}", second).read_bytes())
    write_url(f"{memory_folder}/a{ext}", write(tmp_path / f"a{ext}", first).read_bytes())

    assert_same_rows(read(f"{memory_folder}/a{ext}"), first, width_for(fmt))
    both = read(memory_folder)
    np.testing.assert_array_equal(both.positions, np.arange(11))
    np.testing.assert_array_equal(both.labels, np.concatenate([first.column(0), second.column(0)]))


def test_memory_url_without_extension_is_sniffed(memory_folder: str) -> None:
    write_url(f"{memory_folder}/part-0", b"1 3:0.5\n0 1:2\n")
    got = read(f"{memory_folder}/part-0")
    assert got.sparse and got.csr[1].tolist() == [3, 1]


def test_file_url(tmp_path: Path) -> None:
    batch = dense_batch(8)
    path = write(tmp_path / "d.csv", batch)
    assert_same_rows(read(f"file://{path}"), batch)


# -- errors naming what is wrong -----------------------------------------------------------


def test_missing_path_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "train.csv"
    with pytest.raises(ConfigError, match="no such file or folder") as info:
        open_source(str(missing))
    assert str(missing) in str(info.value)


def test_empty_folder_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no data files found") as info:
        open_source(str(tmp_path / "empty"))
    assert "empty" in str(info.value)


def test_folder_of_only_hidden_and_marker_files_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "_SUCCESS").write_text("")
    (tmp_path / "d" / ".hidden.csv").write_text("1,2\n")
    with pytest.raises(ConfigError, match="no data files found"):
        open_source(str(tmp_path / "d"))


def test_glob_matching_nothing_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no data files found"):
        open_source(str(tmp_path / "*.csv"))


# -- pipes ---------------------------------------------------------------------------------


def feed_fifo(path: Path, data: bytes) -> threading.Thread:
    def writer() -> None:
        with open(path, "wb") as f, contextlib.suppress(BrokenPipeError):
            f.write(data)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_fifo_is_read_once_as_it_arrives(tmp_path: Path) -> None:
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    batch = dense_batch(50)
    data = write(tmp_path / "d.csv", batch).read_bytes()
    thread = feed_fifo(fifo, data)

    source = open_source(str(fifo), SourceOptions(block_bytes=100))
    assert isinstance(source, PipeSource) and not source.rereadable
    got = Read(list(source.read()))
    thread.join(5)
    assert_same_rows(got, batch)
    np.testing.assert_array_equal(got.positions, np.arange(50))
    assert source.stream.closed
    with pytest.raises(ConfigError, match="a pipe can be read only once"):
        list(source.read())


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_fifo_positions_continue_from_skip(tmp_path: Path) -> None:
    # a pipe cannot skip what it delivered before a checkpoint: its rows are new data
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    thread = feed_fifo(fifo, b"1 0:1\n\n0 2:1\n")
    got = Read(list(open_source(str(fifo)).read(skip=100)))
    thread.join(5)
    assert got.labels.tolist() == [1, 0]
    assert got.positions.tolist() == [100, 102] and got.end == 103


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_parquet_from_a_fifo_is_a_config_error(tmp_path: Path) -> None:
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    data = write(tmp_path / "d.parquet", dense_batch(5)).read_bytes()
    thread = feed_fifo(fifo, data)
    source = open_source(str(fifo))
    with pytest.raises(ConfigError, match="Parquet cannot be read from a pipe"):
        list(source.read())
    thread.join(5)
    assert source.stream.closed


STDIN_READER = """
import contextlib
import json
from streamfit.data.chunk import labels_array
from streamfit.data.source import PipeSource, SourceOptions, open_source
source = open_source("-", SourceOptions(block_bytes=64))
assert isinstance(source, PipeSource)
chunks = list(source.read())
print(json.dumps({
    "labels": [float(v) for c in chunks for v in labels_array(c.batch)],
    "positions": [int(p) for c in chunks for p in c.positions],
    "end": chunks[-1].end,
}))
"""


def test_stdin_dash_reads_the_piped_data(tmp_path: Path) -> None:
    batch = dense_batch(25)
    data = write(tmp_path / "d.libsvm", batch).read_bytes()  # sniffed from the pipe
    result = subprocess.run(
        [sys.executable, "-c", STDIN_READER],
        input=data,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    got = json.loads(result.stdout)
    assert got["labels"] == batch.column(0).to_pylist()
    assert got["positions"] == list(range(25)) and got["end"] == 25


# -- open_source on a source ---------------------------------------------------------------


def test_open_source_of_a_source_keeps_it_or_copies_it_with_new_options(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", dense_batch(5))
    source = open_source(str(path))
    assert open_source(source) is source
    unlabelled = open_source(source, SourceOptions(labelled=False))
    assert unlabelled is not source and source.options == SourceOptions()
    assert Read(list(unlabelled.read())).labels is None
    assert Read(list(unlabelled.read())).x.shape == (5, D + 1)
