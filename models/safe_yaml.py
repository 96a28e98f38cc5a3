"""Plain data from YAML (or JSON) text that nobody trusts: hardened, limited, and located.

Country files, presets and request files are read the same way: no dates or yes/no booleans
guessed from plain text (`NO` is Norway, `2026-08-03` stays text for the validators), no
anchors or aliases (no alias bombs), no tags, duplicate keys refused, and limits on size, depth
and node count. JSON is read by the same loader (JSON is YAML 1.2), so a JSON file gets the
same limits and the same located messages. The position of every key is kept, so a validator
can point each problem at its line.

Text is scanned and parsed by libyaml where PyYAML was built with it (ten times faster), and
composed into nodes in Python either way, so the limits hold on both paths. A text with any
problem is read again by the pure-Python parser, so every message and position is PyYAML's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from models.errors import ConfigProblem

MAX_BYTES = 512 * 1024
MAX_DEPTH = 24
MAX_NODES = 50_000

Path_ = tuple[str | int, ...]


# -- reading YAML --------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        self.mark = mark
        self.message = message


class _Hardening:
    """Anchors, aliases and oversized or overdeep documents refused while composing nodes."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Refused(
                event.start_mark,
                "YAML anchors and aliases (&name, *name) are not allowed here: "
                "write the values out",
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(event.start_mark, f"more than {MAX_NODES} YAML nodes: file refused")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels: file refused")
        try:
            node: yaml.Node | None = super().compose_node(parent, index)  # type: ignore[misc]
            return node
        finally:
            self._depth -= 1


class _HardenedLoader(_Hardening, yaml.SafeLoader):
    """SafeLoader without implicit dates, with YAML 1.2 booleans, and without anchors."""


_DROPPED_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool"}
_HardenedLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_HardenedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

LOADERS: dict[str, Any] = {"python": _HardenedLoader}
"""The loaders a text can be read with, fastest last: "python", and "libyaml" where present."""

if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _HardenedCLoader(_Hardening, Composer, CParser, SafeConstructor, Resolver):
        """libyaml's scanner and parser under the Python composer, constructor and resolver
        of `_HardenedLoader`: the same nodes, limits and scalars."""

        yaml_implicit_resolvers = _HardenedLoader.yaml_implicit_resolvers

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    LOADERS["libyaml"] = _HardenedCLoader

# Texts libyaml and the pure-Python parser may read differently take the Python path: characters
# PyYAML's reader refuses, tabs, byte-order marks, `?`, and a block scalar's header followed by
# `#` (libyaml accepts some uses of each that PyYAML refuses or reads otherwise).
_PYTHON_ONLY = re.compile(
    "[^\x0a\x0d\x20-\x3e\x40-\x7e\x85\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
    "|[|>][-+0-9]*#"
)


@dataclass
class YamlDocument:
    """Plain data read from a file, with the (line, column) of every key and list item."""

    file: str
    text: str
    data: Any
    positions: dict[Path_, tuple[int, int]]
    problems: list[ConfigProblem] = field(default_factory=list)

    def at(self, path: Path_) -> tuple[int, int]:
        """The position of `path`, or of its nearest ancestor that exists in the file."""
        for cut in range(len(path), -1, -1):
            pos = self.positions.get(path[:cut])
            if pos is not None:
                return pos
        return (1, 1)

    def problem(self, path: Path_, message: str) -> ConfigProblem:
        line, column = self.at(path)
        return ConfigProblem(self.file, line, column, format_path(path), message)


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_yaml(
    path: Path, *, display: str | None = None, max_bytes: int = MAX_BYTES
) -> YamlDocument:
    """Read `path` with the hardened loader; problems are collected, never raised."""
    name = display or str(path)
    size = path.stat().st_size
    if size > max_bytes:
        return _refused(name, f"file is {size} bytes, over the {max_bytes}-byte limit: refused")
    return yaml_from_bytes(path.read_bytes(), file=name, max_bytes=max_bytes)


def yaml_from_bytes(raw: bytes, *, file: str, max_bytes: int = MAX_BYTES) -> YamlDocument:
    """`read_yaml` on bytes already read (the loader hashes them before parsing)."""
    if len(raw) > max_bytes:
        return _refused(file, f"file is {len(raw)} bytes, over the {max_bytes}-byte limit: refused")
    if b"\x00" in raw:
        offset = raw.index(b"\x00")
        return _refused(file, f"binary data (NUL byte at offset {offset}): not a YAML text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _refused(file, f"not UTF-8 text (bad byte at offset {exc.start}): save as UTF-8")
    return parse_yaml(text, file=file)


def _refused(name: str, message: str) -> YamlDocument:
    doc = YamlDocument(name, "", None, {})
    doc.problems.append(ConfigProblem(name, 1, 1, "", message))
    return doc


def parse_yaml(text: str, *, file: str, loader: str | None = None) -> YamlDocument:
    """Plain data from `text`, with every key's position and every problem located.

    `loader` names one of LOADERS (the tests read each text with both); by default libyaml
    where present, and PyYAML's pure-Python parser for a text with problems.
    """
    if loader is None:
        if "libyaml" in LOADERS and not _PYTHON_ONLY.search(text):
            doc = _parse_with(LOADERS["libyaml"], text, file=file)
            if not doc.problems:
                return doc
        loader = "python"
    return _parse_with(LOADERS[loader], text, file=file)


def _parse_with(cls: Any, text: str, *, file: str) -> YamlDocument:
    doc = YamlDocument(file, text, None, {})
    loader = None
    try:
        # PyYAML's reader checks the characters as it is made: inside the `try`, so that a
        # control character is a problem reported, not a traceback.
        loader = cls(text)
        node = loader.get_single_node()
    except _Refused as exc:
        line, col = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (1, 1)
        doc.problems.append(ConfigProblem(file, line, col, "", exc.message))
        return doc
    except yaml.reader.ReaderError as exc:
        at = exc.position
        line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        problem = f"YAML syntax: unacceptable character #x{exc.character:04x}: {exc.reason}"
        doc.problems.append(ConfigProblem(file, line, col, "", problem))
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        doc.problems.append(ConfigProblem(file, line, col, "", f"YAML syntax: {exc.problem}"))
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(ConfigProblem(file, 1, 1, "", f"YAML syntax: {exc}"))
        return doc
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        doc.problems.append(ConfigProblem(file, 1, 1, "", "the file is empty"))
        return doc
    doc.data = _to_data(node, (), doc, loader)
    return doc


_PLAIN_TAGS: dict[type[yaml.Node], str] = {
    yaml.MappingNode: "tag:yaml.org,2002:map",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
}


def _to_data(node: yaml.Node, path: Path_, doc: YamlDocument, loader: Any) -> Any:
    doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if node.tag != _PLAIN_TAGS.get(type(node), node.tag):
        # Never constructed, but not silently dropped either: `!!python/object [..]` is refused.
        doc.problems.append(_unsupported_tag(node, path, doc))
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, path, doc, loader)
            if not isinstance(key, str | int | float | bool) or key is None:
                doc.problems.append(doc.problem(path, "a key must be plain text"))
                continue
            line = key_node.start_mark.line + 1
            if key in first_seen:
                doc.problems.append(
                    ConfigProblem(
                        doc.file,
                        line,
                        key_node.start_mark.column + 1,
                        format_path((*path, str(key))),
                        f"duplicate key {key!r} (first at line {first_seen[key]}): remove one",
                    )
                )
                continue
            first_seen[key] = line
            child = (*path, str(key))
            doc.positions[child] = (line, key_node.start_mark.column + 1)
            out[str(key) if not isinstance(key, str) else key] = _to_data(
                value_node, child, doc, loader
            )
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, (*path, i), doc, loader) for i, item in enumerate(node.value)]
    return _scalar(node, path, doc, loader)


def _scalar(node: yaml.Node, path: Path_, doc: YamlDocument, loader: Any) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        doc.problems.append(doc.problem(path, "a key must be plain text, not a list or mapping"))
        return None
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        doc.problems.append(_unsupported_tag(node, path, doc))
        return None
    except (ValueError, TypeError, AttributeError, IndexError, OverflowError):
        # PyYAML's own constructors fail this way on `!!int x`, `!!float x`, `!!timestamp x`.
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        kind = str(node.tag).rpartition(":")[2]
        doc.problems.append(
            ConfigProblem(
                doc.file,
                line,
                col,
                format_path(path),
                f"{node.value!r} is not a valid {kind} for tag {node.tag}: remove the tag",
            )
        )
        return None


def _unsupported_tag(node: yaml.Node, path: Path_, doc: YamlDocument) -> ConfigProblem:
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    return ConfigProblem(
        doc.file,
        line,
        col,
        format_path(path),
        f"unsupported tag {node.tag}: remove it, only plain values are read",
    )
