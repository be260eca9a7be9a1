"""YAML loading that remembers where every value came from.

Policy errors must read `file:line: what is wrong`. PyYAML's plain loaders drop positions and
silently keep the last of two duplicate keys, so this module composes the node graph itself and
builds dicts and lists that carry the line of each key, value and item.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PolicyError(Exception):
    """A policy that cannot be used; `problems` holds every error found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Problems:
    """Collects errors so that one run reports all of them."""

    items: list[Problem] = field(default_factory=list)

    def add(self, file: str, line: int, message: str) -> None:
        self.items.append(Problem(file, line, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise PolicyError(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


class Mapping(dict):
    """A YAML mapping with the source positions of its keys and values."""

    file: str
    line: int
    key_lines: dict[Any, int]
    value_lines: dict[Any, int]

    def key_line(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)

    def value_line(self, key: Any) -> int:
        return self.value_lines.get(key, self.key_line(key))


class Sequence(list):
    """A YAML sequence with the source position of each item."""

    file: str
    line: int
    item_lines: list[int]

    def item_line(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


_STR_TAG = "tag:yaml.org,2002:str"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~5x faster


def load_yaml(path: Path, problems: Problems) -> Any:
    """Load one YAML document; syntax errors and duplicate keys go to `problems`."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        problems.add(name, 0, f"cannot read: {getattr(e, 'strerror', None) or e}")
        return None
    except UnicodeDecodeError as e:
        problems.add(name, 0, f"not UTF-8 text: {e.reason}")
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _build(node, loader, name, problems)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        problems.add(name, line, f"YAML syntax error: {e.problem or e.context}")
        return None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow
        line = text.count("\n", 0, e.position) + 1
        character = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        problems.add(name, line, f"YAML error: character {character}: {e.reason}")
        return None
    except yaml.YAMLError as e:
        problems.add(name, 0, f"YAML error: {' '.join(str(e).split())}")
        return None
    finally:
        loader.dispose()


def _build(node: yaml.Node, loader: Any, file: str, problems: Problems) -> Any:
    if type(node) is yaml.ScalarNode:
        if node.tag == _STR_TAG:
            return node.value  # the common case, without the constructor's bookkeeping
        return loader.construct_object(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result = Mapping()
        result.file, result.line = file, node.start_mark.line + 1
        result.key_lines, result.value_lines = {}, {}
        for key_node, value_node in node.value:
            key = _build(key_node, loader, file, problems)
            key_line = key_node.start_mark.line + 1
            if isinstance(key, (dict, list)):
                problems.add(file, key_line, "a mapping key must be a plain value")
                continue
            if key in result:
                problems.add(
                    file,
                    key_line,
                    f"duplicate key {key!r} (first at line {result.key_lines[key]})",
                )
                continue
            result[key] = _build(value_node, loader, file, problems)
            result.key_lines[key] = key_line
            result.value_lines[key] = value_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        seq = Sequence(_build(item, loader, file, problems) for item in node.value)
        seq.file, seq.line = file, node.start_mark.line + 1
        seq.item_lines = [item.start_mark.line + 1 for item in node.value]
        return seq
    return loader.construct_object(node, deep=True)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' when a choice is close to `word`, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        Mapping: "a mapping",
        dict: "a mapping",
        Sequence: "a list",
        list: "a list",
    }.get(type(value), type(value).__name__)


class Fields:
    """Typed, checked access to one mapping of a policy or catalog file.

    Unknown keys (with a did-you-mean) and missing required keys are reported on creation;
    each getter reports a wrong type at the value's line and returns None for it.
    """

    def __init__(
        self,
        node: Mapping,
        where: str,
        problems: Problems,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> None:
        self.node, self.where, self.problems = node, where, problems
        allowed = list(allowed)
        for key in node:
            if key not in allowed:
                problems.add(
                    node.file,
                    node.key_line(key),
                    f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}",
                )
        for key in required:
            if node.get(key) is None:
                problems.add(node.file, node.line, f"{where}: missing required key {key!r}")

    def error(self, key: str, message: str) -> None:
        self.problems.add(self.node.file, self.node.value_line(key), f"{self.where}: {message}")

    def line(self, key: str) -> int:
        return self.node.value_line(key)

    def has(self, key: str) -> bool:
        return self.node.get(key) is not None

    def str(self, key: str, default: str | None = None, choices: Iterable[str] = ()) -> str | None:
        value = self.node.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.error(key, f"{key!r} must be a string, not {type_name(value)}")
            return None
        choices = list(choices)
        if choices and value not in choices:
            self.error(
                key,
                f"{key!r} must be one of {', '.join(choices)}, not {value!r}"
                f"{did_you_mean(value, choices)}",
            )
            return None
        return value

    def int(self, key: str, default: int | None = None) -> int | None:
        value = self.node.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"{key!r} must be a whole number, not {type_name(value)}")
            return None
        return value

    def mapping(self, key: str) -> Mapping | None:
        value = self.node.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.error(key, f"{key!r} must be a mapping, not {type_name(value)}")
            return None
        return value

    def sequence(self, key: str) -> Sequence | None:
        value = self.node.get(key)
        if value is None:
            return None
        if not isinstance(value, Sequence):
            self.error(key, f"{key!r} must be a list, not {type_name(value)}")
            return None
        return value

    def str_items(self, key: str) -> list[tuple[str, int]] | None:
        """A list of strings as (value, line) pairs; a lone string counts as a list of one."""
        value = self.node.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return [(value, self.line(key))]
        if not isinstance(value, Sequence):
            self.error(key, f"{key!r} must be a list of strings, not {type_name(value)}")
            return None
        if not value:
            self.error(key, f"{key!r} is an empty list; leave it out to match anything")
            return None
        items = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item:
                items.append((item, value.item_line(i)))
            else:
                self.problems.add(
                    self.node.file,
                    value.item_line(i),
                    f"{self.where}: {key!r} items must be non-empty strings, not {type_name(item)}",
                )
        return items
