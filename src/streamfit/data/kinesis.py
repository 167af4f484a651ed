"""Amazon Kinesis Data Streams: every shard's records, read through boto3.

``kinesis://clicks?region=us-east-1`` with these parameters:

==================  ============================================================================
``region``          the AWS region (default: boto3's configuration)
``endpoint_url``    another endpoint (a VPC endpoint, LocalStack, moto's server)
``format``          ``json`` (default), ``csv`` or ``recordio``: the rows in each record
``idle_timeout``    end the read when no record has arrived for this long (``5s``); default:
                    never
``limit``           records fetched per shard at a time (default 1000)
==================  ============================================================================

Credentials come from boto3's usual chain (environment, profile, instance role).

The state's position holds the sequence number of the last record folded in each shard
(:mod:`streamfit.data.messages`); a resumed read asks each shard for the records
``AFTER_SEQUENCE_NUMBER`` it, and a shard never read starts at ``TRIM_HORIZON``. Kinesis keeps
no acknowledgements: the state is the only record of what was read. After a reshard the
parent shards are read to their end before their children, so a key's records keep their order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from streamfit.data.base import SourceOptions
from streamfit.data.messages import Message, MessageSource, parse_seconds
from streamfit.errors import ConfigError

__all__ = ["KinesisSource", "readable_shards"]

_PARAMS = {"region", "endpoint_url", "format", "idle_timeout", "limit"}
_POLL_SECONDS = 0.2  # Kinesis allows 5 GetRecords calls a second per shard
_REFRESH_SECONDS = 1.0  # how often the shard list is read again (a reshard adds shards)


def readable_shards(shards: list[dict[str, Any]], finished: set[str]) -> list[str]:
    """The shards to read now: not finished, and whose parents are finished (or gone).

    >>> shards = [{"ShardId": "a"}, {"ShardId": "b", "ParentShardId": "a"},
    ...           {"ShardId": "c", "ParentShardId": "a", "AdjacentParentShardId": "x"}]
    >>> readable_shards(shards, set()), readable_shards(shards, {"a"})
    (['a'], ['b', 'c'])
    """
    listed = {s["ShardId"] for s in shards}
    ready = []
    for shard in shards:
        sid = shard["ShardId"]
        parents = [shard.get("ParentShardId"), shard.get("AdjacentParentShardId")]
        if sid in finished:
            continue
        if all(p is None or p in finished or p not in listed for p in parents):
            ready.append(sid)
    return sorted(ready)


class KinesisSource(MessageSource):
    """A Kinesis stream's records, every shard (see the module docstring)."""

    def __init__(self, uri: str, options: SourceOptions) -> None:
        parts = urlsplit(uri)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.stream = parts.netloc + parts.path.rstrip("/")
        name = f"kinesis://{self.stream}"
        if unknown := sorted(set(params) - _PARAMS):
            raise ConfigError(
                f"{name}: unknown parameter {unknown[0]!r} (known: {sorted(_PARAMS)})"
            )
        if not self.stream:
            raise ConfigError(f"{uri}: name the stream (kinesis://clicks?region=...)")
        super().__init__(name, options, params.get("format"))
        self.region = params.get("region")
        self.endpoint_url = params.get("endpoint_url")
        idle = params.get("idle_timeout")
        self.idle_timeout = None if not idle else parse_seconds(idle, "idle_timeout")
        try:
            self.limit = int(params.get("limit", "1000"))
        except ValueError as exc:
            raise ConfigError(f"{name}: limit={params['limit']!r} is not a number") from exc

    def _client(self) -> Any:
        import boto3  # type: ignore[import-untyped]  # imported when a stream is read

        return boto3.client("kinesis", region_name=self.region, endpoint_url=self.endpoint_url)

    def _fail(self, what: str, exc: Exception) -> ConfigError:
        return ConfigError(f"{self.name}: {what} failed ({exc})")

    def _shards(self, client: Any) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            reply = client.list_shards(**kwargs)
            shards += reply["Shards"]
            if not reply.get("NextToken"):
                return shards
            kwargs = {"NextToken": reply["NextToken"]}

    def _fetch(self) -> Iterator[list[Message]]:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        client = self._client()
        read_to = dict(self.start)  # the last sequence number delivered, per shard
        iterators: dict[str, str] = {}
        finished: set[str] = set()
        shards: list[dict[str, Any]] = []
        listed_at = -_REFRESH_SECONDS
        heard = time.monotonic()
        while not self._stopped():
            try:
                if time.monotonic() - listed_at >= _REFRESH_SECONDS:
                    shards, listed_at = self._shards(client), time.monotonic()
                closed = {
                    s["ShardId"]: int(s["SequenceNumberRange"]["EndingSequenceNumber"])
                    for s in shards
                    if s["SequenceNumberRange"].get("EndingSequenceNumber") is not None
                }
                got: list[Message] = []
                for sid in readable_shards(shards, finished):
                    if sid not in iterators:
                        kind = {"ShardIteratorType": "TRIM_HORIZON"}
                        if sid in read_to:
                            kind = {
                                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                                "StartingSequenceNumber": read_to[sid],
                            }
                        reply = client.get_shard_iterator(
                            StreamName=self.stream, ShardId=sid, **kind
                        )
                        iterators[sid] = reply["ShardIterator"]
                    try:
                        reply = client.get_records(ShardIterator=iterators[sid], Limit=self.limit)
                    except ClientError as exc:
                        code = exc.response.get("Error", {}).get("Code")
                        if code == "ExpiredIteratorException":
                            del iterators[sid]  # asked again from read_to
                            continue
                        if code == "ProvisionedThroughputExceededException":
                            continue
                        raise
                    records = reply["Records"]
                    for r in records:
                        got.append(Message(sid, r["SequenceNumber"], r["Data"]))
                    if records:
                        read_to[sid] = records[-1]["SequenceNumber"]
                    following = reply.get("NextShardIterator")
                    at_end = (
                        sid in closed and not records and int(read_to.get(sid, 0)) >= closed[sid]
                    )
                    if following is None or at_end:  # a closed shard read to its end
                        finished.add(sid)
                        iterators.pop(sid, None)
                        listed_at = -_REFRESH_SECONDS  # its children may be readable now
                    else:
                        iterators[sid] = following
            except (ClientError, BotoCoreError) as exc:
                raise self._fail("reading the stream", exc) from exc
            if got:
                yield got
                heard = time.monotonic()
                continue
            if self.idle_timeout is not None and time.monotonic() - heard >= self.idle_timeout:
                return
            time.sleep(_POLL_SECONDS)
