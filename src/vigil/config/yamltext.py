"""YAML text to plain data, with the line of every key and list item, refusing duplicate keys.

PyYAML's safe loader is used in two steps: compose the node tree, walk it to record lines (the
side table keyed by location) and find duplicate keys (which PyYAML would silently resolve to
the last one), then construct plain Python data from the same nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vigil.config.errors import ConfigError, ConfigIssue
from vigil.config.locations import Location, format_location

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Parsed YAML: `data` as PyYAML's safe loader builds it, `lines` keyed by location."""

    data: object
    lines: dict[Location, int] = field(default_factory=dict)


def parse_yaml(text: str, *, source_name: str) -> YamlDocument:
    """Parse one YAML document; raise ``ConfigError`` on syntax errors and duplicate keys.

    An empty document gives ``data=None``.
    """
    try:
        return _parse(text, source_name)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_issue(exc, source_name)]) from None
    except yaml.reader.ReaderError as exc:  # a control character; raised before any parsing
        line = text.count("\n", 0, exc.position) + 1
        message = f"invalid YAML: character #x{exc.character:04x} is not allowed"
        raise ConfigError([ConfigIssue("", message, line, source_name)]) from None
    except yaml.YAMLError:
        raise ConfigError([ConfigIssue("", "invalid YAML", None, source_name)]) from None


def _parse(text: str, source_name: str) -> YamlDocument:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(data=None)
        walker = _NodeWalker(source_name)
        walker.walk(node, ())
        if walker.duplicates:
            raise ConfigError(walker.duplicates.values())
        return YamlDocument(data=loader.construct_document(node), lines=walker.lines)
    finally:
        loader.dispose()


def _syntax_issue(exc: yaml.MarkedYAMLError, source_name: str) -> ConfigIssue:
    # Built from context and problem only, in PyYAML's order ("while scanning ..., found ..."):
    # str(exc) quotes the offending source line, which may hold a password.
    problem_line = exc.problem_mark.line + 1 if exc.problem_mark else None
    parts = []
    if exc.context:
        context_line = exc.context_mark.line + 1 if exc.context_mark else None
        same_line = context_line is None or context_line == problem_line
        parts.append(exc.context if same_line else f"{exc.context} on line {context_line}")
    parts.append(exc.problem or "syntax error")
    return ConfigIssue("", "invalid YAML: " + ", ".join(parts), problem_line, source_name)


class _NodeWalker:
    """Records the line of every key and item, and every duplicate key, by location."""

    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.lines: dict[Location, int] = {}
        # Keyed by the duplicate's position: a mapping reached through several aliases or
        # merges is walked more than once but reported once.
        self.duplicates: dict[tuple[int, int], ConfigIssue] = {}
        self._active: set[int] = set()

    def walk(self, node: Node, location: Location) -> None:
        if id(node) in self._active:  # a recursive alias; pydantic rejects the data later
            return
        self._active.add(id(node))
        if not location:
            self.lines[location] = node.start_mark.line + 1
        if isinstance(node, MappingNode):
            self._walk_mapping(node, location)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[(*location, index)] = item.start_mark.line + 1
                self.walk(item, (*location, index))
        self._active.discard(id(node))

    def _walk_mapping(self, node: MappingNode, location: Location) -> None:
        # Merged keys (<<: *defaults) first, so keys written in this mapping win, as in YAML.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in merged:
                    if isinstance(source, MappingNode):
                        self._walk_mapping(source, location)
        first_lines: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue
            line = key_node.start_mark.line + 1
            key_location = (*location, key_node.value)
            identity = (key_node.tag, key_node.value)
            if identity in first_lines:
                mark = key_node.start_mark
                self.duplicates[(mark.line, mark.column)] = ConfigIssue(
                    format_location(key_location),
                    f"duplicate key '{key_node.value}' (first on line {first_lines[identity]}); "
                    "each key may appear once in a mapping",
                    line,
                    self.source_name,
                )
                continue
            first_lines[identity] = line
            self.lines[key_location] = line
            self.walk(value_node, key_location)
