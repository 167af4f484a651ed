"""Kinesis against moto's standalone server on loopback (``kinesis_endpoint`` in conftest): the
closest stand-in for Kinesis that runs here."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import boto3
import numpy as np
import pytest

from streamfit.core.state import Position, State
from streamfit.data.kinesis import KinesisSource
from streamfit.data.messages import STREAM_KEY
from streamfit.data.source import open_source
from streamfit.errors import ConfigError
from tests.data.conftest import Read, assert_same_rows, dense_batch, read
from tests.data.stream_runs import exactly_once_after_kills
from tests.data.test_redis_stream import bodies

_names = (f"k{i}" for i in itertools.count())


def client(endpoint: str) -> object:
    return boto3.client("kinesis", region_name="us-east-1", endpoint_url=endpoint)


def new_stream(endpoint: str, shards: int = 1) -> str:
    name = next(_names)
    client(endpoint).create_stream(StreamName=name, ShardCount=shards)  # type: ignore[attr-defined]
    return name


def put(endpoint: str, stream: str, messages: list[bytes]) -> None:
    kinesis = client(endpoint)
    for at in range(0, len(messages), 500):
        records = [
            {"Data": body, "PartitionKey": str(at + i)}
            for i, body in enumerate(messages[at : at + 500])
        ]
        kinesis.put_records(StreamName=stream, Records=records)  # type: ignore[attr-defined]


def uri(endpoint: str, stream: str, **params: str) -> str:
    query = {"region": "us-east-1", "endpoint_url": endpoint, "idle_timeout": "0.3s", **params}
    return f"kinesis://{stream}?" + "&".join(f"{k}={v}" for k, v in query.items())


def numbered(start: int, stop: int) -> list[bytes]:
    """Rows whose label is their number, to tell each one apart."""
    return [json.dumps({"label": i, "features": [i, 1.0]}).encode() for i in range(start, stop)]


def put_to_open_shards(stream: str, messages: list[bytes]) -> None:
    """Records put as Kinesis puts them after a reshard: into the open shard whose hash range
    holds the key. moto puts them into the first shard whose range holds it, the closed parent,
    so they are added to the server's children directly (it runs in this process)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.kinesis.models import kinesis_backends

    shards = kinesis_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].streams[stream].shards.values()
    for i, body in enumerate(messages):
        key = str(i)
        hashed = int(hashlib.md5(key.encode()).hexdigest(), 16)
        shard = next(s for s in shards if s.is_open and s.starting_hash <= hashed <= s.ending_hash)
        shard.put_record(key, body, "")


def stamped(source: KinesisSource, rows: int) -> State:
    state = State("linear-learner", {}, 2, position=Position(0, rows))
    source.stamp(state)
    return state


@pytest.mark.parametrize("fmt", ["json", "csv", "recordio"])
def test_records_read_as_the_same_rows_as_a_file(kinesis_endpoint: str, fmt: str) -> None:
    batch = dense_batch(30, d=3)
    stream = new_stream(kinesis_endpoint)
    put(kinesis_endpoint, stream, bodies(batch, fmt))
    got = read(uri(kinesis_endpoint, stream, format=fmt))
    assert_same_rows(got, batch)


def test_a_resumed_read_starts_after_the_sequence_number_folded(kinesis_endpoint: str) -> None:
    stream = new_stream(kinesis_endpoint)
    put(kinesis_endpoint, stream, numbered(0, 20))
    first = open_source(uri(kinesis_endpoint, stream))
    assert isinstance(first, KinesisSource)
    assert len(Read(list(first.read())).positions) == 20
    state = stamped(first, 12)
    ((shard, sequence),) = state.inputs[STREAM_KEY]["cursor"].items()
    put(kinesis_endpoint, stream, numbered(20, 25))
    again = open_source(uri(kinesis_endpoint, stream)).restored(state)
    got = Read(list(again.read(12)))
    assert got.labels.tolist() == list(range(12, 25))
    np.testing.assert_array_equal(got.positions, np.arange(12, 25))
    assert shard.startswith("shardId-") and int(sequence) > 0


def test_a_split_shard_is_read_to_its_end_before_its_children(kinesis_endpoint: str) -> None:
    stream = new_stream(kinesis_endpoint)
    kinesis = client(kinesis_endpoint)
    put(kinesis_endpoint, stream, numbered(0, 30))
    parent = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]  # type: ignore[attr-defined]
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent, NewStartingHashKey=str(2**127))  # type: ignore[attr-defined]
    put_to_open_shards(stream, numbered(30, 60))
    source = open_source(uri(kinesis_endpoint, stream))
    assert isinstance(source, KinesisSource)
    got = Read(list(source.read()))
    labels = got.labels.tolist()
    assert labels[:30] == list(range(30))  # the parent first, in order
    assert sorted(labels) == list(range(60))  # every record once
    lanes = {lane for _, _, lane, _ in source._open}
    assert len(lanes) == 3  # the parent and both children
    # Resume in the middle of the children: each shard continues after its own number.
    state = stamped(source, 45)
    assert len(state.inputs[STREAM_KEY]["cursor"]) == 3
    again = open_source(uri(kinesis_endpoint, stream)).restored(state)
    rest = Read(list(again.read(45))).labels.tolist()
    assert sorted(labels[:45] + rest) == list(range(60))


def test_a_missing_stream_is_a_config_error(kinesis_endpoint: str) -> None:
    with pytest.raises(ConfigError, match="kinesis://nowhere: reading the stream failed"):
        read(uri(kinesis_endpoint, "nowhere"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kinesis://s?colour=red", "unknown parameter 'colour'"),
        ("kinesis://?region=x", "name the stream"),
        ("kinesis://s?limit=many", "not a number"),
        ("kinesis://s?format=libsvm", "messages are json, csv or recordio"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_source(url)


@pytest.mark.slow
def test_a_trainer_killed_at_random_moments_folds_every_record_once(
    kinesis_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = new_stream(kinesis_endpoint)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6000, 4)).round(5)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(float)
    rows = [
        json.dumps({"label": label, "features": f}).encode()
        for f, label in zip(x.tolist(), y.tolist(), strict=True)
    ]

    def producer() -> None:
        put(kinesis_endpoint, stream, rows)

    def stream_uri(group: str) -> str:  # Kinesis has no groups: every reader reads it all
        return uri(kinesis_endpoint, stream, idle_timeout="1.5s")

    exactly_once_after_kills(tmp_path, stream_uri, producer, n_rows=len(rows), seed=2)
