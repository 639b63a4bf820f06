"""Reading config files into a validated `Config`, or a `ConfigError` that says what and where.

YAML is read at the node level (ruamel's composer) rather than through a constructor, so every key and
value keeps its file:line:col, duplicates and alias bombs are caught before they become Python objects,
and nothing in a file can make the loader fail with anything other than a `ConfigError`.
"""

from __future__ import annotations

import functools
import os
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import PydanticJsonSchemaWarning
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from reconciler.spec.base import ExclusiveKeys
from reconciler.spec.errors import (
    ConfigError,
    LocatedProblem,
    Position,
    ProblemReport,
    SchemaIndex,
    dotted,
    translate,
)
from reconciler.spec.merge import Merger, Node, from_plain, merge_under
from reconciler.spec.refs import AzureKeyVault, KeyVaultResolver, UnresolvedReference, resolve
from reconciler.spec.secrets import Secret

if TYPE_CHECKING:
    from reconciler.spec.config import Config

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Found = tuple[tuple[str | int, ...], str]
"""A problem a check found: the path of the key to change and what is wrong."""

CONFIG_SUFFIXES = (".yaml", ".yml", ".yaml.j2", ".yml.j2")
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

_MERGE_TAG = "tag:yaml.org,2002:merge"
INTERNAL_ERROR = "cannot be validated: internal error"


class _Abort(Exception):
    """A file cannot be read further; the problem is already recorded."""


def load_config(
    paths: Sequence[Path],
    *,
    env: Mapping[str, str] | None = None,
    keyvault: KeyVaultResolver | None = None,
) -> Config:
    """The config declared by `paths` (files or directories, merged in order)."""
    from reconciler.spec import cluster, pool
    from reconciler.spec.checks import check_unvalidated, cross_check
    from reconciler.spec.config import Config
    from reconciler.spec.dask_config import cluster_defaults

    return load_model(
        paths,
        Config,
        env=env,
        keyvault=keyvault,
        cluster_defaults=cluster_defaults,
        exclusive_keys={"pools": pool.EXCLUSIVE_KEYS, "clusters": cluster.EXCLUSIVE_KEYS},
        cross_check=lambda config: [(p.path, p.message) for p in cross_check(config)],
        check_unvalidated=lambda data: [(p.path, p.message) for p in check_unvalidated(data)],
    )


def load_model(
    paths: Sequence[Path],
    model: type[M],
    *,
    env: Mapping[str, str] | None = None,
    keyvault: KeyVaultResolver | None = None,
    cluster_defaults: Callable[[Mapping[str, str] | None], Mapping[str, Any]] | None = None,
    exclusive_keys: Mapping[str, ExclusiveKeys] | None = None,
    cross_check: Callable[[M], Iterable[Found]] | None = None,
    check_unvalidated: Callable[[Any], Iterable[Found]] | None = None,
) -> M:
    """`load_config` for any model with the same top-level layout; tests use small stand-ins.

    `exclusive_keys` says, per section (`pools`, `clusters`), which alternatives an entry does not
    inherit once it sets another one. `cross_check` runs on the validated model; when the model
    rejects the data, `check_unvalidated` runs on the data instead, so one run reports both kinds.
    """
    env = dict(os.environ) if env is None else env
    resolver: KeyVaultResolver = keyvault if keyvault is not None else AzureKeyVault()
    problems: list[LocatedProblem] = []
    sources = _sources(paths, problems)
    merger = Merger(problems)
    unresolved: list[tuple[Node, str]] = []
    root: Node | None = None
    for display, path in sources:
        tree = _read(display, path, env, resolver, problems, unresolved)
        if tree is not None:
            root = tree if root is None else merger.merge(root, tree)
    if problems or root is None:
        raise ConfigError(problems)
    root = _with_defaults(root, env, cluster_defaults, exclusive_keys or {}, problems)
    schema = _schema_index(model)
    report = ProblemReport(root)
    for node, message in unresolved:
        report.add(node, node.path, message)
        report.silence(node)
    _check_keyvault_fields(root, schema, report)
    data = root.plain()
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        translate(exc, schema, report)
        if check_unvalidated is not None:
            _report_check(report, check_unvalidated, data)
        raise ConfigError([*problems, *report.problems()]) from None
    except Exception as exc:
        # A model that crashes instead of rejecting is a bug, but the user still gets one line.
        report.add(root, (), f"{INTERNAL_ERROR} ({type(exc).__name__})")
        raise ConfigError([*problems, *report.problems()]) from None
    if problems or not report.empty:
        raise ConfigError([*problems, *report.problems()])
    if cross_check is not None:
        _report_check(report, cross_check, config)
        if not report.empty:
            raise ConfigError(report.problems())
    return config


def _report_check(report: ProblemReport, check: Callable[[T], Iterable[Found]], value: T) -> None:
    try:
        found = list(check(value))
    except Exception as exc:
        found = [((), f"{INTERNAL_ERROR} ({type(exc).__name__})")]
    for where, message in found:
        report.at_path(tuple(where), message)


@functools.cache
def _schema_index(model: type[BaseModel]) -> SchemaIndex:
    """Built once per model: generating the JSON Schema costs more than loading a config."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
            return SchemaIndex(model.model_json_schema())
    except Exception:
        return SchemaIndex({})


def _sources(paths: Sequence[Path], problems: list[LocatedProblem]) -> list[tuple[str, Path]]:
    """The files to read, in merge order; directories give their config files in sorted order."""
    found: list[tuple[str, Path]] = []
    if not paths:
        problems.append(LocatedProblem.at(Position("(no paths)", 1, 1), "", "no config file given"))
    for path in paths:
        where = Position(str(path), 1, 1)
        try:
            if path.is_dir():
                names = sorted(
                    child.name
                    for child in path.iterdir()
                    if child.name.endswith(CONFIG_SUFFIXES) and child.is_file()
                )
                if not names:
                    problems.append(
                        LocatedProblem.at(where, "", "no *.yaml, *.yml or *.yaml.j2 files in this directory")
                    )
                found.extend((str(path / name), path / name) for name in names)
            elif path.is_file():
                found.append((str(path), path))
            else:
                problems.append(LocatedProblem.at(where, "", "no such file or directory"))
        except OSError as exc:
            problems.append(
                LocatedProblem.at(where, "", f"cannot read: {exc.strerror or type(exc).__name__}")
            )
    return found


def _read(
    display: str,
    path: Path,
    env: Mapping[str, str],
    keyvault: KeyVaultResolver,
    problems: list[LocatedProblem],
    unresolved: list[tuple[Node, str]],
) -> Node | None:
    """One file as a tree with its references resolved, or None after recording why not.

    A reference that cannot be resolved does not stop the load: it goes to `unresolved`, so the
    same run still reports what else is wrong.
    """
    first = Position(display, 1, 1)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        problems.append(LocatedProblem.at(first, "", f"cannot read: {exc.strerror or type(exc).__name__}"))
        return None
    if len(data) > MAX_FILE_BYTES:
        problems.append(LocatedProblem.at(first, "", f"larger than {MAX_FILE_BYTES // 1024 // 1024} MiB"))
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.append(LocatedProblem.at(Position(display, line, col), "", "not UTF-8 text"))
        return None
    line_map: list[int] | None = None
    if display.endswith((".j2",)):
        try:
            text, line_map = _render(text, path.parent, env)
        except _TemplateProblem as exc:
            problems.append(LocatedProblem.at(Position(display, exc.line, 1), "", exc.message))
            return None
    builder = _Builder(display, line_map, problems)
    try:
        tree = builder.document(text)
    except _Abort:
        return None
    _resolve_references(tree, path.parent, env, keyvault, unresolved)
    return tree


class _TemplateProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _render(source: str, directory: Path, env: Mapping[str, str]) -> tuple[str, list[int]]:
    """The rendered text and, for each rendered line, the template line it came from.

    Jinja's own debug map (generated code line -> template line) tells where each output chunk was
    produced; literal text is then followed line by line, so an error in a loop body or after an
    `{% endfor %}` still points at the line the user can edit.
    """
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    environment = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # the output is YAML, not HTML
    )
    try:
        template = environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise _TemplateProblem(exc.lineno or 1, f"template: {exc.message}") from None
    lines = source.split("\n")
    starts = [0]
    for text in lines[:-1]:
        starts.append(starts[-1] + len(text) + 1)
    chunks: list[str] = []
    line_map = [1]
    generator: Any = template.root_render_func(template.new_context({"env": dict(env)}))
    try:
        for chunk in generator:
            chunks.append(chunk)
            frame = generator.gi_frame
            line = int(template.get_corresponding_lineno(frame.f_lineno)) if frame is not None else 1
            origin = starts[min(max(line, 1), len(starts)) - 1]
            literal_at = source.find(chunk, origin) if "\n" in chunk else -1
            if literal_at >= 0 and source.count("\n", origin, literal_at) > 8:
                literal_at = -1
            first = source.count("\n", 0, literal_at) + 1 if literal_at >= 0 else line
            for k in range(chunk.count("\n")):
                line_map.append(first + k + 1 if literal_at >= 0 else line)
    except jinja2.TemplateError as exc:
        raise _TemplateProblem(
            _template_line(template, exc), f"template: {exc.message or type(exc).__name__}"
        ) from None
    except Exception as exc:
        raise _TemplateProblem(_template_line(template, exc), f"template: {type(exc).__name__}") from None
    return "".join(chunks), line_map


def _template_line(template: Any, exc: BaseException) -> int:
    line = 1
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == template.filename:
            line = template.get_corresponding_lineno(lineno)
    return int(line)


class _Builder:
    """Turns composed YAML nodes into `Node` trees, with a budget against alias bombs and deep nests."""

    def __init__(self, display: str, line_map: list[int] | None, problems: list[LocatedProblem]) -> None:
        self.display = display
        self.line_map = line_map
        self.problems = problems
        self.budget = MAX_NODES

    def position(self, mark: Any) -> Position:
        line = int(getattr(mark, "line", 0))
        col = int(getattr(mark, "column", 0))
        if self.line_map is not None:
            line = self.line_map[line] - 1 if 0 <= line < len(self.line_map) else line
        return Position(self.display, line + 1, col + 1)

    def fail(self, mark: Any, message: str) -> _Abort:
        self.problems.append(LocatedProblem.at(self.position(mark), "", message))
        return _Abort()

    def document(self, text: str) -> Node:
        too_deep = _deep_flow_at(text, MAX_DEPTH)
        if too_deep is not None:
            raise self.fail(_offset_mark(text, too_deep), f"nested deeper than {MAX_DEPTH} levels")
        yaml = YAML(typ="rt", pure=True)
        try:
            documents = list(yaml.compose_all(text))
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = " ".join(p for p in (exc.problem, exc.context and f"({exc.context})") if p)
            raise self.fail(mark, f"YAML syntax: {message or 'invalid'}") from None
        except ReaderError as exc:
            raise self.fail(_offset_mark(text, exc.position), f"YAML syntax: {exc.reason}") from None
        except YAMLError as exc:
            raise self.fail(None, f"YAML syntax: {type(exc).__name__}") from None
        except RecursionError:
            raise self.fail(None, "nested too deeply") from None
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            raise self.fail(None, f"YAML cannot be read ({type(exc).__name__})") from None
        documents = [d for d in documents if d is not None]
        if len(documents) > 1:
            raise self.fail(documents[1].start_mark, "a config file holds one YAML document, not several")
        top = documents[0] if documents else None
        if top is None or (isinstance(top, ScalarNode) and str(top.tag).endswith(":null")):
            # An empty file (or one of comments only) adds nothing, like an empty mapping.
            return Node({}, Position(self.display, 1, 1), ())
        if not isinstance(top, MappingNode):
            raise self.fail(top.start_mark, "the top level must be a mapping (key: value)")
        return self.build(top, (), None, 0)

    def build(self, node: Any, path: tuple[str | int, ...], key_pos: Position | None, depth: int) -> Node:
        self.budget -= 1
        if self.budget < 0:
            raise self.fail(node.start_mark, f"more than {MAX_NODES} values (too many alias expansions?)")
        if depth > MAX_DEPTH:
            raise self.fail(node.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        pos = self.position(node.start_mark)
        if isinstance(node, MappingNode):
            return Node(self.mapping(node, path, depth), pos, path, key_pos)
        if isinstance(node, SequenceNode):
            items = [self.build(item, (*path, i), None, depth + 1) for i, item in enumerate(node.value)]
            return Node(items, pos, path, key_pos)
        return Node(self.scalar(node), pos, path, key_pos)

    def mapping(self, node: MappingNode, path: tuple[str | int, ...], depth: int) -> dict[str, Node]:
        items: dict[str, Node] = {}
        merges: list[Any] = []
        for key_node, value_node in node.value:
            if str(key_node.tag) == _MERGE_TAG:
                merges.append(value_node)
                continue
            key_pos = self.position(key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self.problems.append(LocatedProblem.at(key_pos, dotted(path), "a key must be a plain string"))
                continue
            key = str(key_node.value)
            if key in items:
                first = items[key].key_pos
                self.problems.append(
                    LocatedProblem.at(
                        key_pos, dotted((*path, key)), f"duplicate key '{key}' (first at {first})"
                    )
                )
                continue
            items[key] = self.build(value_node, (*path, key), key_pos, depth + 1)
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise self.fail(source.start_mark, "'<<' merges only mappings")
                for key, value in self.mapping(source, path, depth).items():
                    items.setdefault(key, value)
        return items

    def scalar(self, node: Any) -> Any:
        tag = str(node.tag)
        text = str(node.value)
        if not tag.startswith("tag:yaml.org,2002:"):
            raise self.fail(node.start_mark, f"unsupported YAML tag {tag[:40]}")
        kind = tag.removeprefix("tag:yaml.org,2002:")
        if kind not in ("str", "null", "bool", "int", "float", "timestamp"):
            raise self.fail(node.start_mark, f"unsupported YAML tag {tag[:40]}")
        if kind == "null":
            return None
        if kind == "bool":
            return text.lower() == "true"
        if kind == "int":
            return self.integer(node, text)
        if kind == "float":
            return _float(text)
        return text

    def integer(self, node: Any, text: str) -> int:
        clean = text.replace("_", "")
        sign = -1 if clean.startswith("-") else 1
        digits = clean.lstrip("+-")
        try:
            if digits[:2].lower() in ("0x", "0o", "0b"):
                return sign * int(digits, 0)
            return sign * int(digits, 10)
        except ValueError:
            raise self.fail(node.start_mark, "number is too long") from None


def _deep_flow_at(text: str, limit: int) -> int | None:
    """Offset where `[`/`{` nesting first exceeds `limit`, outside quotes and comments.

    ruamel's scanner takes quadratic time in flow nesting, so a hostile `[[[[...` is refused before
    it is parsed. Approximate (an apostrophe in plain text hides brackets up to the next quote):
    whatever slips past still meets the depth limit when the tree is built.
    """
    depth = 0
    quote = ""
    comment = False
    previous = "\n"
    for offset, char in enumerate(text):
        if comment:
            comment = char != "\n"
        elif quote:
            if char == quote and not (quote == '"' and previous == "\\"):
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and previous in " \t\n":
            comment = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return offset
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char
    return None


def _float(text: str) -> float:
    lowered = text.lower().replace("_", "")
    if lowered.lstrip("+-") == ".inf":
        return float("-inf") if lowered.startswith("-") else float("inf")
    if lowered == ".nan":
        return float("nan")
    try:
        return float(lowered)
    except ValueError:
        return float("nan")


class _Mark:
    def __init__(self, line: int, column: int) -> None:
        self.line = line
        self.column = column


def _offset_mark(text: str, offset: int) -> _Mark:
    line = text.count("\n", 0, offset)
    return _Mark(line, offset - (text.rfind("\n", 0, offset) + 1))


def _resolve_references(
    tree: Node,
    base_dir: Path,
    env: Mapping[str, str],
    keyvault: KeyVaultResolver,
    unresolved: list[tuple[Node, str]],
) -> None:
    for _, node in tree.walk():
        if isinstance(node.value, str):
            try:
                node.value = resolve(node.value, env=env, base_dir=base_dir, keyvault=keyvault)
            except UnresolvedReference as exc:
                unresolved.append((node, str(exc)))


def _with_defaults(
    root: Node,
    env: Mapping[str, str],
    cluster_defaults: Callable[[Mapping[str, str] | None], Mapping[str, Any]] | None,
    exclusive_keys: Mapping[str, ExclusiveKeys],
    problems: list[LocatedProblem],
) -> Node:
    """`defaults.pool` under every pool and the dask config under every cluster."""
    defaults = root.child("defaults")
    pool_defaults = defaults.child("pool") if defaults is not None else None
    pools = root.child("pools")
    if pool_defaults is not None and pool_defaults.is_mapping and pools is not None and pools.is_mapping:
        for pool_id, pool in list(pools.value.items()):
            pools.value[pool_id] = merge_under(pool_defaults, _as_mapping(pool), exclusive_keys.get("pools"))
    clusters = root.child("clusters")
    if cluster_defaults is None or clusters is None or not clusters.is_mapping or not clusters.value:
        return root
    try:
        found = dict(cluster_defaults(env))
    except Exception as exc:
        where = clusters.key_pos or clusters.pos
        problems.append(
            LocatedProblem.at(where, "clusters", f"cannot read the dask config ({type(exc).__name__})")
        )
        return root
    if not found:
        return root
    for name, cluster in list(clusters.value.items()):
        own = _as_mapping(cluster)
        where = own.key_pos or own.pos
        inherited = from_plain(found, where, own.path, note="(from dask config)")
        clusters.value[name] = merge_under(inherited, own, exclusive_keys.get("clusters"))
    return root


def _as_mapping(node: Node) -> Node:
    """A `p1:` with nothing under it is a pool made of defaults only."""
    if node.value is None:
        return Node({}, node.pos, node.path, node.key_pos, node.note)
    return node


def _check_keyvault_fields(root: Node, schema: SchemaIndex, report: ProblemReport) -> None:
    """Lazy secrets go only where a model expects a `Secret`; elsewhere nothing would ever reveal them.

    `defaults.pool` is skipped: its values are checked where they land, in each pool.
    """
    for path, node in root.walk():
        if path[:2] == ("defaults", "pool"):
            continue
        if isinstance(node.value, Secret) and schema.known(path) and not schema.is_secret(path):
            report.add(
                node,
                path,
                "a ${keyvault:...} reference is only allowed in secret fields (passwords, keys)",
            )
            report.silence(node)
