"""Reading a YAML node tree with every problem recorded at its line, instead of stopping at the
first one. The catalog loader is written on top of these few typed readers.

We compose (parse to nodes) rather than load, so each value keeps its position and its exact
text: ``0.09`` is read as the decimal text it is written as, never through a float.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from tariffs.errors import Problem
from tariffs.numbers import parse_money

T = TypeVar("T")

_INTEGER = re.compile(r"^[+-]?[0-9][0-9_]*$")
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}
NESTING_DEPTH_MAX = 32

_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})

try:  # libyaml's parser is several times faster; both give the same nodes and marks
    from yaml import cyaml

    _Parser: type = cyaml.CParser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader as _StreamReader
    from yaml.scanner import Scanner

    class _PyParser(_StreamReader, Scanner, Parser, Composer):
        def __init__(self, stream: str) -> None:
            _StreamReader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)

    _Parser = _PyParser


class _Composer(_Parser, BaseResolver):  # type: ignore[misc]
    """Parser + composer with a minimal tag resolver.

    The catalog reads every scalar's text itself (exact decimals, digit strings that must stay
    strings), so YAML 1.1 implicit typing is not needed; skipping its regular expressions makes
    composing a 200k-prefix table about twice as fast. Only plain nulls and ``<<`` are told apart.
    """

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)  # type: ignore[misc]
        BaseResolver.__init__(self)

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0] and value in _NULLS:
                return _NULL_TAG
            if implicit[0] and value == "<<":
                return _MERGE_TAG
            return _STR_TAG
        resolved: str = BaseResolver.resolve(self, kind, value, implicit)  # type: ignore[no-untyped-call]
        return resolved


def compose(text: str, file: str, problems: list[Problem]) -> Node | None:
    """Parse ``text`` to a node tree; a syntax error becomes a problem at its line."""
    try:
        composer = _Composer(text)
        try:
            node: Node | None = composer.get_single_node()
        finally:
            composer.dispose()
        return node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problems.append(Problem(file, line, "(yaml)", f"not valid YAML: {exc.problem}"))
    except yaml.YAMLError as exc:
        problems.append(Problem(file, 1, "(yaml)", f"not valid YAML: {exc}"))
    except (RecursionError, ValueError) as exc:  # libyaml: too deep; odd bytes in the stream
        problems.append(Problem(file, 1, "(yaml)", f"not valid YAML: {type(exc).__name__}"))
    return None


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


class Reader:
    """Typed accessors over nodes of one file; each returns None after recording a problem."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems

    def problem(self, node: Node | int, field: str, message: str) -> None:
        line = node if isinstance(node, int) else line_of(node)
        self.problems.append(Problem(self.file, line, field, message))

    def mapping(
        self,
        node: Node,
        field: str,
        allowed: frozenset[str] | None = None,
        required: tuple[str, ...] = (),
    ) -> dict[str, Node] | None:
        """A mapping with string keys; unknown, duplicated and missing keys are problems."""
        if not isinstance(node, MappingNode):
            self.problem(node, field, "expected a mapping (key: value)")
            return None
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                self.problem(key_node, field, "keys must be plain names")
                continue
            key = str(key_node.value)
            where = f"{field}.{key}" if field else key
            if allowed is not None and key not in allowed:
                expected = ", ".join(sorted(allowed))
                self.problem(key_node, where, f"unknown key (expected one of: {expected})")
                continue
            if key in out:
                self.problem(key_node, where, "key given twice")
                continue
            out[key] = value_node
        for key in required:
            if key not in out:
                self.problem(node, f"{field}.{key}" if field else key, "required key is missing")
        return out

    def sequence(self, node: Node, field: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.problem(node, field, "expected a list")
            return None
        return list(node.value)

    def scalar_text(self, node: Node, field: str) -> str | None:
        if not isinstance(node, ScalarNode):
            self.problem(node, field, "expected a single value, not a list or mapping")
            return None
        return str(node.value)

    def string(
        self, node: Node, field: str, pattern: re.Pattern[str] | None = None, hint: str = ""
    ) -> str | None:
        text = self.scalar_text(node, field)
        if text is None:
            return None
        if text == "" or node.tag == _NULL_TAG:
            self.problem(node, field, "must not be empty")
            return None
        if pattern is not None and not pattern.fullmatch(text):
            self.problem(node, field, f"{text!r} is not {hint or 'valid here'}")
            return None
        return text

    def integer(
        self, node: Node, field: str, minimum: int = 0, maximum: int = 2**53 - 1
    ) -> int | None:
        text = self.scalar_text(node, field)
        if text is None:
            return None
        if not _INTEGER.match(text) or len(text) > 20:
            self.problem(node, field, f"{text!r} is not a whole number")
            return None
        value = int(text.replace("_", ""))
        if not minimum <= value <= maximum:
            self.problem(node, field, f"{value} is out of range {minimum}..{maximum}")
            return None
        return value

    def boolean(self, node: Node, field: str) -> bool | None:
        text = self.scalar_text(node, field)
        if text is None:
            return None
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        self.problem(node, field, f"{text!r} is not true or false")
        return None

    def money(self, node: Node, field: str, currency: str | None) -> int | None:
        text = self.scalar_text(node, field)
        if text is None:
            return None
        try:
            return parse_money(text, currency)
        except ValueError as exc:
            self.problem(node, field, str(exc))
            return None

    def convert(self, node: Node, field: str, parse: Callable[[str], T]) -> T | None:
        """A scalar through ``parse``; its ``ValueError`` message becomes the problem."""
        text = self.scalar_text(node, field)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            self.problem(node, field, str(exc))
            return None

    def list_of(
        self, node: Node, field: str, item: Callable[[Node, str], T | None]
    ) -> list[T] | None:
        """A list (a single scalar is accepted as a list of one); bad items are dropped."""
        items = [node] if isinstance(node, ScalarNode) else self.sequence(node, field)
        if items is None:
            return None
        out: list[T] = []
        for index, child in enumerate(items):
            value = item(child, f"{field}[{index}]")
            if value is not None:
                out.append(value)
        return out


def read_files(
    files: Iterable[Path], bytes_max: int, problems: list[Problem]
) -> list[tuple[str, str]]:
    """(name, text) of each file no larger than ``bytes_max``; a file too large or unreadable is
    a problem of its own and left out (the catalog, wholesale and contract loaders share it)."""
    out: list[tuple[str, str]] = []
    for file in files:
        try:
            if file.stat().st_size > bytes_max:
                problems.append(Problem(str(file), 0, "(file)", f"larger than {bytes_max} bytes"))
                continue
            out.append((str(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(file), 0, "(file)", f"cannot read: {exc}"))
    return out
