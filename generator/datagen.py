"""The `arg.properties` keywords of Confluent's avro-random-generator (what kafka-connect-datagen runs).

Which keyword applies to which Avro type, and each keyword read into something a generator can use,
with the same rules and the same refusals as the Java generator (`Generator.java`):
  options      array of values, or {"file": path, "encoding": "json" | "binary"}     every type
  iteration    {"start", "restart", "step", "initial"}            boolean, int, long, float, double, string
  range        {"min", "max"}: min inclusive, max exclusive         int, long, float, double
  length       n, or {"min", "max"} (max exclusive)                 string, bytes, array, map
  regex        a pattern the string matches                         string
  prefix/suffix  text around a generated string                     string
  keys         the keywords of a map's (string) keys                map
  odds         the probability of true                              boolean
  kind         "uuid" | "email" | "name"                            string
  position     the index of the union branch to generate            union
  distribution {"<index>": probability, ...} over union branches    union

kind, position and distribution are the additions of the generator's widely used fork (the same
repository's later README); the rest is the original set. A keyword on a type it does not apply to,
or two keywords the Java generator refuses together, is an error naming them, never silently ignored.
"""

from __future__ import annotations

import json
import math
import struct
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Callable

from fastavro import schemaless_reader

from foundation import UserError

INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1
LONG_MIN, LONG_MAX = -(2 ** 63), 2 ** 63 - 1
FLOAT_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
DOUBLE_MAX = 1.7976931348623157e308

_NUMBER = {"options", "range", "iteration"}
KEYWORDS_BY_TYPE = {
    "null": {"options"},
    "boolean": {"options", "iteration", "odds"},
    "int": _NUMBER, "long": _NUMBER, "float": _NUMBER, "double": _NUMBER,
    "bytes": {"options", "length"},
    "string": {"options", "length", "regex", "prefix", "suffix", "iteration", "kind"},
    "array": {"options", "length"},
    "map": {"options", "length", "keys"},
    "enum": {"options"},
    "fixed": {"options"},
    "record": {"options"},
    "error": {"options"},
    "union": {"options", "position", "distribution"},
}
KEYWORDS = set().union(*KEYWORDS_BY_TYPE.values())
UNION_KEYWORDS = KEYWORDS_BY_TYPE["union"] - {"options"}
EXCLUSIVE = {"options": ("length", "regex", "iteration", "range"),
             "iteration": ("length", "regex", "options", "range")}
KINDS = ("uuid", "email", "name")
_INTEGRAL = {"int": (INT_MIN, INT_MAX), "long": (LONG_MIN, LONG_MAX), "string": (INT_MIN, INT_MAX)}
_DECIMAL = {"float": FLOAT_MAX, "double": DOUBLE_MAX}


def check_keywords(props: dict, t: str, where: str) -> None:
    """Refuse unknown keywords, keywords on a type they do not apply to, and exclusive pairs."""
    unknown = set(props) - KEYWORDS
    if unknown:
        raise UserError(f"{where}: unsupported arg.properties {', '.join(sorted(unknown))} "
                        f"(supported: {', '.join(sorted(KEYWORDS))}).")
    allowed = KEYWORDS_BY_TYPE.get(t, set())
    misplaced = sorted(set(props) - allowed)
    if misplaced:
        raise UserError(f"{where}: arg.properties {', '.join(misplaced)} cannot apply to {t} values "
                        f"({t} takes {', '.join(sorted(allowed)) or 'none'}).")
    for key, others in EXCLUSIVE.items():
        clash = [o for o in others if key in props and o in props]
        if clash:
            raise UserError(f"{where}: arg.properties '{key}' and '{clash[0]}' cannot be used together "
                            "(datagen refuses the pair).")


# --- options ------------------------------------------------------------------------------------

def options(spec, t: str, node, where: str, base_dir: Path | None, parsed_schema: Callable[[], dict]) -> list:
    """The literal values of an `options` keyword, converted to what the encoder takes for type `t`."""
    if isinstance(spec, list):
        if not spec:
            raise UserError(f"{where}: 'options' must not be empty.")
        return [_option_value(v, t, node, where, "utf-8") for v in spec]
    if not isinstance(spec, dict):
        raise UserError(f"{where}: 'options' must be a JSON array or {{\"file\": ..., \"encoding\": ...}}.")
    for key in ("file", "encoding"):
        if not isinstance(spec.get(key), str):
            raise UserError(f"{where}: 'options' given as an object needs a string '{key}' "
                            "(e.g. {\"file\": \"nouns.json\", \"encoding\": \"json\"}).")
    path = _options_path(spec["file"], base_dir, where)
    if spec["encoding"] == "json":
        values = _json_values(path, where)
        latin1 = "latin-1"   # Avro's JSON encoding writes bytes as one character per byte
        out = [_option_value(v, t, node, where, latin1) for v in values]
    elif spec["encoding"] == "binary":
        out = _binary_values(path, parsed_schema(), where)
    else:
        raise UserError(f"{where}: 'options' encoding must be 'json' or 'binary', not {spec['encoding']!r}.")
    if not out:
        raise UserError(f"{where}: the options file {path} holds no values.")
    return out


def _options_path(name: str, base_dir: Path | None, where: str) -> Path:
    """As datagen: relative to the working directory; failing that, next to the schema file."""
    candidates = [Path(name)] + ([base_dir / name] if base_dir is not None and not Path(name).is_absolute() else [])
    for p in candidates:
        if p.is_file():
            return p
    raise UserError(f"{where}: options file {name} does not exist.")


def _json_values(path: Path, where: str) -> list:
    """A file of JSON values one after the other (Avro's JSON encoding of a sequence of datums)."""
    text = path.read_text(encoding="utf-8")
    decoder, pos, out = json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: options file {path} is not a sequence of JSON values ({e.msg} at "
                            f"line {e.lineno}).") from None
        out.append(value)


def _binary_values(path: Path, schema: dict, where: str) -> list:
    """A file of Avro binary datums one after the other (no container header)."""

    data = path.read_bytes()
    buf, out = BytesIO(data), []
    while buf.tell() < len(data):
        try:
            out.append(schemaless_reader(buf, schema))
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file raises several error types
            raise UserError(f"{where}: options file {path} is not Avro binary of this type ({e}).") from None
    return out


def _option_value(v, t: str, node, where: str, charset: str):
    """One option as the encoder takes it; refused, as by datagen, when it is not a value of the type."""
    if t in ("bytes", "fixed") and isinstance(v, str):
        v = v.encode(charset)
    ok = {"null": v is None, "boolean": isinstance(v, bool), "string": isinstance(v, str),
          "int": _is_int(v), "long": _is_int(v), "float": _is_number(v), "double": _is_number(v),
          "bytes": isinstance(v, bytes), "array": isinstance(v, list), "map": isinstance(v, dict),
          "record": isinstance(v, dict), "error": isinstance(v, dict)}
    if t == "fixed":
        ok[t] = isinstance(v, bytes) and len(v) == int(node["size"])
    elif t == "enum":
        ok[t] = v in node["symbols"]
    if not ok.get(t, True):
        raise UserError(f"{where}: option {v!r} is not a valid {t} value.")
    return v


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# --- iteration ----------------------------------------------------------------------------------

def iteration(spec, t: str, where: str) -> Callable[[], object]:
    """Values start (or initial), start+step, ... wrapping around at restart back to start."""
    if not isinstance(spec, dict) or "start" not in spec:
        raise UserError(f"{where}: 'iteration' needs at least a start, e.g. {{\"start\": 1, \"step\": 1}}.")
    if t == "boolean":
        return _boolean_iteration(spec, where)
    integral = t in _INTEGRAL
    fields = {k: spec.get(k) for k in ("start", "restart", "step", "initial")}
    for k, v in fields.items():
        if v is not None and not (_is_int(v) if integral else _is_number(v)):
            raise UserError(f"{where}: 'iteration' {k} must be {'an integral number' if integral else 'a number'}, "
                            f"not {v!r}.")
    lo, hi = _INTEGRAL[t] if integral else (-_DECIMAL[t], _DECIMAL[t])
    start, restart, step = _iteration_bounds(fields["start"], fields["restart"], fields["step"], lo, hi, where)
    initial = fields["initial"] if fields["initial"] is not None else start
    if integral:
        return _wrapping(start, restart, step, initial, int)
    d = Decimal   # exact decimal steps, as datagen's BigDecimal: 0.1 + 0.2 is 0.3
    return _wrapping(d(repr(float(start))), d(repr(float(restart))), d(repr(float(step))),
                     d(repr(float(initial))), float)


def _iteration_bounds(start, restart, step, lo, hi, where):
    """datagen's defaults: step 1 (or -1 when restart < start); restart the type's end in the step's direction."""
    if step is not None and step == 0:
        raise UserError(f"{where}: 'iteration' step must not be 0.")
    if restart is None:
        step = 1 if step is None else step
        return start, (hi if step > 0 else lo), step
    if restart == start:
        raise UserError(f"{where}: 'iteration' start and restart must differ.")
    if step is None:
        step = 1 if restart > start else -1
    if (restart > start) != (step > 0):
        raise UserError(f"{where}: 'iteration' step must go from start towards restart "
                        f"({'positive' if restart > start else 'negative'} here).")
    return start, restart, step


def _wrapping(start, restart, step, initial, cast):
    """Offset from start modulo |restart - start|, keeping the step's sign (as datagen's iterators)."""
    span, sign = abs(restart - start), (1 if step > 0 else -1)
    state = [initial - start]

    def nxt():
        v = state[0]
        state[0] = (abs(v + step) % span) * sign
        return cast(v + start)
    return nxt


def _boolean_iteration(spec: dict, where: str):
    if not isinstance(spec["start"], bool):
        raise UserError(f"{where}: 'iteration' start must be true or false for a boolean.")
    extra = sorted(set(spec) - {"start"})
    if extra:
        raise UserError(f"{where}: 'iteration' of a boolean takes only a start, not {', '.join(extra)}.")
    state = [spec["start"]]

    def flip():
        v = state[0]
        state[0] = not v
        return v
    return flip


# --- range, length, odds, affixes, kind ------------------------------------------------------------

def number_range(props: dict, t: str, where: str, default: tuple):
    """(min, max) of a `range` keyword; a missing bound is the type's end (datagen), no range is `default`."""
    r = props.get("range")
    if r is None:
        return default
    if not isinstance(r, dict) or not {"min", "max"} & set(r):
        raise UserError(f"{where}: 'range' must be an object with min and/or max, e.g. {{\"min\": 0, \"max\": 10}}.")
    if t in _DECIMAL:
        lo, hi = r.get("min", -_DECIMAL[t]), r.get("max", _DECIMAL[t])
    else:
        lo, hi = r.get("min", default[0]), r.get("max", default[1])
    if not all(_is_number(v) for v in (lo, hi)):
        raise UserError(f"{where}: 'range' min and max must be numbers.")
    if t not in _DECIMAL and not all(float(v).is_integer() for v in (lo, hi)):
        raise UserError(f"{where}: 'range' min and max must be integral numbers for {t} values.")
    return lo, hi


def uniform(rng, lo: float, hi: float) -> Callable[[], float]:
    """Uniform in [lo, hi); a span wider than the largest double (a one-sided range) does not overflow."""
    if math.isinf(hi - lo):
        rand = rng.random

        def wide() -> float:
            r = rand()
            return lo * (1 - r) + hi * r
        return wide
    u = rng.uniform
    return lambda: u(lo, hi)


def length(props: dict, where: str, default: tuple[int, int]) -> tuple[int, int]:
    """Inclusive (min, max) of a `length` keyword (datagen's max is exclusive)."""
    n = props.get("length")
    if n is None:
        return default
    if _is_int(n) and n >= 0:
        return n, n
    if isinstance(n, dict) and {"min", "max"} & set(n):
        lo, hi = n.get("min", 0), n.get("max", n.get("min", 0) + default[1])
        if _is_int(lo) and _is_int(hi) and 0 <= lo <= hi:
            return lo, max(lo, hi - 1)
    raise UserError(f"{where}: 'length' must be a non-negative integer or {{\"min\": a, \"max\": b}} with a <= b.")


def odds(props: dict, where: str) -> float:
    p = props["odds"]
    if not _is_number(p) or not 0.0 <= p <= 1.0:
        raise UserError(f"{where}: 'odds' must be a number between 0.0 and 1.0, not {p!r}.")
    return float(p)


def affixes(props: dict, where: str) -> tuple[str, str]:
    out = []
    for key in ("prefix", "suffix"):
        v = props.get(key, "")
        if not isinstance(v, str):
            raise UserError(f"{where}: '{key}' must be a string, not {v!r}.")
        out.append(v)
    return out[0], out[1]


def kind(props: dict, where: str) -> str:
    k = props["kind"]
    if k not in KINDS:
        raise UserError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, not {k!r}.")
    return k


# --- unions -------------------------------------------------------------------------------------

def branch_weights(props: dict, n: int, where: str) -> list[float] | None:
    """Cumulative weights over the n branches from `position` or `distribution`; None = uniform."""
    if "position" in props and "distribution" in props:
        raise UserError(f"{where}: arg.properties 'position' and 'distribution' cannot be used together.")
    if "position" in props:
        i = props["position"]
        if not _is_int(i) or not 0 <= i < n:
            raise UserError(f"{where}: 'position' must be a branch index from 0 to {n - 1}, not {i!r}.")
        return [0.0] * i + [1.0] * (n - i)
    if "distribution" not in props:
        return None
    dist = props["distribution"]
    keys = {str(i) for i in range(n)}
    if not isinstance(dist, dict) or not set(dist) <= keys or not all(_is_number(p) and p >= 0 for p in dist.values()):
        raise UserError(f"{where}: 'distribution' must map branch indexes (0 to {n - 1}) to probabilities, "
                        f"e.g. {{\"0\": 0.3, \"1\": 0.7}}.")
    total = sum(dist.values())
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        raise UserError(f"{where}: the probabilities of 'distribution' must add up to 1, not {total:g}.")
    cum, acc = [], 0.0
    for i in range(n):
        acc += dist.get(str(i), 0.0)
        cum.append(acc)
    return cum


# --- logical types ------------------------------------------------------------------------------

def decimal_bytes(node: dict, rng, where: str) -> Callable[[], bytes]:
    """A random decimal of the node's precision: the two's-complement unscaled value (Avro's decimal)."""
    precision = node.get("precision")
    if not _is_int(precision) or precision < 1:
        raise UserError(f"{where}: a decimal needs a positive integer precision.")
    size = node.get("size") if node.get("type") == "fixed" else None
    top = 10 ** precision
    if size is not None:   # a fixed holds at most this many two's-complement bytes
        top = min(top, 2 ** (8 * int(size) - 1))

    def gen() -> bytes:
        v = rng.randrange(-top + 1, top)
        n = size or max(1, (v.bit_length() + 8) // 8)
        return v.to_bytes(n, "big", signed=True)
    return gen
