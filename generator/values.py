"""Schema-driven value generators: one closure per field, compiled once, called per record.

Honours the `arg.properties` annotations of Confluent's kafka-connect-datagen / avro-random-generator
(options, range {min,max}, iteration {start,step,restart}, regex, length {min,max} or n, keys for
maps) and our own `"faker": "<provider>"` field attribute. Faker is slow (~30 us/value), so each
provider fills a pool once and records draw from the pool.
"""

from __future__ import annotations

import random
import re
import string
from typing import Callable

from churnstream import UserError

try:  # Python 3.11+ keeps the regex parser here
    import re._parser as sre_parse
    import re._constants as sre_c
except ImportError:  # pragma: no cover
    import sre_constants as sre_c
    import sre_parse

from generator.schema import annotations, field_annotations

Gen = Callable[[], object]

INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1
LONG_MIN, LONG_MAX = -(2 ** 63), 2 ** 63 - 1
KNOWN_PROPS = {"options", "range", "iteration", "regex", "length", "keys"}


class Pools:
    """Faker value pools, built on first use with a seeded Faker so they are reproducible."""

    def __init__(self, seed: int, size: int = 1000, locale: str = "en_US"):
        self.seed, self.size, self.locale = seed, size, locale
        self._fake = None
        self._pools: dict[str, list] = {}

    @property
    def fake(self):
        if self._fake is None:
            from faker import Faker

            self._fake = Faker(self.locale)
        return self._fake

    def pool(self, provider, where: str) -> list:
        if isinstance(provider, dict):
            name, kwargs = provider.get("provider"), provider.get("args") or {}
        else:
            name, kwargs = provider, {}
        if not isinstance(name, str) or not name:
            raise UserError(f"{where}: 'faker' must name a Faker provider, e.g. \"faker\": \"first_name\".")
        key = f"{name}:{sorted(kwargs.items())}"
        if key not in self._pools:
            method = getattr(self.fake, name, None) if not name.startswith("_") else None
            if not callable(method):
                raise UserError(f"{where}: Faker has no provider '{name}'; use a Faker method name such as "
                                "'first_name', 'email' or 'ipv4_public'.")
            # Seed per provider so adding a faker field elsewhere does not change this pool.
            self.fake.seed_instance(f"{self.seed}:{name}")
            try:
                self._pools[key] = [method(**kwargs) for _ in range(self.size)]
            except TypeError as e:
                raise UserError(f"{where}: Faker provider '{name}' rejected its args: {e}.") from None
        return self._pools[key]


class Context:
    """What generators share: the RNG, the Faker pools, the clock and named Avro types."""

    def __init__(self, rng: random.Random, pools: Pools, now_ms: Callable[[], int], where: str):
        self.rng, self.pools, self.now_ms, self.where = rng, pools, now_ms, where
        self.named: dict[str, dict] = {}


def compile_record(record_schema: dict, ctx: Context) -> Callable[[], dict]:
    """A function returning one random record dict (fields in schema order)."""
    _register_named(record_schema, ctx, record_schema.get("namespace"))
    gens = [(f["name"], compile_field(f, ctx)) for f in record_schema.get("fields", [])]

    def make() -> dict:
        return {name: g() for name, g in gens}
    return make


def compile_field(fld: dict, ctx: Context) -> Gen:
    where = f"{ctx.where}: field '{fld.get('name')}'"
    props = field_annotations(fld)
    return compile_type(fld["type"], props, ctx, where, faker=fld.get("faker"))


def _register_named(node, ctx: Context, ns):
    if isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed", "error") and "name" in node:
            name = node["name"]
            ns = node.get("namespace", ns)
            ctx.named[name] = node
            if ns and "." not in name:
                ctx.named[f"{ns}.{name}"] = node
        for f in node.get("fields", []) or []:
            _register_named(f.get("type"), ctx, ns)
        for k in ("items", "values"):
            if k in node:
                _register_named(node[k], ctx, ns)
    elif isinstance(node, list):
        for n in node:
            _register_named(n, ctx, ns)


def compile_type(node, props: dict, ctx: Context, where: str, faker=None) -> Gen:
    rng = ctx.rng
    unknown = set(props) - KNOWN_PROPS
    if unknown:
        raise UserError(f"{where}: unsupported arg.properties {', '.join(sorted(unknown))} "
                        f"(supported: {', '.join(sorted(KNOWN_PROPS))}).")
    if isinstance(node, list):
        return _union(node, props, ctx, where, faker)
    if isinstance(node, str) and node in ctx.named:
        node = ctx.named[node]
    t = node if isinstance(node, str) else node.get("type")
    if isinstance(t, (dict, list)):        # {"type": {"type": "int"}} nesting
        return compile_type(t, props, ctx, where, faker)
    logical = node.get("logicalType") if isinstance(node, dict) else None

    if "options" in props:
        opts = props["options"]
        if not isinstance(opts, list) or not opts:
            raise UserError(f"{where}: 'options' must be a non-empty JSON array (file-based options are not supported).")
        choice = rng.choice
        return lambda: choice(opts)
    if "iteration" in props:
        return _iteration(props["iteration"], t, where)
    if faker is not None and t in ("string", "int", "long", "double", "float", "boolean"):
        pool = ctx.pools.pool(faker, where)
        choice = rng.choice
        return lambda: choice(pool)

    if t == "null":
        return lambda: None
    if t == "boolean":
        return lambda: rng.random() < 0.5
    if t in ("int", "long"):
        if logical in ("timestamp-millis", "local-timestamp-millis") and "range" not in props:
            return ctx.now_ms
        if logical in ("timestamp-micros", "local-timestamp-micros") and "range" not in props:
            return lambda: ctx.now_ms() * 1000
        if logical == "date" and "range" not in props:
            return lambda: ctx.now_ms() // 86_400_000
        if logical == "time-millis" and "range" not in props:
            return lambda: ctx.now_ms() % 86_400_000
        lo_d, hi_d = (INT_MIN, INT_MAX) if t == "int" else (LONG_MIN, LONG_MAX)
        lo, hi = _range(props, where, lo_d, hi_d + 1)
        if hi <= lo:
            raise UserError(f"{where}: range min {lo} must be below max {hi}.")
        lo, hi = int(lo), int(hi)
        return lambda: rng.randrange(lo, hi)            # max exclusive, as in datagen
    if t in ("float", "double"):
        lo, hi = _range(props, where, 0.0, 1.0)
        if hi < lo:
            raise UserError(f"{where}: range min {lo} must not exceed max {hi}.")
        uniform = rng.uniform
        return lambda: uniform(lo, hi)
    if t == "string":
        if logical == "uuid":
            return lambda: _uuid(rng)
        if "regex" in props:
            return regex_generator(props["regex"], rng, where)
        lo, hi = _length(props, where, 8, 16)
        letters = string.ascii_letters
        return lambda: "".join(rng.choices(letters, k=rng.randint(lo, hi)))
    if t == "bytes":
        lo, hi = _length(props, where, 4, 16)
        return lambda: rng.randbytes(rng.randint(lo, hi))
    if t == "fixed":
        size = int(node["size"])
        return lambda: rng.randbytes(size)
    if t == "enum":
        symbols = node["symbols"]
        choice = rng.choice
        return lambda: choice(symbols)
    if t == "array":
        lo, hi = _length(props, where, 0, 5)
        item = compile_type(node["items"], annotations(node["items"]), ctx, where + " items")
        return lambda: [item() for _ in range(rng.randint(lo, hi))]
    if t == "map":
        lo, hi = _length(props, where, 0, 5)
        key_props = props.get("keys") or {}
        if not isinstance(key_props, dict):
            raise UserError(f"{where}: 'keys' must be a JSON object of arg.properties for the map keys.")
        key = compile_type("string", key_props, ctx, where + " keys")
        val = compile_type(node["values"], annotations(node["values"]), ctx, where + " values")
        return lambda: {key(): val() for _ in range(rng.randint(lo, hi))}
    if t in ("record", "error"):
        return compile_record(node, _child_context(ctx, where))
    raise UserError(f"{where}: cannot generate values of Avro type {t!r}.")


def _child_context(ctx: Context, where: str) -> Context:
    child = Context(ctx.rng, ctx.pools, ctx.now_ms, where)
    child.named = ctx.named
    return child


def _union(branches: list, props: dict, ctx: Context, where: str, faker) -> Gen:
    if "options" in props:   # options on a union field pick among literal values, null included
        return compile_type("null", props, ctx, where)
    gens = [compile_type(b, {**annotations(b), **props} if b != "null" else {}, ctx, where,
                         faker if b != "null" else None) for b in branches]
    choice = ctx.rng.choice
    return lambda: choice(gens)()


def _iteration(it, t, where) -> Gen:
    if not isinstance(it, dict) or "start" not in it:
        raise UserError(f"{where}: 'iteration' needs at least a start, e.g. {{\"start\": 1, \"step\": 1}}.")
    start, step, restart = it["start"], it.get("step", 1), it.get("restart")
    if t == "boolean":
        state = [bool(start)]

        def flip():
            v = state[0]
            state[0] = not v
            return v
        return flip
    if not isinstance(start, (int, float)) or not isinstance(step, (int, float)) or step == 0:
        raise UserError(f"{where}: 'iteration' start and step must be numbers and step must not be 0.")
    cast = int if t in ("int", "long") else float
    state = [cast(start)]

    def nxt():
        v = state[0]
        if restart is not None and ((step > 0 and v >= restart) or (step < 0 and v <= restart)):
            v = cast(start)
        state[0] = v + step
        return v
    return nxt


def _range(props, where, lo_default, hi_default):
    r = props.get("range")
    if r is None:
        return lo_default, hi_default
    if not isinstance(r, dict) or not {"min", "max"} & set(r):
        raise UserError(f"{where}: 'range' must be an object with min and/or max, e.g. {{\"min\": 0, \"max\": 10}}.")
    lo, hi = r.get("min", lo_default), r.get("max", hi_default)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
        raise UserError(f"{where}: 'range' min and max must be numbers.")
    return lo, hi


def _length(props, where, lo_default, hi_default):
    n = props.get("length")
    if n is None:
        return lo_default, hi_default
    if isinstance(n, int) and n >= 0:
        return n, n
    if isinstance(n, dict):
        lo, hi = n.get("min", 0), n.get("max", n.get("min", 0) + hi_default)
        if isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi:
            # datagen's max is exclusive; keep at least min
            return lo, max(lo, hi - 1)
    raise UserError(f"{where}: 'length' must be a non-negative integer or {{\"min\": a, \"max\": b}} with a <= b.")


def _uuid(rng: random.Random) -> str:
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


# --- regex -> random matching string ------------------------------------------------------------

_CATEGORIES = {
    sre_c.CATEGORY_DIGIT: string.digits,
    sre_c.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    sre_c.CATEGORY_SPACE: " ",
    sre_c.CATEGORY_NOT_DIGIT: string.ascii_letters,
    sre_c.CATEGORY_NOT_WORD: " -.,",
    sre_c.CATEGORY_NOT_SPACE: string.ascii_letters + string.digits,
}
_PRINTABLE = string.ascii_letters + string.digits
_UNBOUNDED_EXTRA = 5   # '*' and '+' generate at most this many repeats beyond the minimum


def regex_generator(pattern: str, rng: random.Random, where: str = "regex") -> Gen:
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as e:
        raise UserError(f"{where}: regex {pattern!r} does not compile ({e}).") from None

    def gen() -> str:
        out: list[str] = []
        _emit(parsed, rng, out, {}, where)
        return "".join(out)
    gen()  # fail at compile time on unsupported constructs, not mid-stream
    return gen


def _emit(items, rng, out, groups, where):
    for op, av in items:
        if op == sre_c.LITERAL:
            out.append(chr(av))
        elif op == sre_c.NOT_LITERAL:
            out.append(rng.choice([c for c in _PRINTABLE if ord(c) != av]))
        elif op == sre_c.ANY:
            out.append(rng.choice(_PRINTABLE))
        elif op == sre_c.IN:
            out.append(_pick_in(av, rng))
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            hi = lo + _UNBOUNDED_EXTRA if hi == sre_c.MAXREPEAT else hi
            for _ in range(rng.randint(lo, hi)):
                _emit(sub, rng, out, groups, where)
        elif op == sre_c.SUBPATTERN:
            gid, sub = av[0], av[-1]
            start = len(out)
            _emit(sub, rng, out, groups, where)
            if gid is not None:
                groups[gid] = "".join(out[start:])
        elif op == sre_c.BRANCH:
            _emit(rng.choice(av[1]), rng, out, groups, where)
        elif op == sre_c.GROUPREF:
            out.append(groups.get(av, ""))
        elif op == sre_c.AT:
            continue  # anchors generate nothing
        elif op == sre_c.CATEGORY:
            out.append(rng.choice(_CATEGORIES.get(av, _PRINTABLE)))
        else:
            raise UserError(f"{where}: regex construct {op} is not supported for generation.")


def _pick_in(items, rng) -> str:
    chars: list[str] = []
    negate = False
    for op, av in items:
        if op == sre_c.NEGATE:
            negate = True
        elif op == sre_c.LITERAL:
            chars.append(chr(av))
        elif op == sre_c.RANGE:
            chars.extend(chr(c) for c in range(av[0], av[1] + 1))
        elif op == sre_c.CATEGORY:
            chars.extend(_CATEGORIES.get(av, _PRINTABLE))
    if negate:
        excluded = set(chars)
        chars = [c for c in _PRINTABLE if c not in excluded]
    return rng.choice(chars)
