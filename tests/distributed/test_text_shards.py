"""A single raw text file is split among workers by byte ranges, as the other line formats,
and the NTM trains on it with workers."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType

from streamfit import Batcher, SourceOptions, open_source, train
from streamfit.algorithms.ntm import NTM
from streamfit.data.source import Source
from streamfit.data.vocabulary import Vocabulary
from streamfit.distributed.shards import ByteRangeSource, split_source
from tests.algorithms.test_ntm_text import HP, THEMES, _documents, _themes_found


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


def test_ntm_workers_on_one_text_file_merge_into_the_themes(
    ray_cluster: ModuleType, tmp_path: Path
) -> None:
    docs = _documents(tmp_path / "docs.txt", 16000)  # 4,000 a worker can miss a theme
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"{w}\n" for w in sorted({w for t in THEMES for w in t})))
    hp = {**HP, "feature_dim": 30}
    two = train("ntm", str(docs), hyperparameters=hp, auxiliary=vocab, workers=2, progress=False)
    assert two.state.trainer.rows == 16000
    assert _themes_found(two.model.meta["topics"]) == 3
    one = train("ntm", str(docs), hyperparameters=hp, auxiliary=vocab, progress=False)
    words = Vocabulary.load(str(vocab))
    source = open_source(str(docs), SourceOptions(labelled=False, vocabulary=words))
    test = [next(iter(Batcher(source, 2000, n_features=30)))]
    algo = NTM(hp)
    merged, single = (algo.evaluate(r.model, test)["total_loss"] for r in (two, one))
    assert merged < single * (1 + NTM.merge_tolerance)
