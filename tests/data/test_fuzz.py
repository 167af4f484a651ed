"""Random bytes and mutated valid files of every format, through the real readers
(``open_source(...).read()`` and the :class:`Batcher`), in error and skip modes: the outcome is
chunks or a DataError/ConfigError, never another exception, a crash or a hang.

Mutations: bit flips, truncation, inserted junk, a region deleted or repeated, huge numbers and
deep nesting put in place of a token. Raw text (``text/plain`` and JSON Lines ``text`` rows) is
read by a vocabulary or hashed, as a bag of words or not. Each test has a few hundred examples
at most so that the module runs in well under a minute; Hypothesis' deadline fails an example
that hangs or goes quadratic, and a crash (SIGSEGV, SIGABRT) fails the run.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamfit.data.batcher import Batcher
from streamfit.data.chunk import Chunk
from streamfit.data.source import SourceOptions, open_source
from streamfit.data.vocabulary import Vocabulary
from streamfit.data.writers import write
from streamfit.errors import ConfigError, DataError
from tests.data.conftest import dense_batch, sparse_batch, unlabelled

FUZZ = settings(
    # More for a long hunt: STREAMFIT_FUZZ_EXAMPLES=2000 (the default keeps `make test` quick).
    max_examples=int(os.environ.get("STREAMFIT_FUZZ_EXAMPLES", "60")),
    deadline=5000,  # ms per example: ten times the slowest seen under load
    database=None,  # nothing written into the checkout; a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXTENSIONS = {
    "csv": ".csv",
    "libsvm": ".libsvm",
    "jsonl": ".jsonl",
    "recordio": ".rec",
    "parquet": ".parquet",
    "text": ".txt",
}
WIDTH = 50  # feature_dim of the sparse samples


def _bytes(fmt: str, sparse: bool, labelled: bool) -> bytes:
    batch = sparse_batch(12, WIDTH, nnz=3) if sparse else dense_batch(12, 3)
    if not labelled:
        batch = unlabelled(batch)
    out = io.BytesIO()
    write(fmt, [batch], out, WIDTH if sparse else None)
    return out.getvalue()


@dataclass(frozen=True)
class Sample:
    """A valid file of one format, and how to read it."""

    fmt: str
    sparse: bool
    labelled: bool
    data: bytes


SAMPLES = [
    Sample(fmt, sparse, labelled, _bytes(fmt, sparse, labelled))
    for fmt in EXTENSIONS
    if fmt != "text"
    for sparse in ((False, True) if fmt != "csv" else (False,))
    for labelled in (True, False)
]
_LINES = [
    "The Linux kernel's GPU driver, version 2",
    "",
    "naïve Ünïcode — 日本語 text; don't stop",
    "the and of",
    "rust rust compiler 42",
]
TEXT_SAMPLES = [
    Sample("text", True, False, "".join(f"{line}\n" for line in _LINES).encode()),
    Sample(
        "jsonl",
        True,
        False,
        "".join(f'{{"text": "{line}", "id": {i}}}\n' for i, line in enumerate(_LINES)).encode(),
    ),
]
VOCABULARY = Vocabulary(["kernel", "gpu", "rust", "the", *(f"pad{i}" for i in range(WIDTH - 4))])
HEADER_CSV = Sample("csv", False, True, b"b,label,a\n1,0,2\n3,1,4\n5,0,x\n6,1,7\n")

#: What a token may become: numbers no type holds, nesting no row has, stray structure.
REPLACEMENTS = [
    b"1" + b"0" * 23,
    b"-1" + b"0" * 23,
    b"9" * 400,
    b"1e999",
    b"-1e999",
    b"nan",
    b"NaN",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"-1",
    b"null",
    b"[" * 2000 + b"]" * 2000,
    b"{" * 50,
    b'"x"',
    b"\xff\xfe",
    b"\x00",
    b"",
]
_TOKEN = re.compile(rb"-?[0-9][0-9.eE+-]*|[A-Za-z_]+")


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` changed by one to three of the mutations the module docstring lists."""
    for _ in range(draw(st.integers(1, 3))):
        n = len(data)
        at = draw(st.integers(0, max(n - 1, 0)))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "repeat", "token"]))
        if kind == "flip" and n:
            bit = draw(st.integers(0, 7))
            data = data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1 :]
        elif kind == "truncate":
            data = data[:at]
        elif kind == "insert":
            junk = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(REPLACEMENTS))
            data = data[:at] + junk + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 64)) :]
        elif kind == "repeat":
            size = draw(st.integers(1, 64))
            data = data[: at + size] + data[at : at + size] + data[at + size :]
        else:
            tokens = list(_TOKEN.finditer(data))
            if tokens:
                token = tokens[draw(st.integers(0, len(tokens) - 1))]
                new = draw(st.sampled_from(REPLACEMENTS))
                data = data[: token.start()] + new + data[token.end() :]
    return data


def read_everything(path: Path, sample: Sample, mode: str, **extra: object) -> None:
    """Read ``path`` as ``sample`` says, then batch it: chunks or a clear error."""
    options = SourceOptions(
        content_type=sample.fmt,
        labelled=sample.labelled,
        on_bad_rows=mode,  # type: ignore[arg-type]
        max_index=WIDTH if sample.sparse else None,
        block_bytes=64,  # many blocks: errors at block edges and carried records too
        **extra,  # type: ignore[arg-type]
    )
    source = open_source(str(path), options)
    try:
        for chunk in source.read(n_features=WIDTH if sample.sparse else None):
            check(chunk)
    except (DataError, ConfigError):
        pass
    try:
        for batch in Batcher(source, 5, n_features=WIDTH if sample.sparse else None):
            assert batch.n_rows >= 0
    except (DataError, ConfigError):
        pass


def check(chunk: Chunk) -> None:
    assert chunk.n_rows == len(chunk.positions)
    assert (np.diff(chunk.positions) > 0).all()
    assert chunk.end > (chunk.positions[-1] if chunk.n_rows else -1) or chunk.end >= 0


def _write(tmp_path: Path, sample: Sample, data: bytes, name: str = "fuzz") -> Path:
    path = tmp_path / f"{name}{EXTENSIONS[sample.fmt]}"
    path.write_bytes(data)
    return path


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "sample",
    SAMPLES,
    ids=lambda s: (
        f"{s.fmt}-{'sparse' if s.sparse else 'dense'}-{'labelled' if s.labelled else 'unlabelled'}"
    ),
)
def test_mutated_files_read_or_fail_clearly(tmp_path: Path, sample: Sample) -> None:
    @FUZZ
    @given(data=mutations(sample.data), mode=st.sampled_from(["error", "skip"]))
    def run(data: bytes, mode: str) -> None:
        read_everything(_write(tmp_path, sample, data), sample, mode)

    run()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", list(EXTENSIONS))
def test_random_bytes_read_or_fail_clearly(tmp_path: Path, fmt: str) -> None:
    sample = Sample(fmt, fmt in ("libsvm", "text"), fmt != "text", b"")

    @FUZZ
    @given(data=st.binary(max_size=300), mode=st.sampled_from(["error", "skip"]))
    def run(data: bytes, mode: str) -> None:
        read_everything(_write(tmp_path, sample, data), sample, mode)

    run()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sample", TEXT_SAMPLES, ids=lambda s: s.fmt)
def test_mutated_text_reads_or_fails_clearly(tmp_path: Path, sample: Sample) -> None:
    @FUZZ
    @given(
        data=mutations(sample.data),
        mode=st.sampled_from(["error", "skip"]),
        vocabulary=st.sampled_from([None, VOCABULARY]),
        stop_words=st.booleans(),
        bag_of_words=st.booleans(),
    )
    def run(
        data: bytes, mode: str, vocabulary: Vocabulary | None, stop_words: bool, bag_of_words: bool
    ) -> None:
        read_everything(
            _write(tmp_path, sample, data),
            sample,
            mode,
            vocabulary=vocabulary,
            stop_words=stop_words,
            bag_of_words=bag_of_words,
        )

    run()


@pytest.mark.timeout(120)
def test_sniffed_formats_and_headers_read_or_fail_clearly(tmp_path: Path) -> None:
    """No content type: the format comes from the first bytes; and CSV with a header."""

    @FUZZ
    @given(
        sample=st.sampled_from([*SAMPLES, HEADER_CSV]),
        data=st.data(),
        mode=st.sampled_from(["error", "skip"]),
        hashing=st.booleans(),
    )
    def run(sample: Sample, data: st.DataObject, mode: str, hashing: bool) -> None:
        mutated = data.draw(mutations(sample.data))
        path = tmp_path / "sniffed"
        path.write_bytes(mutated)
        options = SourceOptions(
            labelled=sample.labelled,
            on_bad_rows=mode,  # type: ignore[arg-type]
            max_index=WIDTH,
            hash_features=WIDTH if hashing else None,
            label_column="label" if sample is HEADER_CSV else None,
            block_bytes=64,
        )
        try:
            for chunk in open_source(str(path), options).read(n_features=None):
                check(chunk)
        except (DataError, ConfigError):
            pass

    run()


def test_a_deep_json_line_and_a_huge_libsvm_index_are_data_errors(tmp_path: Path) -> None:
    """Two of the mutations above, spelled out: they were tracebacks."""
    deep = tmp_path / "deep.jsonl"
    deep.write_bytes(b'{"label": 1, "features": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    with pytest.raises(DataError, match="nested too deep"):
        list(open_source(str(deep)).read())
    huge = tmp_path / "huge.libsvm"
    huge.write_bytes(b"1 1" + b"0" * 23 + b":1\n")
    with pytest.raises(DataError, match="index beyond 64 bits"):
        list(open_source(str(huge)).read())
