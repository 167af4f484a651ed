"""Redis Streams: the messages of a stream, read through a consumer group.

``redis://host:6379/0?stream=clicks&group=trainer`` (``rediss://`` for TLS; a password as
``redis://:secret@host``), with these parameters:

==================  ============================================================================
``stream``          the stream's key (required)
``group``           the consumer group (required); created at ``start`` if it does not exist
``consumer``        this reader's name in the group (default: the host's name), stable across
                    restarts so that a restarted trainer finds its own pending messages
``format``          ``json`` (default), ``csv`` or ``recordio``: the rows in each body
``field``           the message field that holds the body (default ``body``)
``idle_timeout``    end the read when no message has arrived for this long (``5s``); default:
                    never
``claim_idle``      at start, claim other consumers' pending messages idle this long
                    (``XAUTOCLAIM``; default ``30s``)
``count``           messages fetched at a time (default 1000)
``start``           where a new group starts: ``0`` (default, the whole stream) or ``$``
==================  ============================================================================

Exactly once: the id of the last message folded into the state is in every checkpoint
(:mod:`streamfit.data.messages`), and a message is acknowledged (``XACK``) only after a
checkpoint that holds it is written. A trainer that dies leaves its unacknowledged messages
pending; the next one reads its own pending messages and claims those of others, acknowledges
and skips those its checkpoint already holds, and folds the rest, in id order, before new ones.
"""

from __future__ import annotations

import collections
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from streamfit.data.base import SourceOptions
from streamfit.data.messages import Joined, Message, MessageSource, parse_seconds
from streamfit.errors import ConfigError, DataError

__all__ = ["RedisStreamSource", "is_redis"]

_PARAMS = {"stream", "group", "consumer", "format", "field", "idle_timeout", "claim_idle"}
_PARAMS |= {"count", "start"}
_BLOCK_SECONDS = 0.1  # the longest a fetch waits, so that a stop or the idle timeout is seen
# Redis ends a BLOCK that times out only at its next tick (every 100 ms at the default hz of
# 10: a BLOCK of 1 ms took 90-100 ms, one of 100 ms up to 204), so the last quarter second of
# an idle timeout is polled instead, every _POLL_SECONDS: the timeout then ends the read on
# time, where it overran by 40-100 ms.
_POLL_SECONDS = 0.01

# Where hiredis (redis-py's C reply parser) is installed, a backlog is fetched by a plain
# XREADGROUP whose reply is left as the parser gives it (nested lists, not redis-py's dict a
# message). Without hiredis, redis-py's pure-Python parser of the several items a message took
# three quarters of a read's time, so a backlog is fetched by this script instead, which
# returns three strings (the ids, the body sizes, the bodies back to back); but the script
# costs the server 12-20 us a message, five to ten times the XREADGROUP in it. Measured here,
# 10^5 messages of 430 bytes: hiredis and XREADGROUP 140-230k messages/s; the script 35-60k
# with either parser; XREADGROUP with the Python parser 20-65k. A script cannot block, so a
# caught-up reader waits with a plain XREADGROUP. A body size of -1: no such field. Each body
# is followed by ARGV[5] (a newline for text formats): bodies of one line each are then the
# block the reader reads, as they come.
_FETCH = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                         'STREAMS', KEYS[1], '>')
if not reply then return false end
local ids, sizes, bodies = {}, {}, {}
for i, entry in ipairs(reply[1][2]) do
  ids[i] = entry[1]
  sizes[i] = -1
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == ARGV[4] then
      sizes[i] = #fields[j + 1]
      bodies[#bodies + 1] = fields[j + 1]
      bodies[#bodies + 1] = ARGV[5]
      break
    end
  end
end
return {table.concat(ids, ' '), table.concat(sizes, ' '), table.concat(bodies)}
"""


def _hiredis() -> bool:
    from redis.utils import HIREDIS_AVAILABLE

    return bool(HIREDIS_AVAILABLE)


def _fields(fields: Any) -> dict[bytes, bytes] | None:
    """A message's fields as a reply gives them (a flat list, or a map), as a dict.

    >>> _fields([b"body", b"1,2", b"at", b"3"]), _fields(None)
    ({b'body': b'1,2', b'at': b'3'}, None)
    """
    if fields is None or isinstance(fields, dict):
        return fields
    return dict(zip(fields[::2], fields[1::2], strict=True))


def is_redis(uri: str) -> bool:
    return uri.split("://", 1)[0].lower() in ("redis", "rediss") and "://" in uri


def _id_key(mid: str) -> tuple[int, int]:
    """A stream id as numbers, to compare in stream order.

    >>> _id_key("1700000000000-2") < _id_key("1700000000000-10")
    True
    """
    ms, _, seq = mid.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamSource(MessageSource):
    """A Redis stream read through a consumer group (see the module docstring)."""

    def __init__(self, uri: str, options: SourceOptions) -> None:
        parts = urlsplit(uri)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = sorted(set(params) - _PARAMS)
        safe = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query=""))
        if unknown:
            raise ConfigError(
                f"{safe}: unknown parameter {unknown[0]!r} (known: {sorted(_PARAMS)})"
            )
        for required in ("stream", "group"):
            if not params.get(required):
                raise ConfigError(
                    f"{safe}: give ?{required}=... (e.g. ?stream=clicks&group=trainer)"
                )
        self.stream, self.group = params["stream"], params["group"]
        # The consumer is not part of the name: a resumed run may read under another one.
        super().__init__(
            f"{safe}?stream={self.stream}&group={self.group}", options, params.get("format")
        )
        self.url = urlunsplit(parts._replace(query=""))
        self.consumer = params.get("consumer") or socket.gethostname()
        self.field = params.get("field", "body").encode()
        idle = params.get("idle_timeout")
        self.idle_timeout = None if not idle else parse_seconds(idle, "idle_timeout")
        self.claim_idle = parse_seconds(params.get("claim_idle", "30s"), "claim_idle")
        try:
            self.count = int(params.get("count", "1000"))
        except ValueError as exc:
            raise ConfigError(f"{safe}: count={params['count']!r} is not a number") from exc
        self.group_start = params.get("start", "0")
        self._client: Any = None
        self._raw_client: Any = None
        #: Fetch a backlog with XREADGROUP (hiredis parses it), else with the script above.
        self.plain_fetch = _hiredis()
        # Ids delivered to this reader and not acknowledged yet, in stream order.
        self._delivered: collections.deque[str] = collections.deque()

    @staticmethod
    def _after(mid: str, last: str) -> bool:
        return _id_key(mid) > _id_key(last)

    @property
    def _separator(self) -> bytes:
        """What follows each body in a fetched block: a newline, but between records."""
        return b"" if self.fmt == "recordio" else b"\n"

    def _redis(self) -> Any:
        if self._client is None:
            import redis  # imported when a stream is read

            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=10)
        return self._client

    def _raw(self) -> Any:
        """A client on the same connections whose XREADGROUP reply is left as parsed."""
        if self._raw_client is None:
            import redis

            self._raw_client = redis.Redis(connection_pool=self._redis().connection_pool)
            self._raw_client.set_response_callback("XREADGROUP", lambda reply, **_: reply)
        return self._raw_client

    def _call(self, what: str, *args: Any, client: Any = None, **kwargs: Any) -> Any:
        import redis

        try:
            return getattr(client or self._redis(), what)(*args, **kwargs)
        except redis.ConnectionError as exc:
            raise ConfigError(f"{self.name}: cannot reach Redis ({exc})") from exc
        except redis.ResponseError as exc:
            raise ConfigError(f"{self.name}: Redis refused {what.upper()} ({exc})") from exc

    def _ensure_group(self) -> None:
        import redis

        try:
            self._redis().xgroup_create(self.stream, self.group, id=self.group_start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise ConfigError(f"{self.name}: cannot create the group ({exc})") from exc
        except redis.ConnectionError as exc:
            raise ConfigError(f"{self.name}: cannot reach Redis ({exc})") from exc

    def _message(self, raw_id: bytes, fields: dict[bytes, bytes] | None) -> Message | None:
        mid = raw_id.decode()
        if fields is None:  # deleted (trimmed) while pending: nothing to fold
            return None
        if self.field not in fields:
            names = sorted(f.decode(errors="replace") for f in fields)
            raise DataError(
                f"no field {self.field.decode()!r} (fields: {names})",
                source=f"{self.name}, message {mid}",
            )
        return Message("", mid, fields[self.field])

    def _pending(self) -> list[Message]:
        """Messages delivered before and never acknowledged: this consumer's, and other
        consumers' idle for ``claim_idle`` (claimed), in stream order."""
        found: dict[str, Message | None] = {}
        last = "0"
        while True:  # this consumer's own pending messages
            reply = self._call(
                "xreadgroup", self.group, self.consumer, {self.stream: last}, count=self.count
            )
            entries = reply[0][1] if reply else []
            if not entries:
                break
            for raw_id, fields in entries:
                found[raw_id.decode()] = self._message(raw_id, fields)
            last = entries[-1][0].decode()
        cursor = "0-0"
        while True:  # and those of consumers that died
            reply = self._call(
                "xautoclaim",
                self.stream,
                self.group,
                self.consumer,
                int(self.claim_idle * 1000),
                start_id=cursor,
                count=self.count,
            )
            for raw_id, fields in reply[1]:
                found[raw_id.decode()] = self._message(raw_id, fields)
            for raw_id in reply[2] if len(reply) > 2 else []:
                found[raw_id.decode()] = None
            cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            if cursor == "0-0":
                break
        gone = [mid for mid, m in found.items() if m is None]
        last_folded = self.start.get("")
        if last_folded is not None:  # folded into the restored state: acknowledged, skipped
            gone += [mid for mid in found if not self._after(mid, last_folded)]
        if gone:
            self._call("xack", self.stream, self.group, *gone)
        keep = [m for mid, m in found.items() if m is not None and mid not in set(gone)]
        return sorted(keep, key=lambda m: _id_key(m.id))

    def _fetch(self) -> Iterator[list[Message] | Joined]:
        self._ensure_group()
        pending = self._pending()
        for at in range(0, len(pending), self.count):
            batch = pending[at : at + self.count]
            self._delivered.extend(m.id for m in batch)
            yield batch
        heard = time.monotonic()
        fetch = None if self.plain_fetch else self._redis().register_script(_FETCH)
        while not self._stopped():
            fetched = self._new(None) if fetch is None else self._backlog(fetch)
            if not fetched:  # caught up: wait for the next message
                if self.idle_timeout is not None:
                    left = self.idle_timeout - (time.monotonic() - heard)
                    if left <= 0:
                        return
                    if left < 2.5 * _BLOCK_SECONDS:
                        time.sleep(min(left, _POLL_SECONDS))
                        continue
                fetched = self._new(int(_BLOCK_SECONDS * 1000))
                if not fetched:
                    continue
            self._delivered.extend(
                fetched.ids if isinstance(fetched, Joined) else (m.id for m in fetched)
            )
            yield fetched
            heard = time.monotonic()  # quiet time counts from here: folding it is no waiting

    def _new(self, block_ms: int | None) -> list[Message] | Joined:
        """Up to ``count`` new messages, waiting up to ``block_ms`` for the first (None: not
        at all), from XREADGROUP's reply as the parser gave it: per message, no more Python
        work than taking its id and body, when the body is its first field."""
        reply = self._call(
            "xreadgroup",
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.count,
            block=block_ms,
            client=self._raw(),
        )
        if not reply:
            return []
        entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
        field = self.field
        if self._separator and all(f and f[0] == field for _, f in entries):
            block = b"\n".join([f[1] for _, f in entries]) + b"\n"
            if block.count(b"\n") == len(entries):  # a line each: the block as it came
                return Joined("", b" ".join([e[0] for e in entries]).decode().split(), block)
        return [m for mid, f in entries if (m := self._message(mid, _fields(f))) is not None]

    def _backlog(self, fetch: Any) -> list[Message] | Joined:
        """Up to ``count`` new messages, without waiting (the script above)."""
        import redis

        try:
            reply = fetch(
                keys=[self.stream],
                args=[self.group, self.consumer, self.count, self.field, self._separator],
            )
        except redis.ConnectionError as exc:
            raise ConfigError(f"{self.name}: cannot reach Redis ({exc})") from exc
        except redis.ResponseError as exc:
            raise ConfigError(f"{self.name}: Redis refused XREADGROUP ({exc})") from exc
        if not reply:
            return []
        ids, sizes, blob = reply[0].decode().split(), reply[1].split(), reply[2]
        if self._separator and b"-1" not in sizes and blob.count(b"\n") == len(ids):
            return Joined("", ids, blob)  # a line each: the block as it came
        out, at, step = [], 0, len(self._separator)
        for mid, size in zip(ids, map(int, sizes), strict=True):
            if size < 0:
                found = self._call("xrange", self.stream, mid, mid)
                self._message(mid.encode(), found[0][1] if found else {})  # raises, naming it
            out.append(Message("", mid, blob[at : at + size]))
            at += size + step
        return out

    def _acknowledge(self, cursor: dict[str, str]) -> None:
        last = cursor.get("")
        if last is None:
            return
        done: list[str] = []
        last_key = _id_key(last)  # once, not once a message
        while self._delivered and _id_key(self._delivered[0]) <= last_key:
            done.append(self._delivered.popleft())
        for at in range(0, len(done), 10_000):
            self._call("xack", self.stream, self.group, *done[at : at + 10_000])
