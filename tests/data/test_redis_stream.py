"""Redis Streams against a real redis-server on loopback (``redis_url`` in conftest)."""

from __future__ import annotations

import io
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import redis
import torch

from streamfit.core.state import Position, State
from streamfit.data.batcher import Batcher
from streamfit.data.messages import STREAM_KEY
from streamfit.data.redis_stream import RedisStreamSource
from streamfit.data.source import SourceOptions, open_source
from streamfit.data.writers import WRITERS
from streamfit.errors import ConfigError, DataError
from streamfit.training.checkpoint import Checkpoints
from tests.data.conftest import Read, assert_same_rows, dense_batch, read
from tests.data.stream_runs import exactly_once_after_kills

_names = (f"s{i}" for i in itertools.count())


def bodies(batch: pa.RecordBatch, fmt: str) -> list[bytes]:
    """One message body per row of ``batch``, in ``fmt`` (json, csv, recordio)."""
    out = io.BytesIO()
    WRITERS["jsonl" if fmt == "json" else fmt]([batch], out)
    data = out.getvalue()
    if fmt != "recordio":
        return data.splitlines()
    frames, p = [], 0
    while p < len(data):
        size = int.from_bytes(data[p + 4 : p + 8], "little")
        end = p + 8 + size + (-size & 3)
        frames.append(data[p:end])
        p = end
    return frames


def produce(url: str, stream: str, messages: list[bytes]) -> None:
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for body in messages:
        pipe.xadd(stream, {"body": body})
    pipe.execute()


def stream_uri(url: str, stream: str, group: str = "g", **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"idle_timeout": "0.3s", **params}.items())
    return f"{url}?stream={stream}&group={group}&{query}"


def pending(url: str, stream: str, group: str = "g") -> int:
    return int(redis.Redis.from_url(url).xpending(stream, group)["pending"])


def stamped(source: RedisStreamSource, rows: int) -> State:
    """A state whose position is ``rows``, stamped by ``source`` as the trainer does."""
    state = State("linear-learner", {}, 3, position=Position(0, rows))
    source.stamp(state)
    return state


@pytest.mark.parametrize("fmt", ["json", "csv", "recordio"])
def test_messages_read_as_the_same_rows_as_a_file(redis_url: str, fmt: str) -> None:
    batch = dense_batch(50, d=4)
    stream = next(_names)
    produce(redis_url, stream, bodies(batch, fmt))
    got = read(stream_uri(redis_url, stream, format=fmt))
    assert_same_rows(got, batch)
    np.testing.assert_array_equal(got.positions, np.arange(50))


def test_a_message_of_several_rows_and_a_checkpoint_inside_it(redis_url: str) -> None:
    """A batch may end inside a message: the rows of it already folded are skipped on resume."""
    batch = dense_batch(12, d=2)
    lines = bodies(batch, "csv")
    stream = next(_names)
    produce(redis_url, stream, [b"\n".join(lines[i : i + 3]) for i in range(0, 12, 3)])
    uri = stream_uri(redis_url, stream, format="csv", consumer="a")
    first = open_source(uri, SourceOptions())
    assert isinstance(first, RedisStreamSource)
    assert len(Read(list(first.read())).positions) == 12
    state = stamped(first, 7)  # rows 0-6: two messages and one row of the third
    assert state.inputs[STREAM_KEY]["partial"][2] == 1
    first.commit(state)
    assert pending(redis_url, stream) == 2  # the third message is not wholly folded
    again = open_source(stream_uri(redis_url, stream, format="csv", consumer="b", claim_idle="0s"))
    got = Read(list(again.restored(state).read(7)))
    np.testing.assert_array_equal(got.positions, np.arange(7, 12))
    np.testing.assert_array_equal(got.labels, np.asarray(batch.column("label"))[7:])


def test_messages_are_acknowledged_only_when_a_checkpoint_holds_them(redis_url: str) -> None:
    stream = next(_names)
    produce(redis_url, stream, bodies(dense_batch(30), "json"))
    source = open_source(stream_uri(redis_url, stream))
    assert isinstance(source, RedisStreamSource)
    assert len(Read(list(source.read())).positions) == 30
    state = stamped(source, 20)
    assert state.inputs[STREAM_KEY]["partial"] is None
    assert pending(redis_url, stream) == 30  # delivered, folded, but nothing durable yet
    source.commit(state)
    assert pending(redis_url, stream) == 10


def test_a_restart_claims_a_dead_consumers_messages_and_skips_those_folded(
    redis_url: str,
) -> None:
    batch = dense_batch(40)
    stream = next(_names)
    messages = bodies(batch, "json")
    produce(redis_url, stream, messages[:30])
    dead = open_source(stream_uri(redis_url, stream, consumer="dead"))
    assert isinstance(dead, RedisStreamSource)
    assert len(Read(list(dead.read())).positions) == 30
    state = stamped(dead, 18)  # checkpoint written at row 18, then the trainer died: no XACK
    produce(redis_url, stream, messages[30:])
    uri = stream_uri(redis_url, stream, consumer="new", claim_idle="0s")
    fresh = open_source(uri).restored(state)
    got = Read(list(fresh.read(18)))
    np.testing.assert_array_equal(got.positions, np.arange(18, 40))
    np.testing.assert_array_equal(
        got.x, np.asarray(batch.column("features").flatten()).reshape(40, 3)[18:]
    )
    assert pending(redis_url, stream) == 22  # those folded before were acknowledged, skipped
    fresh.stamp(state)  # nothing folded yet: still the dead trainer's cursor
    state.position.rows = 40
    fresh.stamp(state)
    fresh.commit(state)
    assert pending(redis_url, stream) == 0


def test_own_pending_messages_are_read_again_by_the_same_consumer(redis_url: str) -> None:
    stream = next(_names)
    produce(redis_url, stream, bodies(dense_batch(10), "json"))
    first = open_source(stream_uri(redis_url, stream, consumer="same"))
    assert len(Read(list(first.read())).positions) == 10
    state = stamped(first, 4)  # type: ignore[arg-type]
    again = open_source(stream_uri(redis_url, stream, consumer="same", claim_idle="1h"))
    got = Read(list(again.restored(state).read(4)))
    np.testing.assert_array_equal(got.positions, np.arange(4, 10))


def test_the_idle_timeout_ends_a_read_that_waits_for_messages(redis_url: str) -> None:
    stream = next(_names)
    messages = bodies(dense_batch(20), "json")
    late = threading.Timer(0.15, produce, (redis_url, stream, messages[10:]))
    produce(redis_url, stream, messages[:10])
    late.start()
    got = read(stream_uri(redis_url, stream, idle_timeout="0.5s"))
    late.join()
    assert len(got.positions) == 20  # the late ones arrived within the timeout


def test_the_idle_timeout_ends_a_quiet_read_on_time(redis_url: str) -> None:
    """Not at the server's next tick after it (Redis ends a timed-out BLOCK only then)."""
    stream = next(_names)
    redis.Redis.from_url(redis_url).xgroup_create(stream, "g", id="0", mkstream=True)
    source = open_source(stream_uri(redis_url, stream, idle_timeout="0.35s"))
    started = time.monotonic()
    assert list(source.read()) == []
    assert 0.35 <= time.monotonic() - started < 0.35 + 0.035


def test_a_stopped_read_ends_without_an_idle_timeout(redis_url: str) -> None:
    stream = next(_names)
    produce(redis_url, stream, bodies(dense_batch(250), "json"))
    batches = iter(Batcher(open_source(f"{redis_url}?stream={stream}&group=g"), 100))
    assert next(batches).n_rows == 100
    batches.close()  # joins the read-ahead thread, which never ends by itself: must not hang


def test_a_bad_row_names_its_message(redis_url: str) -> None:
    stream = next(_names)
    produce(
        redis_url,
        stream,
        [b'{"label": 1, "features": [1, 2]}', b'{"label": 1, "features": [1, "x"]}'],
    )
    message_id = redis.Redis.from_url(redis_url).xrange(stream)[1][0].decode()
    with pytest.raises(DataError, match=f"message {message_id}, line 1, features: .*not a number"):
        read(stream_uri(redis_url, stream))


@pytest.mark.parametrize("plain", [True, False], ids=["xreadgroup", "script"])
def test_either_fetch_reads_every_body_layout_and_names_a_bad_row(
    redis_url: str, plain: bool
) -> None:
    """A backlog fetched by XREADGROUP (with hiredis) or by the script (without): bodies of
    a line each, of several lines, and after another field read alike."""
    batch = dense_batch(9, d=2)
    lines = bodies(batch, "json")
    stream = next(_names)
    client = redis.Redis.from_url(redis_url)
    produce(redis_url, stream, lines[:4])
    client.xadd(stream, {"at": b"x", "body": lines[4]})  # the body is not the first field
    produce(redis_url, stream, [b"\n".join(lines[5:8]), lines[8]])  # one of three lines
    source = open_source(stream_uri(redis_url, stream))
    assert isinstance(source, RedisStreamSource)
    source.plain_fetch = plain
    scripts = _calls(client, "evalsha")
    got = Read(list(source.read()))
    assert_same_rows(got, batch)
    np.testing.assert_array_equal(got.positions, np.arange(9))
    assert pending(redis_url, stream) == 7
    assert (_calls(client, "evalsha") > scripts) is not plain

    bad = next(_names)
    produce(redis_url, bad, [lines[0], lines[1].replace(b"[", b'["x", ', 1)])
    message_id = client.xrange(bad)[1][0].decode()
    source = open_source(stream_uri(redis_url, bad))
    assert isinstance(source, RedisStreamSource)
    source.plain_fetch = plain
    with pytest.raises(DataError, match=f"message {message_id}, line 1, features: .*not a number"):
        list(source.read())


def _calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


def test_a_message_without_the_body_field_is_a_data_error(redis_url: str) -> None:
    stream = next(_names)
    redis.Redis.from_url(redis_url).xadd(stream, {"other": b"{}"})
    with pytest.raises(DataError, match=r"no field 'body' \(fields: \['other'\]\)"):
        read(stream_uri(redis_url, stream))
    got = read(
        stream_uri(redis_url, stream, group="h", field="other", format="json"), on_bad_rows="skip"
    )
    assert got.bad.tolist() == [0]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("group=g", r"give \?stream="),
        ("stream=s", r"give \?group="),
        ("stream=s&group=g&colour=red", "unknown parameter 'colour'"),
        ("stream=s&group=g&format=parquet", "messages are json, csv or recordio"),
        ("stream=s&group=g&idle_timeout=soon", "not a duration"),
    ],
)
def test_bad_urls_are_refused_before_connecting(query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_source(f"redis://:secret@127.0.0.1:1/0?{query}")


def test_an_unreachable_server_is_a_config_error() -> None:
    source = open_source("redis://127.0.0.1:1/0?stream=s&group=g&idle_timeout=0.1s")
    with pytest.raises(ConfigError, match="cannot reach Redis"):
        list(source.read())


@pytest.mark.slow
def test_a_trainer_killed_at_random_moments_folds_every_message_once(
    redis_url: str, tmp_path: Path
) -> None:
    """kill -9 while a producer writes; restarts resume from the checkpoint: the final state
    equals an uninterrupted run's over the same messages, bit for bit (CPU)."""
    stream = next(_names)
    rows = [json.dumps(r).encode() for r in _rows(10_000)]
    client = redis.Redis.from_url(redis_url)

    def producer() -> None:
        for at in range(0, len(rows), 500):
            produce(redis_url, stream, rows[at : at + 500])
            time.sleep(0.3)  # still writing when the trainer is killed

    restarts = itertools.count()

    def uri(group: str) -> str:
        # another consumer name each restart: the dead one's messages are claimed
        return stream_uri(
            redis_url,
            stream,
            group,
            consumer=f"c{next(restarts)}",
            claim_idle="0s",
            idle_timeout="1.5s",
        )

    exactly_once_after_kills(tmp_path, uri, producer, n_rows=len(rows), seed=1)
    assert int(client.xpending(stream, "killed")["pending"]) == 0
    assert int(client.xpending(stream, "reference")["pending"]) == 0


def _rows(n: int) -> Iterator[dict[str, object]]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 4)).round(5)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(float)
    for features, label in zip(x.tolist(), y.tolist(), strict=True):
        yield {"label": label, "features": features}


def test_a_finished_stream_run_resumed_reads_the_new_messages(
    redis_url: str, tmp_path: Path
) -> None:
    """A stream has no last epoch: a rerun on the same checkpoints folds what arrived since,
    and a rerun with nothing new leaves the state as it was."""
    from streamfit.training.trainer import train

    stream = next(_names)
    messages = bodies(dense_batch(300, d=3), "json")
    produce(redis_url, stream, messages[:200])
    settings = {
        "hyperparameters": {"mini_batch_size": 50, "predictor_type": "regressor"},
        "checkpoint_dir": tmp_path / "ck",
        "progress": False,
    }
    uri = stream_uri(redis_url, stream, idle_timeout="0.3s")
    assert train("linear-learner", uri, **settings).state.trainer.rows == 200  # type: ignore[arg-type]
    produce(redis_url, stream, messages[200:])
    second = train("linear-learner", uri, **settings).state  # type: ignore[arg-type]
    assert second.trainer.rows == 300
    third = train("linear-learner", uri, **settings).state  # type: ignore[arg-type]
    assert third.trainer.rows == 300 and third.position == second.position
    for name, tensor in second.tensors.items():
        assert torch.equal(third.tensors[name], tensor), name
    assert pending(redis_url, stream) == 0


@pytest.mark.slow  # a real process and a real signal
def test_sigterm_stops_a_trainer_waiting_on_a_quiet_stream(redis_url: str, tmp_path: Path) -> None:
    stream = next(_names)
    produce(redis_url, stream, bodies(dense_batch(620, d=3), "json"))
    ckpts = tmp_path / "ck"
    client = redis.Redis.from_url(redis_url)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamfit",
            "train",
            "linear-learner",
            "--train",
            f"{redis_url}?stream={stream}&group=g",
            "--output",
            str(tmp_path / "out"),
            "--checkpoint-dir",
            str(ckpts),
            "--checkpoint-batches",
            "2",
            "--hp",
            "mini_batch_size=100",
            "--hp",
            "predictor_type=regressor",
            "--no-progress",
        ],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (client.exists(stream) and _read_all(client, stream, 620)):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)  # every message read: the stream is quiet, the trainer waits
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 75, err.decode()
    state = Checkpoints(ckpts).load_latest("linear-learner")
    assert state is not None and state.trainer.rows > 0
    # what the checkpoint holds is acknowledged; the rest is pending for the next run
    assert pending(redis_url, stream) == 620 - state.trainer.rows


def _read_all(client: redis.Redis, stream: str, n: int) -> bool:
    groups = client.xinfo_groups(stream)
    return bool(groups) and int(groups[0]["pending"]) >= n
