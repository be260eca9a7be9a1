"""YAML loading that remembers where every value came from, and what exactly was read.

Policy errors must read `file:line: what is wrong`. PyYAML's plain loaders drop positions and
silently keep the last of two duplicate keys, so this module composes the node graph itself and
builds dicts and lists that carry the line of each key, value and item.

A policy is loaded again while the proxy runs, from files an operator or a tool may be
writing at that moment, so loading also refuses what would fail open or fall over: an empty
file (a write cut short reads as "no services"), a file too large to be a policy, and YAML
aliases that expand a small file into millions of values ("billion laughs"), nest without
end or contain themselves. `Sources` records each file's stat taken before it was read, so a
change that lands during or after the read is always seen as one.
"""

from __future__ import annotations

import difflib
import hashlib
import os
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
_MERGE_TAG = "tag:yaml.org,2002:merge"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~5x faster

MAX_FILE_BYTES = 64 * 1024 * 1024  # bench/engine_bench.py's 100,000-host catalog is 4 MB
MAX_SECRET_BYTES = 4096  # a password file
ALIAS_ALLOWANCE = 100_000  # values aliases may add to those a file writes out
MAX_DEPTH = 64  # policy and catalog files nest 6 levels deep

Stamp = tuple[int, int, int]  # st_mtime_ns, st_size, st_ino
MISSING: Stamp = (-1, -1, -1)  # the file could not be opened


def stamp(path: Path) -> Stamp:
    """The stat that tells a file changed: an edit, a replacement or a removal."""
    try:
        st = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return MISSING
    return st.st_mtime_ns, st.st_size, st.st_ino


def listing(directory: Path) -> tuple[Path, ...]:
    """The YAML files of a directory, in the order they are loaded."""
    try:
        return tuple(sorted(directory.glob("*.yaml")))
    except (OSError, ValueError):
        return ()


@dataclass(frozen=True)
class Fingerprint:
    """What one load read: each file with its stat taken before reading, and each directory
    with the files found in it. `now()` looks again at the same names: any difference means
    the load may have missed a change, so it must be done again."""

    files: tuple[tuple[str, Stamp], ...] = ()
    listings: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def now(self) -> Fingerprint:
        return Fingerprint(
            tuple((name, stamp(Path(name))) for name, _ in self.files),
            tuple((d, tuple(map(str, listing(Path(d))))) for d, _ in self.listings),
        )


class Sources:
    """Reads the files of one load, and records what was read: the fingerprint, and a digest
    of the very bytes parsed (reading the files again afterwards could hash a newer version)."""

    def __init__(self) -> None:
        self._files: list[tuple[str, Stamp]] = []
        self._listings: list[tuple[str, tuple[str, ...]]] = []
        self._hash = hashlib.sha256()

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(tuple(self._files), tuple(self._listings))

    def digest(self) -> str:
        return self._hash.hexdigest()

    def glob(self, directory: Path) -> tuple[Path, ...]:
        found = listing(directory)
        self._listings.append((str(directory), tuple(map(str, found))))
        return found

    def read(self, path: Path, problems: Problems) -> str | None:
        """The file's text, or None with the reason in `problems`. The stat is taken on the
        open file before reading: a later write changes what `Fingerprint.now()` sees."""
        name = str(path)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                self._files.append((name, (st.st_mtime_ns, st.st_size, st.st_ino)))
                data = b"" if st.st_size > MAX_FILE_BYTES else f.read(MAX_FILE_BYTES + 1)
        except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
            self._files.append((name, MISSING))
            problems.add(name, 0, f"cannot read: {getattr(e, 'strerror', None) or e}")
            return None
        if st.st_size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:
            limit = f"{MAX_FILE_BYTES // 2**20} MiB"
            problems.add(name, 0, f"larger than {limit}: too large for a policy or catalog file")
            return None
        self._hash.update(data)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.add(name, 0, f"not UTF-8 text: {e.reason}")
            return None

    def read_secret(self, path: Path) -> str:
        """A secret's text (a bind password); ValueError says why it cannot be read. Watched
        like the other files, so that a new password is taken on the next poll, but its bytes
        stay out of the digest, which logs and metrics show: the digest takes its stat."""
        name = str(path)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read(MAX_SECRET_BYTES + 1)
        except (OSError, ValueError) as e:
            self._files.append((name, MISSING))
            raise ValueError(getattr(e, "strerror", None) or type(e).__name__) from None
        found = (st.st_mtime_ns, st.st_size, st.st_ino)
        self._files.append((name, found))
        self._hash.update(f"secret {name} {found}".encode())
        if len(data) > MAX_SECRET_BYTES:
            raise ValueError(f"larger than {MAX_SECRET_BYTES} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8 text") from None


def load_yaml(path: Path, problems: Problems, sources: Sources | None = None) -> Any:
    """Load one YAML document; syntax errors, duplicate keys, an empty file and aliases that
    would expand without bound go to `problems`. `sources` records what was read."""
    name = str(path)
    text = (sources or Sources()).read(path, problems)
    if text is None:
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            problems.add(name, 1, "the file is empty: only whitespace or comments")
            return None
        if not _bounded(node, name, problems):
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


def _bounded(root: yaml.Node, file: str, problems: Problems) -> bool:
    """Whether building `root` stays within bounds, checked on the composed graph before a
    single value is built. An alias is the very node it names, so one walk over the distinct
    collections, in document order, finds what building would make: the values each alias
    adds (merge keys included), the nesting depth, and loops, which building would follow
    into a RecursionError. What the file writes out costs nothing; aliases may add at most
    ALIAS_ALLOWANCE values, and the error names the value whose alias passed that."""
    scalar, sequence = yaml.ScalarNode, yaml.SequenceNode
    size: dict[int, int] = {}  # id(collection) -> values it expands to, itself included
    height: dict[int, int] = {}  # id(collection) -> levels of nesting it expands to
    found_at: dict[int, tuple[int, int]] = {}  # id(collection) -> (id(parent), index) written
    path: set[int] = set()  # the collections being walked into: meeting one again is a loop
    added = 0  # values that aliases add to what the file writes out
    Entry = tuple[yaml.Node, list[yaml.Node] | None, int, int]
    stack: list[Entry] = [(root, None, 0, 0)] if type(root) is not scalar else []
    while stack:
        node, children, parent, index = stack.pop()
        key = id(node)
        if children is None:  # first met: where it is written; walk what it holds
            if key in size:
                continue  # an alias of a value already walked: counted at the parent
            if key in path:
                problems.add(
                    file, _line(node), "a YAML alias in this value refers back to it (a loop)"
                )
                return False
            found_at[key] = (parent, index)
            items = (
                node.value if type(node) is sequence else [i for pair in node.value for i in pair]
            )
            path.add(key)
            stack.append((node, items, parent, index))
            for i in range(len(items) - 1, -1, -1):
                if type(items[i]) is not scalar:
                    stack.append((items[i], None, key, i))
            continue
        path.discard(key)  # everything it holds is walked
        total, deepest = 1, 0
        for i, child in enumerate(children):
            if type(child) is scalar:
                total += 1
                continue
            child_size = size[id(child)]
            total += child_size
            deepest = max(deepest, height[id(child)])
            if found_at[id(child)] != (key, i):
                added += child_size  # an alias: everything it names is built again here
        if added > ALIAS_ALLOWANCE:
            problems.add(
                file,
                _line(node),
                f"YAML aliases here make the file expand to {added:,} more values than it "
                f"writes out (at most {ALIAS_ALLOWANCE:,})",
            )
            return False
        if deepest + 1 > MAX_DEPTH:
            problems.add(file, _line(node), f"values nested more than {MAX_DEPTH} levels deep")
            return False
        size[key], height[key] = total, deepest + 1
    return True


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _build(node: yaml.Node, loader: Any, file: str, problems: Problems) -> Any:
    if type(node) is yaml.ScalarNode:
        if node.tag == _STR_TAG:
            return node.value  # the common case, without the constructor's bookkeeping
        try:
            return loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as e:  # a date such as 2026-13-01
            problems.add(file, _line(node), f"cannot read {node.value!r}: {e}")
            return node.value
    if isinstance(node, yaml.MappingNode):
        _merge(node)
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


def _merge(node: yaml.MappingNode) -> None:
    """Resolve merge keys (`<<: *base`) in place, as YAML says: the mapping's own keys win
    over merged ones, and an earlier merged mapping wins over a later one. (PyYAML's
    flatten_mapping keeps both pairs, which reads as a duplicate key.) `_bounded` has already
    counted what merging copies, and ruled out loops."""
    own, sources = [], []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            own.append((key_node, value_node))
        elif isinstance(value_node, yaml.MappingNode):
            sources.append(value_node)
        elif isinstance(value_node, yaml.SequenceNode) and all(
            isinstance(item, yaml.MappingNode) for item in value_node.value
        ):
            sources.extend(value_node.value)
        else:
            raise yaml.constructor.ConstructorError(
                None, None, "'<<' merges a mapping or a list of mappings", value_node.start_mark
            )
    if len(own) == len(node.value):
        return
    seen = {_key_of(key_node) for key_node, _ in own}
    merged = []
    for source in sources:
        _merge(source)
        for key_node, value_node in source.value:
            if (key := _key_of(key_node)) not in seen:
                seen.add(key)
                merged.append((key_node, value_node))
    node.value = merged + own


def _key_of(node: yaml.Node) -> object:
    return (node.tag, node.value) if type(node) is yaml.ScalarNode else id(node)


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

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.node.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(key, f"{key!r} must be true or false, not {type_name(value)}")
            return default
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
