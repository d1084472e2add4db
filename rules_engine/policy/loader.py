"""Load: read a ruleset directory's YAML files into plain values and a SourceMap per file.

Rule files are untrusted input from many authors, so loading is defensive: size, encoding,
nesting depth, aliases, tags and duplicate keys are all checked, and every problem becomes
a LoadError at its position rather than a crash, a hang or a silently-dropped value.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rules_engine.errors import LoadError, RuleFileError, RuleFileErrors, SourcePosition
from rules_engine.policy.source import SourceMap, mark_position

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # PyYAML built without libyaml: slower, same behaviour
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 32
# Nodes the walker may visit in one file, aliases expanded (only test files allow aliases).
MAX_EXPANDED_NODES = 200_000
RULE_FILE_SUFFIXES = (".yaml", ".yml")
# Rule tests live beside the rules but are not rules.
EXCLUDED_DIRECTORIES = frozenset({"tests"})

_YAML = "tag:yaml.org,2002:"
_STANDARD_TAGS = frozenset(_YAML + name for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp"))
_CONSTRUCTOR = SafeConstructor()


@dataclass(frozen=True)
class LoadedFile:
    """One rule file: its plain-value document and where each value came from."""

    file: str  # as shown in positions: `<ruleset directory name>/<relative path>`
    document: Any  # None for an empty file
    source_map: SourceMap


@dataclass(frozen=True)
class FailedFile:
    """A rule file that failed to load, and the names it declares as far as they can be read:
    references to them from other files fail too, and `check` reports those as its follow-ons."""

    file: str
    names: frozenset[str]  # parameters, measures and rule ids
    names_known: bool  # False when the file is not even YAML: every unknown name may be its


@dataclass(frozen=True)
class LoadedRuleset:
    """The files of one ruleset that loaded, and the load errors of those that did not."""

    directory: Path
    files: tuple[LoadedFile, ...]
    version: str
    errors: tuple[RuleFileError, ...] = ()
    failed: tuple[FailedFile, ...] = ()


def rule_file_paths(directory: Path) -> list[Path]:
    """The rule files of a ruleset, sorted: *.yaml and *.yml at any depth, except under tests/."""
    found: list[Path] = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if entry.name not in EXCLUDED_DIRECTORIES:
                found.extend(rule_file_paths(entry))
        elif entry.suffix in RULE_FILE_SUFFIXES and entry.is_file():
            found.append(entry)
    return found


def ruleset_version(contents: list[tuple[str, bytes]]) -> str:
    """First 12 hex digits of a sha256 over the files' relative paths and bytes, sorted by path."""
    digest = hashlib.sha256()
    for relative, data in sorted(contents):
        # Length prefixes keep ("a", b"bc") and ("ab", b"c") apart.
        name = relative.encode()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:12]


def load_ruleset(directory: Path) -> LoadedRuleset:
    """Load every rule file of a ruleset; a file that fails is left out, its errors kept.

    Errors are returned rather than raised so that the other files can still be validated
    and every problem reported in one run.
    """
    files: list[LoadedFile] = []
    contents: list[tuple[str, bytes]] = []
    errors: list[RuleFileError] = []
    failed: list[FailedFile] = []
    for path in rule_file_paths(directory):
        relative = path.relative_to(directory).as_posix()
        shown = f"{directory.name}/{relative}"
        data = b""
        try:
            data = _read(path, shown)
            contents.append((relative, data))
            files.append(parse_rule_file(data, shown))
        except RuleFileErrors as exc:
            errors.extend(exc.errors)
            failed.append(_declared(shown, data))
        except RuleFileError as exc:
            errors.append(exc)
            failed.append(_declared(shown, data))
    return LoadedRuleset(directory, tuple(files), ruleset_version(contents), tuple(errors), tuple(failed))


def _declared(file: str, data: bytes) -> FailedFile:
    """The names a file that failed to load declares, read leniently: composed when it is YAML
    (duplicate keys and tags allowed), else scanned line by line; unknown when it is not text."""
    if not data or len(data) > MAX_FILE_BYTES:
        return FailedFile(file, frozenset(), False)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return FailedFile(file, frozenset(), False)
    try:
        _check_depth(text)
        root = yaml.compose(text, Loader=_Loader)
    except (yaml.YAMLError, RuleFileErrors):
        return FailedFile(file, _scanned_names(text), True)
    names: set[str] = set()
    if isinstance(root, MappingNode):
        for key, value in root.value:
            section = key.value if isinstance(key, ScalarNode) else None
            if section == "parameters" and isinstance(value, MappingNode):
                names.update(str(k.value) for k, _ in value.value if isinstance(k, ScalarNode))
            elif section in ("measures", "rules") and isinstance(value, SequenceNode):
                wanted = "name" if section == "measures" else "id"
                for entry in value.value:
                    if isinstance(entry, MappingNode):
                        names.update(
                            str(v.value)
                            for k, v in entry.value
                            if isinstance(k, ScalarNode) and k.value == wanted and isinstance(v, ScalarNode)
                        )
    return FailedFile(file, frozenset(names), True)


_SECTION = re.compile(r"([A-Za-z_$][\w]*)\s*:")
_PARAMETER = re.compile(r"(\s+)([a-z][a-z0-9_]*)\s*:")
_ENTRY_NAME = re.compile(r"\s*(?:-\s*)?\{?\s*(?:name|id)\s*:\s*['\"]?([\w-]+)")


def _scanned_names(text: str) -> frozenset[str]:
    """Names declared in text that is not YAML: keys one level under `parameters:`, and the
    `name:` or `id:` of entries under `measures:` and `rules:`."""
    names: set[str] = set()
    section = ""
    indent = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        top = _SECTION.match(line)
        if top is not None:
            section, indent = top.group(1), ""
            continue
        if section == "parameters":
            found = _PARAMETER.match(line)
            if found is not None and (not indent or found.group(1) == indent):
                indent = found.group(1)
                names.add(found.group(2))
        elif section in ("measures", "rules"):
            for part in line.split(","):
                entry = _ENTRY_NAME.match(part)
                if entry is not None:
                    names.add(entry.group(1))
    return frozenset(names)


def _check_depth(text: str) -> None:
    """Raise RuleFileErrors when the text is not YAML, nests too deep or holds aliases: the
    composer recurses and expands, so only documents that pass are composed."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise RuleFileErrors([])
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise RuleFileErrors([])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_rule_file(data: bytes, file: str, allow_aliases: bool = False) -> LoadedFile:
    """Parse one file's bytes; raise LoadError or RuleFileErrors at the offending node.

    Rule files never need anchors. Rule-test files may share a fixture through an anchor
    and aliases (`allow_aliases`); the walker then counts every node it expands, so an alias
    bomb or a recursive alias stops at MAX_EXPANDED_NODES with a located error.
    """
    if len(data) > MAX_FILE_BYTES:
        raise LoadError("the file is larger than 1 MiB; split it into several files", _start(file))
    text = _decode(data, file)
    source_map = SourceMap(file, text)
    _check_events(text, file, allow_aliases)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:  # already ruled out by _check_events; kept as a guard
        raise _yaml_error(exc, file, text) from None
    if root is None:
        return LoadedFile(file, None, source_map)
    walker = _Walker(source_map)
    document = walker.value(root, "", None)
    if walker.errors:
        raise RuleFileErrors(walker.errors)
    return LoadedFile(file, document, source_map)


def _read(path: Path, file: str) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise LoadError("the file is larger than 1 MiB; split it into several files", _start(file))
        with path.open("rb") as handle:
            # Read one byte past the limit: the file may have grown since stat().
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise LoadError(f"cannot read the file: {exc.strerror}", _start(file)) from None


def _decode(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")) + 1
        message = f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8"
        raise LoadError(message, SourcePosition(file, line, column)) from None


def _check_events(text: str, file: str, allow_aliases: bool = False) -> None:
    """Reject syntax errors, aliases, anchors, deep nesting and extra documents before composing.

    This runs over the event stream, which PyYAML produces iteratively, so nothing here
    recurses or expands: an alias bomb or 10,000 nested brackets stop at the first event
    that gives them away. The composer, which does recurse, only sees documents that passed.
    """
    errors: list[RuleFileError] = []
    depth = 0
    documents = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if allow_aliases:
                pass
            elif isinstance(event, yaml.AliasEvent):
                message = "aliases (*name) are not allowed in rule files"
                errors.append(LoadError(message, mark_position(file, event.start_mark)))
            elif getattr(event, "anchor", None):
                message = "anchors (&name) are not allowed in rule files; repeat the value instead"
                errors.append(LoadError(message, mark_position(file, event.start_mark)))
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    message = f"the file is nested more than {MAX_DEPTH} levels deep"
                    errors.append(LoadError(message, mark_position(file, event.start_mark)))
                    break
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    message = "a rule file holds one YAML document; remove the second '---'"
                    errors.append(LoadError(message, mark_position(file, event.start_mark)))
                    break
    except yaml.YAMLError as exc:
        errors.append(_yaml_error(exc, file, text))
    if errors:
        raise RuleFileErrors(errors)


def _yaml_error(exc: yaml.YAMLError, file: str, text: str) -> LoadError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        parts = [exc.context, exc.problem]
        message = "invalid YAML: " + ", ".join(p for p in parts if p)
        return LoadError(message, mark_position(file, mark))
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = len(before.rsplit("\n", 1)[-1]) + 1
        message = f"the file contains a character YAML does not allow (code {exc.character!r})"
        return LoadError(message, SourcePosition(file, line, column))
    return LoadError(f"invalid YAML: {exc}", _start(file))


class _Walker:
    """Turns a composed node graph into plain values, recording every node's position."""

    def __init__(self, source_map: SourceMap) -> None:
        self.source_map = source_map
        self.errors: list[RuleFileError] = []
        self._budget = MAX_EXPANDED_NODES

    def value(self, node: Node, path: str, key_node: Node | None) -> Any:
        self._budget -= 1
        if self._budget < 0 or path.count(".") + path.count("[") > MAX_DEPTH:
            if self._budget == -1 or not self.errors:
                self._error("the file expands to too many values (check its aliases)", node, path)
            self._budget = -2
            return None
        self.source_map.record(path, node.start_mark, key_node.start_mark if key_node else None)
        if node.tag not in _STANDARD_TAGS:
            self._error(f"the YAML tag {_tag_name(node.tag)} is not allowed in rule files", node, path)
            return None
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.value(item, f"{path}[{i}]", None) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        try:
            value = _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, node)
        except (ValueError, OverflowError, yaml.YAMLError):
            # A number past Python's 4,300-digit limit, or a date such as 2025-02-30.
            self._error(f"the value {node.value[:40]!r} cannot be read as {_tag_name(node.tag)}", node, path)
            return None
        if isinstance(value, str):
            self.source_map.record_scalar(path, node.start_mark, node.style, value)
        return value

    def _mapping(self, node: MappingNode, path: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, ScalarNode) and key_node.tag == _YAML + "str"):
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a list or mapping"
                message = f"the key {shown!r} must be text; put it in quotes"
                if key_node.tag == _YAML + "merge":
                    message = "merge keys (<<) are not allowed in rule files"
                self._error(message, key_node, path)
                continue
            key = key_node.value
            child = f"{path}.{key}" if path else key
            if key in first_seen:
                message = f"duplicate key {key!r}: it is already given on line {first_seen[key]}"
                self._error(message, key_node, child)
                continue
            first_seen[key] = key_node.start_mark.line + 1
            result[key] = self.value(value_node, child, key_node)
        return result

    def _error(self, message: str, node: Node, path: str) -> None:
        self.errors.append(LoadError(message, mark_position(self.source_map.file, node.start_mark, path)))


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


def _start(file: str) -> SourcePosition:
    return SourcePosition(file, 1, 1)
