"""detect-secrets' own test cases: the lines its plugin tests (tests/plugins/*_test.py) expect
each plugin to flag, or to leave alone.

The tests are not imported or run: their syntax tree is read, and a small evaluator computes
the string expressions they are built from (constants, `.format`, `%`, `+`, slices,
f-strings, the module's and class's constants). Family = the plugin the test file is for
(`aws_key_test.py`: aws-key). A case counts when its parametrize has a line-like argument
(`line`, `payload`, `file_content`) and a label (`should_flag`, `should_be_caught`, or the
keyword tests' `expected_secret`), or is alone in a test that asserts a finding (Slack,
Square, private keys). The span is the expected secret when the test names it, else the
longest token of the line. The high-entropy tests' `secret` and `non_secret` values are taken
in the quotes the plugin needs.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from pathlib import Path

from corpus.public_sources import PublicSample, list_files, read_text, sample

TESTS_DIR = "tests/plugins"
_TEXT_ARGS = ("line", "payload", "file_content")
_LABEL_ARGS = ("should_flag", "should_be_caught", "expected_secret")


class Unsupported(Exception):
    """An expression this evaluator does not compute."""


def evaluate(node: ast.AST, env: dict) -> object:
    """The value of a constant-ish expression of a test file."""
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name) if name in env:
            return env[name]
        case ast.Tuple(elts=elts) | ast.List(elts=elts):
            return [evaluate(e, env) for e in elts]
        case ast.JoinedStr(values=values):
            return "".join(str(evaluate(v.value if isinstance(v, ast.FormattedValue) else v, env))
                           for v in values)  # fmt: skip
        case ast.BinOp(left=left, op=op, right=right):
            a, b = evaluate(left, env), evaluate(right, env)
            if isinstance(op, ast.Add) and isinstance(a, str) and isinstance(b, str):
                return a + b
            if isinstance(op, ast.Mult) and isinstance(a, str) and isinstance(b, int):
                return a * min(b, 10_000)
            if isinstance(op, ast.Mod) and isinstance(a, str):
                return a % (tuple(b) if isinstance(b, list) else b)
        case ast.Subscript(value=value, slice=ast.Slice(lower=lo, upper=hi, step=None)):
            text = evaluate(value, env)
            lower = evaluate(lo, env) if lo else None
            upper = evaluate(hi, env) if hi else None
            if isinstance(text, str):
                return text[lower:upper]
        case ast.Call(func=ast.Attribute(value=target, attr=attr), args=args, keywords=kws):
            obj = evaluate(target, env)
            values = [evaluate(a, env) for a in args]
            named = {k.arg: evaluate(k.value, env) for k in kws if k.arg}
            if isinstance(obj, str) and attr == "format":
                return obj.format(*values, **named)
            if isinstance(obj, str) and attr == "join" and isinstance(values[0], list):
                return obj.join(values[0])
        case ast.Attribute(value=ast.Name(id="self"), attr=attr) if attr in env:
            return env[attr]
    raise Unsupported(ast.dump(node)[:80])


_FAILS = (Unsupported, TypeError, ValueError, KeyError, IndexError)


def tolerant(node: ast.AST, env: dict) -> object:
    """`evaluate`, but a list or tuple keeps the elements that compute (one row built with
    base64 does not lose the others)."""
    if isinstance(node, (ast.List, ast.Tuple)):
        out = []
        for element in node.elts:
            with contextlib.suppress(_FAILS):
                out.append(evaluate(element, env))
        return out
    return evaluate(node, env)


def _constants(body: list[ast.stmt], env: dict) -> dict:
    """Names assigned a computable value in a module or class body (and `self.x = ...` in a
    `setup`), added to a copy of `env`."""
    env = dict(env)
    for stmt in body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        if isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("setup"):
            for inner in stmt.body:
                if isinstance(inner, ast.Assign) and isinstance(inner.targets[0], ast.Attribute):
                    with contextlib.suppress(_FAILS):
                        env[inner.targets[0].attr] = evaluate(inner.value, env)
        for target in targets:
            if isinstance(target, ast.Name):
                with contextlib.suppress(_FAILS):
                    env[target.id] = tolerant(stmt.value, env)
    return env


def _parametrizes(fn: ast.FunctionDef) -> Iterator[tuple[list[str], ast.AST]]:
    for dec in fn.decorator_list:
        if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)
                and dec.func.attr == "parametrize" and len(dec.args) >= 2):  # fmt: skip
            names = dec.args[0]
            if isinstance(names, ast.Constant) and isinstance(names.value, str):
                yield [n.strip() for n in names.value.split(",")], dec.args[1]


def _cases(names: list[str], rows: object) -> Iterator[tuple[str, bool, str | None]]:
    """(text, flagged, secret) of each row of a parametrize."""
    text_arg = next((n for n in _TEXT_ARGS if n in names), None)
    if text_arg is None or not isinstance(rows, list):
        return
    label = next((n for n in _LABEL_ARGS if n in names), None)
    for row in rows:
        row = row if len(names) > 1 else [row]
        if not isinstance(row, list) or len(row) != len(names):
            continue
        values = dict(zip(names, row, strict=True))
        text = values[text_arg]
        if not isinstance(text, str) or not text:
            continue
        if label is None:
            yield text, True, None
        elif label == "expected_secret":
            yield text, bool(values[label]), values[label] or None
        else:
            yield text, bool(values[label]), None


def _family(path: str) -> str:
    return Path(path).stem.removesuffix("_test").replace("_", "-")


def file_samples(path: str, source: str) -> list[PublicSample]:
    tree = ast.parse(source)
    module = _constants(tree.body, {})
    family, out, seen = _family(path), [], set()

    def add(text: str, flagged: bool, secret: str | None, fam: str = family) -> None:
        if (fam, text) in seen:
            return
        seen.add((fam, text))
        out.append(sample("detect-secrets", fam, text, secret, path, positive=flagged))

    # the keyword tests: lists of (line, expected secret) shared by several file types
    for name, value in module.items():
        if name.endswith("_TEST_CASES") and isinstance(value, list):
            for row in value:
                if isinstance(row, list) and len(row) == 2 and isinstance(row[0], str):
                    add(row[0], bool(row[1]), row[1] or None)
    scopes = [(tree.body, module)]
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            scopes.append((node.body, _constants(node.body, module)))
            for names, rows in _parametrizes(node):  # type: ignore[arg-type]
                _entropy_cases(names, rows, module, add)
    for body, env in scopes:
        for fn in body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            for names, rows in _parametrizes(fn):
                try:
                    values = tolerant(rows, env)
                except _FAILS:
                    continue
                for text, flagged, secret in _cases(names, values):
                    add(text, flagged, secret)
    return out


def _entropy_cases(names: list[str], rows: ast.AST, env: dict, add) -> None:
    """The class-level (plugin, non_secret, secret) rows of the high-entropy tests."""
    if names[:3] != ["plugin", "non_secret", "secret"] or not isinstance(rows, ast.Tuple):
        return
    for row in rows.elts:
        if not isinstance(row, ast.Tuple) or not isinstance(row.elts[0], ast.Name):
            continue
        plugin = row.elts[0].id.removesuffix("HighEntropyString").lower()
        try:
            non_secret, secret = evaluate(row.elts[1], env), evaluate(row.elts[2], env)
        except Unsupported:
            continue
        family = f"high-entropy-{plugin}"
        add(f'"{secret}"', True, secret, family)
        add(f'"{non_secret}"', False, None, family)


def detect_secrets_samples(repo: Path) -> list[PublicSample]:
    out = []
    for path in list_files(repo, TESTS_DIR):
        if path.endswith("_test.py") and not path.endswith("base_test.py"):
            out.extend(file_samples(path, read_text(repo, path)))
    return out
