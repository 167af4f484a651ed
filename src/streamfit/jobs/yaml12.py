"""YAML 1.2 (core schema) for specs and settings, on PyYAML's C parser, with limits.

PyYAML resolves plain scalars by YAML 1.1, where ``on``, ``off``, ``yes``, ``no``, ``y`` and
``n`` are booleans, ``012`` is octal and ``2026-01-01`` a date: ``notify: {on: [completed]}``
would read as ``{True: [...]}``. Here only the 1.2 core schema's forms are typed; every other
plain scalar is a string. Merge keys (``<<: *defaults``) are kept, as most 1.2 loaders do.

A document may hold at most :data:`MAX_ALIASES` aliases, which may add at most
:data:`MAX_EXPANSION` nodes to the ones written (a 1 KB "billion laughs" expands to 10^9); it
may nest at most :data:`MAX_DEPTH` deep and hold at most :data:`MAX_NODES` nodes as written
(about 50,000 specs: larger sweeps go in several documents or JSON Lines). Each is a
:class:`YAMLLimitError`, found before anything is built.

>>> load("notify: {on: [completed], digest: no}\\nsizes: [012, 0o17, 0x1F, 1e3, .inf, ~]")
{'notify': {'on': ['completed'], 'digest': 'no'}, 'sizes': [12, 15, 31, 1000.0, inf, None]}
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from streamfit.text import clip

try:  # the C parser (libyaml) when PyYAML was built with it: ~5x faster on large sweeps
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_EXPANSION",
    "MAX_NODES",
    "YAMLLimitError",
    "describe",
    "load",
    "load_all",
]

MAX_ALIASES = 1_000
MAX_EXPANSION = 100_000
MAX_DEPTH = 64
MAX_NODES = 1_000_000  # a node costs ~300 bytes while composing

_TAG = "tag:yaml.org,2002:"
_NULL, _BOOL, _INT, _FLOAT = _TAG + "null", _TAG + "bool", _TAG + "int", _TAG + "float"
_STR, _SEQ, _MAP, _MERGE = _TAG + "str", _TAG + "seq", _TAG + "map", _TAG + "merge"

# The core schema's regular expressions (YAML 1.2.2, section 10.3.2), whole-string matches.
_NULL_RE = re.compile(r"(?:null|Null|NULL|~|)\Z")
_BOOL_RE = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_INT_RE = re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT_RE = re.compile(
    r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"
)
_MERGE_RE = re.compile(r"<<\Z")
# Where an alias may start: a "*" not inside a word or path (``data/*.parquet`` is text). Files
# without one skip the alias walk.
_ALIAS = re.compile(r"(?:\A|[^\w/.*])\*")


class YAMLLimitError(yaml.YAMLError):
    """A document past one of this module's limits (aliases, expansion, depth)."""


def _text(node: Node) -> str:
    if not isinstance(node, ScalarNode):  # an explicit scalar !!tag on a collection
        raise ConstructorError(None, None, "expected a scalar, found a collection", node.start_mark)
    value: str = node.value
    return value


def _scalar(node: Node, pattern: re.Pattern[str], what: str) -> str:
    value = _text(node)
    if not pattern.match(value):  # an explicit !!tag on another form
        raise ConstructorError(None, None, f"{clip(value)!r} is not {what}", node.start_mark)
    return value


def _str(loader: SafeConstructor, node: Node) -> str:
    return _text(node)


def _null(loader: SafeConstructor, node: Node) -> None:
    _scalar(node, _NULL_RE, "null")


def _bool(loader: SafeConstructor, node: Node) -> bool:
    return _scalar(node, _BOOL_RE, "a boolean (true or false)")[0] in "tT"


def _int(loader: SafeConstructor, node: Node) -> int:
    value = _scalar(node, _INT_RE, "an integer")
    try:
        if value[:2] in ("0o", "0x"):
            return int(value[2:], 8 if value[1] == "o" else 16)
        return int(value, 10)  # 1.2: a leading 0 is not octal
    except ValueError:  # Python refuses to parse decimals of more than 4,300 digits
        raise ConstructorError(None, None, "an integer too long", node.start_mark) from None


def _float(loader: SafeConstructor, node: Node) -> float:
    value = _scalar(node, _FLOAT_RE, "a number").lower()
    if value.endswith(("inf", "nan")):
        sign = -1.0 if value[0] == "-" else 1.0
        return sign * math.inf if value[-1] == "f" else math.nan
    return float(value)


# Which tags a plain scalar may have, by its first character ("" for the empty scalar); any
# other plain scalar is a string.
_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _tag, _regexp, _first in (
    (_NULL, _NULL_RE, ["", "~", "n", "N"]),
    (_BOOL, _BOOL_RE, list("tTfF")),
    (_INT, _INT_RE, list("-+0123456789")),
    (_FLOAT, _FLOAT_RE, list("-+.0123456789")),
    (_MERGE, _MERGE_RE, ["<"]),
):
    for _char in _first:
        _RESOLVERS.setdefault(_char, []).append((_tag, _regexp))


class _Loader(_SafeLoader):
    """The 1.2 core schema's resolvers and constructors (nothing else: no timestamps, sets,
    binary), a depth limit while composing, and duplicate keys refused."""

    yaml_constructors: ClassVar[dict[Any, Any]] = {
        _STR: _str,
        _SEQ: SafeConstructor.construct_yaml_seq,
        _MAP: SafeConstructor.construct_yaml_map,
        _NULL: _null,
        _BOOL: _bool,
        _INT: _int,
        _FLOAT: _float,
        _MERGE: _str,  # ``<<`` merges only as a key, handled there; a value is the text
        None: SafeConstructor.construct_undefined,
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._checked: set[int] = set()

    def resolve(self, kind: type[Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0]:  # plain: typed by its form
                for tag, regexp in _RESOLVERS.get(value[:1], ()):  # type: ignore[index]
                    if regexp.match(value):  # type: ignore[arg-type]
                        return tag
            return _STR
        return _SEQ if kind is SequenceNode else _MAP

    # The composer calls these around every node it builds: a cheap place to bound its
    # recursion and its memory before the document is deep or large enough to hurt.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_DEPTH:
            raise YAMLLimitError(f"nested deeper than {MAX_DEPTH} levels")
        if self._nodes > MAX_NODES:
            raise YAMLLimitError(f"more than {MAX_NODES:,} nodes in one document")

    def ascend_resolver(self) -> None:
        self._depth -= 1

    def flatten_mapping(self, node: MappingNode) -> None:
        # Called on each mapping before it is built and before merges change its pairs.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            _unique_keys(node)
        super().flatten_mapping(node)


def _unique_keys(node: MappingNode) -> None:
    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if isinstance(key, ScalarNode) and key.tag != _MERGE:
            if (key.tag, key.value) in seen:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {clip(key.value)!r}",
                    key.start_mark,
                )
            seen.add((key.tag, key.value))


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        return iter(node.value)
    if isinstance(node, MappingNode):
        return itertools.chain.from_iterable(node.value)
    return iter(())


def _check_aliases(root: Node) -> None:
    """Count a document's aliases and the nodes they add, without expanding them: each node's
    expanded size is computed once (nodes an alias repeats are shared objects)."""
    sizes: dict[int, int] = {}
    aliases = 0
    stack = [(root, _children(root))]
    running = [1]  # the expanded size so far of each node on the stack
    on_stack = {id(root)}
    while stack:
        node, children = stack[-1]
        for child in children:
            key = id(child)
            if key in sizes:
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise YAMLLimitError(f"more than {MAX_ALIASES:,} aliases in one document")
                running[-1] += sizes[key]
            elif key in on_stack:
                raise YAMLLimitError(
                    f"an alias inside its own anchor (line {child.start_mark.line + 1})"
                )
            elif isinstance(child, ScalarNode):
                sizes[key] = 1
                running[-1] += 1
            else:
                stack.append((child, _children(child)))
                running.append(1)
                on_stack.add(key)
                break
        else:
            stack.pop()
            on_stack.discard(id(node))
            size = sizes[id(node)] = running.pop()
            if running:
                running[-1] += size
    added = sizes[id(root)] - len(sizes)
    if added > MAX_EXPANSION:
        raise YAMLLimitError(
            f"aliases expand the document by more than {MAX_EXPANSION:,} nodes ({_count(added)})"
        )


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"about 10^{len(str(n)) - 1}"


def load_all(text: str) -> Iterator[Any]:
    """Every document in ``text``; raises :class:`yaml.YAMLError` (limits included)."""
    loader = _Loader(text)
    may_alias = _ALIAS.search(text) is not None
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            if may_alias:
                _check_aliases(node)
            loader._checked.clear()
            loader._nodes = 0
            yield loader.construct_document(node)
    except RecursionError:  # merges chained past Python's stack, on the way to the limits
        raise YAMLLimitError(f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def load(text: str) -> Any:
    """The one document in ``text`` (None if empty)."""
    documents = list(itertools.islice(load_all(text), 2))
    if len(documents) > 1:
        raise yaml.YAMLError("expected one document, found several")
    return documents[0] if documents else None


def describe(exc: yaml.YAMLError) -> str:
    """One line for ``exc``, its position included, never a long echo of the input.

    >>> try:
    ...     load("a: 1\\na: 2")
    ... except yaml.YAMLError as exc:
    ...     describe(exc)
    "while constructing a mapping: found duplicate key 'a' (line 2, column 1)"
    """
    if isinstance(exc, yaml.MarkedYAMLError):
        text = ": ".join(str(part) for part in (exc.context, exc.problem) if part)
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            text += f" (line {mark.line + 1}, column {mark.column + 1})"
    else:
        text = str(exc)
    return clip(" ".join(text.split()), 200)
