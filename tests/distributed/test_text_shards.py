"""A single raw text file is split among workers by byte ranges, as the other line formats."""

from __future__ import annotations

import itertools
from pathlib import Path

from streamfit import Batcher, SourceOptions, open_source
from streamfit.data.source import Source
from streamfit.distributed.shards import ByteRangeSource, split_source


def words(source: Source) -> list[list[str]]:
    out = []
    for batch in Batcher(source, 7, n_features=32):
        assert batch.words is not None
        ip = batch.words.entries.indptr.tolist()
        out += [batch.words.words[a:b] for a, b in itertools.pairwise(ip)]
    return out


def test_a_text_file_splits_into_byte_ranges(tmp_path: Path) -> None:
    path = tmp_path / "docs.txt"
    path.write_text("".join(f"word{i} kernel{i % 7} gpu\n" if i % 5 else "\n" for i in range(300)))
    source = open_source(str(path), SourceOptions(labelled=False, max_index=32))
    shards = split_source(source, 3)
    assert all(isinstance(s, ByteRangeSource) for s in shards)
    assert [w for s in shards for w in words(s)] == words(source)
