"""Read YAML through composed nodes, so every error can name the key path and the line.

pyyaml's `safe_load` forgets where values came from and silently keeps the last of duplicate
keys. Here a document is composed into nodes (`yaml.compose`), and `Mapping` reads typed values
from a mapping node, strictly: a string is not an integer, a bool is not an integer, null is only
accepted where the caller allows it. Every failure is a `NodeError(problem, line, key)`; the caller
adds the file name (see host/profiles.py).
"""

from __future__ import annotations

import math
from typing import Final, NoReturn, Sequence

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

STR: Final = "tag:yaml.org,2002:str"
INT: Final = "tag:yaml.org,2002:int"
FLOAT: Final = "tag:yaml.org,2002:float"
BOOL: Final = "tag:yaml.org,2002:bool"
NULL: Final = "tag:yaml.org,2002:null"

_CONSTRUCT: Final = SafeConstructor()


class NodeError(Exception):
    """A problem at a place in a YAML document: 1-based line (None if unknown) and key path."""

    def __init__(self, problem: str, line: int | None = None, key: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.line = line
        self.key = key


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()
"""Default meaning "this key must be present"."""


def compose(text: str) -> Node | None:
    """The document's root node, None for an empty document; syntax errors name their line."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "invalid YAML"
        if e.context and e.problem and e.problem.startswith("but "):  # "expected X", "but found Y"
            problem = f"{e.context}, {e.problem}"
        raise NodeError(f"YAML syntax error: {problem}", mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1 if isinstance(e.position, int) else None
        raise NodeError(f"YAML syntax error: unacceptable character #x{e.character:04x}: {e.reason}",
                        line) from None
    except yaml.YAMLError as e:  # pragma: no cover - every pyyaml parse error is one of the above
        raise NodeError(f"YAML syntax error: {e}") from None


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def describe(node: Node) -> str:
    """How a value looks in the file, for "got ..." in messages: 'text', 22, true, null, a list."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == STR:
        return repr(node.value)
    if node.tag == NULL:
        return "null"
    return str(node.value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Mapping:
    """A mapping node whose keys are unique strings; typed readers fail with key path and line.

    `path` is the key path of this mapping ("" for the top level, "transport" below it) and
    `line` the line of the key that holds it (None for the top level): missing keys are reported
    there, since the key that is missing has no line of its own.
    """

    def __init__(self, node: Node, path: str = "", line: int | None = None):
        if not isinstance(node, MappingNode):
            raise NodeError(f"expected a mapping, got {describe(node)}", line_of(node), path)
        self.path = path
        self.line = line
        self.items: dict[str, tuple[int, Node]] = {}
        for key_node, value_node in node.value:
            key_line = line_of(key_node)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise NodeError("merge keys (<<) are not supported; write the keys out", key_line, path)
            if not (isinstance(key_node, ScalarNode) and key_node.tag == STR):
                raise NodeError(f"expected a string key, got {describe(key_node)}", key_line, path)
            key = key_node.value
            if key in self.items:
                raise NodeError(f"duplicate key (first at line {self.items[key][0]})", key_line,
                                _join(path, key))
            self.items[key] = (key_line, value_node)

    def __contains__(self, key: str) -> bool:
        return key in self.items

    def keys(self) -> list[str]:
        return list(self.items)

    def key_path(self, key: str) -> str:
        return _join(self.path, key)

    def line_of(self, key: str) -> int | None:
        return self.items[key][0] if key in self.items else self.line

    def fail(self, key: str, problem: str) -> NoReturn:
        raise NodeError(problem, self.line_of(key), self.key_path(key))

    def check_keys(self, known: Sequence[str]) -> None:
        """Reject the first key not in `known`, listing the known ones."""
        for key in self.items:
            if key not in known:
                self.fail(key, f"unknown key (known: {', '.join(sorted(known))})")

    def node(self, key: str) -> Node:
        if key not in self.items:
            self.fail(key, "missing required key")
        return self.items[key][1]

    def _expect(self, key: str, node: Node, what: str) -> NoReturn:
        self.fail(key, f"expected {what}, got {describe(node)}")

    # -- typed readers ---------------------------------------------------------------------

    def string(self, key: str, default: str | _Required = REQUIRED, *, empty: bool = False) -> str:
        """A string; `empty=False` rejects ''."""
        if key not in self.items and not isinstance(default, _Required):
            return default
        node = self.node(key)
        if not (isinstance(node, ScalarNode) and node.tag == STR):
            self._expect(key, node, "a string")
        if not empty and not node.value.strip():
            self.fail(key, "must not be empty")
        return str(node.value)

    def optional_string(self, key: str) -> str | None:
        """A non-empty string or null; None when absent."""
        if key not in self.items or self.is_null(key):
            return None
        node = self.items[key][1]
        if not (isinstance(node, ScalarNode) and node.tag == STR):
            self._expect(key, node, "a string or null")
        if not node.value.strip():
            self.fail(key, "must not be empty (use null for none)")
        return str(node.value)

    def is_null(self, key: str) -> bool:
        node = self.items[key][1] if key in self.items else None
        return isinstance(node, ScalarNode) and node.tag == NULL

    def boolean(self, key: str, default: bool | _Required = REQUIRED) -> bool:
        if key not in self.items and not isinstance(default, _Required):
            return default
        node = self.node(key)
        if not (isinstance(node, ScalarNode) and node.tag == BOOL):
            self._expect(key, node, "true or false")
        return bool(_CONSTRUCT.construct_yaml_bool(node))

    def integer(self, key: str, default: int | _Required = REQUIRED, *,
                low: int | None = None, high: int | None = None) -> int:
        """An integer (never a bool or a quoted number) within [low, high]."""
        if key not in self.items and not isinstance(default, _Required):
            return default
        node = self.node(key)
        if not (isinstance(node, ScalarNode) and node.tag == INT):
            self._expect(key, node, "an integer")
        value = int(_CONSTRUCT.construct_yaml_int(node))
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                wanted = f"an integer in {low}-{high}"
            else:
                wanted = f"an integer >= {low}" if low is not None else f"an integer <= {high}"
            self.fail(key, f"expected {wanted}, got {node.value}")
        return value

    def number(self, key: str, default: float | _Required = REQUIRED, *, positive: bool = True) -> float:
        """An integer or float (never a bool), finite, > 0 when `positive`."""
        if key not in self.items and not isinstance(default, _Required):
            return default
        node = self.node(key)
        if not (isinstance(node, ScalarNode) and node.tag in (INT, FLOAT)):
            self._expect(key, node, "a number")
        value = float(_CONSTRUCT.construct_yaml_int(node) if node.tag == INT
                      else _CONSTRUCT.construct_yaml_float(node))
        if not math.isfinite(value) or (positive and value <= 0):
            self.fail(key, f"expected a positive number, got {node.value}")
        return value

    def strings(self, key: str, default: tuple[str, ...] | _Required = REQUIRED, *,
                non_empty: bool = True) -> tuple[str, ...]:
        """A list of non-empty strings (`non_empty`: at least one); items are named key[i]."""
        if key not in self.items and not isinstance(default, _Required):
            return default
        node = self.node(key)
        if not isinstance(node, SequenceNode):
            self._expect(key, node, "a list of strings")
        if non_empty and not node.value:
            self.fail(key, "expected a non-empty list of strings, got an empty list")
        values = []
        for i, item in enumerate(node.value):
            if not (isinstance(item, ScalarNode) and item.tag == STR):
                raise NodeError(f"expected a string, got {describe(item)}", line_of(item),
                                f"{self.key_path(key)}[{i}]")
            if not item.value.strip():
                raise NodeError("must not be empty", line_of(item), f"{self.key_path(key)}[{i}]")
            values.append(str(item.value))
        return tuple(values)

    def item_line(self, key: str, index: int) -> int | None:
        """The line of item `index` of the list under `key`."""
        node = self.items[key][1] if key in self.items else None
        if isinstance(node, SequenceNode) and index < len(node.value):
            return line_of(node.value[index])
        return self.line_of(key)

    def mapping(self, key: str, *, required: bool = False) -> Mapping | None:
        """The nested mapping under `key`; None when absent or null unless `required`."""
        if not required and (key not in self.items or self.is_null(key)):
            return None
        node = self.node(key)
        if not isinstance(node, MappingNode):
            self._expect(key, node, "a mapping")
        return Mapping(node, self.key_path(key), self.items[key][0])
