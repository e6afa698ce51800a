"""Read an .avsc file once: parse it (fastavro), keep its annotations, and validate records against it.

Validation = the Avro type check (fastavro) plus the value constraints written in the schema's
`arg.properties` (range, options, length, regex) on top-level fields, so a generated record that
breaks a documented bound is caught as surely as one with a wrong type.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from fastavro import parse_schema
from fastavro.validation import ValidationError, validate

from foundation import UserError
from foundation.catalog import SCHEMA_DIR
from foundation.catalog import SOURCES as ENTITY_TOPICS

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def annotations(node) -> dict:
    """The datagen `arg.properties` of a field or type node ({} if none)."""
    if isinstance(node, dict):
        props = node.get("arg.properties")
        if props is not None and not isinstance(props, dict):
            raise UserError(f"'arg.properties' must be a JSON object, got {props!r}.")
        return props or {}
    return {}


def field_annotations(fld: dict) -> dict:
    """Field-level `arg.properties` merged over the ones on the field's type (datagen puts them on either)."""
    return {**annotations(fld.get("type")), **annotations(fld)}


def type_name(node) -> str:
    """'int', 'record', ... or a named-type reference for a type node."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "union"
    return node.get("type", "?") if isinstance(node, dict) else "?"


def nullable(node) -> bool:
    return isinstance(node, list) and "null" in node


@dataclass
class Schema:
    name: str            # logical name: file stem (customer_activity, ...)
    path: Path
    raw: dict            # the JSON as written, annotations included
    parsed: dict         # fastavro's parsed form (for encoding and type validation)
    constraints: dict = field(default_factory=dict)   # field -> checker(value) -> problem | None

    @property
    def fields(self) -> list[dict]:
        return self.raw.get("fields", [])

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.fields]

    def problems(self, record: dict) -> list[str]:
        """Why `record` does not match this schema (empty list = valid)."""

        try:
            validate(record, self.parsed, raise_errors=True, strict=True)
        except ValidationError as e:
            return [str(m) for m in e.errors]
        except Exception as e:  # noqa: BLE001 - fastavro raises plain errors for some shapes
            return [str(e)]
        out = []
        for name, check in self.constraints.items():
            problem = check(record.get(name))
            if problem:
                out.append(f"{self.name}.{name} {problem}")
        return out

    def check(self, record: dict) -> None:
        problems = self.problems(record)
        if problems:
            raise UserError(f"a generated {self.name} record does not match {self.path.name}: "
                            f"{'; '.join(problems)} (record: {record!r}).")


def _constraint(fld: dict):
    """A checker for the value bounds annotated on one field, or None."""
    props = field_annotations(fld)
    checks = []
    rng = props.get("range")
    if isinstance(rng, dict):
        lo, hi = rng.get("min"), rng.get("max")
        # Generation treats max as exclusive (datagen); validation accepts it inclusive (docs say "in [0, 1]").
        checks.append(lambda v: (f"is {v}, outside the range [{lo}, {hi}]"
                                 if isinstance(v, (int, float)) and not isinstance(v, bool)
                                 and ((lo is not None and v < lo) or (hi is not None and v > hi)) else None))
    opts = props.get("options")
    if isinstance(opts, list) and opts and not isinstance(opts[0], (dict, list)):
        allowed = set(map(_hashable, opts))
        checks.append(lambda v: None if v is None or _hashable(v) in allowed else f"is {v!r}, not one of the options")
    regex = props.get("regex")
    if isinstance(regex, str):
        # generated strings are prefix + match + suffix
        prefix, suffix = _text(props, "prefix"), _text(props, "suffix")
        pat = re.compile(re.escape(prefix) + f"(?:{regex})" + re.escape(suffix) if prefix or suffix else regex)
        checks.append(lambda v: None if not isinstance(v, str) or pat.fullmatch(v) else f"{v!r} does not match /{regex}/")
    if not checks:
        return None

    def check(v):
        if v is None and nullable(fld.get("type")):
            return None
        for c in checks:
            p = c(v)
            if p:
                return p
        return None
    return check


def _text(props: dict, key: str) -> str:
    v = props.get(key, "")
    return v if isinstance(v, str) else ""


def _hashable(v):
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v


def load_schema(path: str | Path) -> Schema:
    """Parse one .avsc file; any problem becomes one sentence naming the file."""

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"schema file {path} does not exist.") from None
    except OSError as e:
        raise UserError(f"cannot read schema file {path}: {e.strerror}.") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"schema file {path} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}).") from None
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise UserError(f"schema file {path} must define an Avro record (a JSON object with \"type\": \"record\").")
    try:
        parsed = parse_schema(raw)
    except Exception as e:  # noqa: BLE001 - fastavro uses several exception types
        raise UserError(f"schema file {path} is not a valid Avro schema: {e}.") from None
    schema = Schema(name=path.stem, path=path, raw=raw, parsed=parsed)
    for fld in raw.get("fields", []):
        check = _constraint(fld)
        if check:
            schema.constraints[fld["name"]] = check
    return schema


def load_project_schemas(schema_dir: str | Path | None = None) -> dict[str, Schema]:
    """The three entity schemas, by logical topic name."""
    d = Path(schema_dir) if schema_dir else SCHEMA_DIR
    return {name: load_schema(d / f"{name}.avsc") for name in ENTITY_TOPICS}
