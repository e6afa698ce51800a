"""Schema-driven value generators: one closure per field, compiled once, called per record.

Honours every `arg.properties` keyword of Confluent's avro-random-generator, which
kafka-connect-datagen runs (read and checked in generator/datagen.py), and our own
`"faker": "<provider>"` field attribute. Faker is slow (~30 us/value), so each
provider fills a pool once and records draw from the pool.
"""

from __future__ import annotations

import bisect
import random
import re
import string
from pathlib import Path
from typing import Callable

from foundation import UserError

try:  # Python 3.11+ keeps the regex parser here
    import re._constants as sre_c
    import re._parser as sre_parse
except ImportError:  # pragma: no cover
    import sre_constants as sre_c
    import sre_parse

from fastavro import parse_schema

from generator import datagen
from generator.datagen import INT_MAX, INT_MIN, LONG_MAX, LONG_MIN
from generator.schema import annotations, field_annotations

Gen = Callable[[], object]

REGEX_TRIES = 1000         # a regex with a length keyword: draws until one has a length in range
REGEX_FREE_LENGTH = 64     # ... and a length with only a min allows this many characters more


class Pools:
    """Faker value pools, built on first use with a seeded Faker so they are reproducible."""

    def __init__(self, seed: int, size: int = 1000, locale: str = "en_US"):
        self.seed, self.size, self.locale = seed, size, locale
        self._fake = None
        self._pools: dict[str, list] = {}

    @property
    def fake(self):
        if self._fake is None:
            # Deferred: importing Faker takes ~0.9 s here, and only schemas with a "faker" field need it.
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

    def __init__(self, rng: random.Random, pools: Pools, now_ms: Callable[[], int], where: str,
                 base_dir: Path | None = None):
        self.rng, self.pools, self.now_ms, self.where = rng, pools, now_ms, where
        self.base_dir = base_dir   # where the schema file is: options files may be named relative to it
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
    if isinstance(node, list):
        return _union(node, props, ctx, where, faker)
    if isinstance(node, str) and node in ctx.named:
        node = ctx.named[node]
    t = node if isinstance(node, str) else node.get("type")
    if isinstance(t, (dict, list)):        # {"type": {"type": "int"}} nesting
        return compile_type(t, props, ctx, where, faker)
    datagen.check_keywords(props, t, where)
    rng = ctx.rng
    if "options" in props:
        opts = datagen.options(props["options"], t, node, where, ctx.base_dir, lambda: _parsed(node, ctx, where))
        choice = rng.choice
        return lambda: choice(opts)
    if "iteration" in props:
        it = datagen.iteration(props["iteration"], t, where)
        return _affixed(lambda: str(it()), props, where) if t == "string" else it
    if faker is not None and t in ("string", "int", "long", "double", "float", "boolean"):
        pool = ctx.pools.pool(faker, where)
        choice = rng.choice
        gen = lambda: choice(pool)   # noqa: E731
        return _affixed(gen, props, where) if t == "string" else gen
    make = _BY_TYPE.get(t)
    if make is None:
        raise UserError(f"{where}: cannot generate values of Avro type {t!r}.")
    return make(node, props, ctx, where)


def _logical(node) -> str | None:
    return node.get("logicalType") if isinstance(node, dict) else None


def _null(node, props, ctx, where) -> Gen:
    return lambda: None


def _boolean(node, props, ctx, where) -> Gen:
    rng = ctx.rng
    if "odds" in props:
        p = datagen.odds(props, where)
        return lambda: rng.random() < p
    return lambda: rng.random() < 0.5


_CLOCK_LOGICAL = {   # time logical types follow the stream clock unless a range is given
    "timestamp-millis": lambda now: now, "local-timestamp-millis": lambda now: now,
    "timestamp-micros": lambda now: now * 1000, "local-timestamp-micros": lambda now: now * 1000,
    "date": lambda now: now // 86_400_000,
    "time-millis": lambda now: now % 86_400_000,
    "time-micros": lambda now: now % 86_400_000 * 1000,
}


def _integer(node, props, ctx, where) -> Gen:
    t = node if isinstance(node, str) else node["type"]
    logical = _logical(node)
    if logical in _CLOCK_LOGICAL and "range" not in props:
        if logical in ("timestamp-millis", "local-timestamp-millis"):
            return ctx.now_ms
        clock, now_ms = _CLOCK_LOGICAL[logical], ctx.now_ms
        return lambda: clock(now_ms())
    lo_d, hi_d = (INT_MIN, INT_MAX) if t == "int" else (LONG_MIN, LONG_MAX)
    lo, hi = datagen.number_range(props, t, where, (lo_d, hi_d + 1))
    if hi <= lo:
        raise UserError(f"{where}: range min {lo} must be below max {hi}.")
    lo, hi = int(lo), int(hi)
    randrange = ctx.rng.randrange
    return lambda: randrange(lo, hi)            # max exclusive, as in datagen


def _floating(node, props, ctx, where) -> Gen:
    t = node if isinstance(node, str) else node["type"]
    lo, hi = datagen.number_range(props, t, where, (0.0, 1.0))
    if hi < lo:
        raise UserError(f"{where}: range min {lo} must not exceed max {hi}.")
    return datagen.uniform(ctx.rng, lo, hi)


def _string(node, props, ctx, where) -> Gen:
    rng = ctx.rng
    if _logical(node) == "uuid" or props.get("kind") == "uuid":
        gen = lambda: _uuid(rng)   # noqa: E731
    elif "kind" in props:
        pool = ctx.pools.pool({"email": "email", "name": "name"}[datagen.kind(props, where)], where)
        choice = rng.choice
        gen = lambda: choice(pool)   # noqa: E731
    elif "regex" in props:
        # with a regex, a length bounds the match (a lone min leaves room above it)
        bounds = datagen.length(props, where, (0, REGEX_FREE_LENGTH)) if "length" in props else None
        gen = regex_generator(props["regex"], rng, where, bounds)
    else:
        lo, hi = datagen.length(props, where, (8, 16))
        letters = string.ascii_letters
        gen = lambda: "".join(rng.choices(letters, k=rng.randint(lo, hi)))   # noqa: E731
    return _affixed(gen, props, where)


def _affixed(gen: Gen, props: dict, where: str) -> Gen:
    prefix, suffix = datagen.affixes(props, where)
    if not prefix and not suffix:
        return gen
    return lambda: f"{prefix}{gen()}{suffix}"


def _bytes(node, props, ctx, where) -> Gen:
    rng = ctx.rng
    if _logical(node) == "decimal":
        return datagen.decimal_bytes(node, rng, where)
    lo, hi = datagen.length(props, where, (4, 16))
    return lambda: rng.randbytes(rng.randint(lo, hi))


def _fixed(node, props, ctx, where) -> Gen:
    rng = ctx.rng
    if _logical(node) == "decimal":
        return datagen.decimal_bytes(node, rng, where)
    size = int(node["size"])
    return lambda: rng.randbytes(size)


def _enum(node, props, ctx, where) -> Gen:
    symbols = node["symbols"]
    choice = ctx.rng.choice
    return lambda: choice(symbols)


def _array(node, props, ctx, where) -> Gen:
    rng = ctx.rng
    lo, hi = datagen.length(props, where, (0, 5))
    item = compile_type(node["items"], annotations(node["items"]), ctx, where + " items")
    return lambda: [item() for _ in range(rng.randint(lo, hi))]


def _map(node, props, ctx, where) -> Gen:
    rng = ctx.rng
    lo, hi = datagen.length(props, where, (0, 5))
    key_props = props.get("keys") or {}
    if not isinstance(key_props, dict):
        raise UserError(f"{where}: 'keys' must be a JSON object of arg.properties for the map keys.")
    key = compile_type("string", key_props, ctx, where + " keys")
    val = compile_type(node["values"], annotations(node["values"]), ctx, where + " values")
    return lambda: {key(): val() for _ in range(rng.randint(lo, hi))}


def _record(node, props, ctx, where) -> Gen:
    return compile_record(node, _child_context(ctx, where))


_BY_TYPE = {"null": _null, "boolean": _boolean, "int": _integer, "long": _integer, "float": _floating,
            "double": _floating, "string": _string, "bytes": _bytes, "fixed": _fixed, "enum": _enum,
            "array": _array, "map": _map, "record": _record, "error": _record}


def _parsed(node, ctx: Context, where: str) -> dict:
    """fastavro's form of one type node (for options read from Avro binary files)."""

    try:
        return parse_schema(node, named_schemas={})
    except Exception as e:  # noqa: BLE001 - fastavro raises several error types
        raise UserError(f"{where}: cannot read binary options for this type ({e}).") from None


def _child_context(ctx: Context, where: str) -> Context:
    child = Context(ctx.rng, ctx.pools, ctx.now_ms, where, ctx.base_dir)
    child.named = ctx.named
    return child


def _union(branches: list, props: dict, ctx: Context, where: str, faker) -> Gen:
    choice = ctx.rng.choice
    if "options" in props:   # options on a union field pick among literal values, null included
        datagen.check_keywords(props, "union", where)
        opts = props["options"]
        if not isinstance(opts, list) or not opts:
            raise UserError(f"{where}: 'options' of a union field must be a non-empty JSON array of values.")
        return lambda: choice(opts)
    own = {k: v for k, v in props.items() if k in datagen.UNION_KEYWORDS}
    shared = {k: v for k, v in props.items() if k not in datagen.UNION_KEYWORDS}
    types = [_branch_type(b, ctx) for b in branches]
    datagen.check_keywords(own, "union", where)
    for k in shared:   # a field-level keyword goes to the branches it applies to; one for none is a mistake
        if not any(k in datagen.KEYWORDS_BY_TYPE.get(t, ()) for t in types if t != "null"):
            datagen.check_keywords({k: shared[k]}, next((t for t in types if t != "null"), "null"), where)
    gens = [compile_type(b, {**annotations(b), **_applicable(shared, t)} if b != "null" else {}, ctx, where,
                         faker if b != "null" else None) for b, t in zip(branches, types)]
    cum = datagen.branch_weights(own, len(branches), where)
    if cum is None:
        return lambda: choice(gens)()
    rand, last = ctx.rng.random, len(gens) - 1
    return lambda: gens[min(bisect.bisect_right(cum, rand()), last)]()


def _branch_type(b, ctx: Context) -> str:
    if isinstance(b, str):
        b = ctx.named.get(b, b)
    while isinstance(b, dict) and isinstance(b.get("type"), dict):
        b = b["type"]
    return b if isinstance(b, str) else b.get("type", "?") if isinstance(b, dict) else "union"


def _applicable(props: dict, t: str) -> dict:
    allowed = datagen.KEYWORDS_BY_TYPE.get(t, set())
    return {k: v for k, v in props.items() if k in allowed}


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


def regex_generator(pattern: str, rng: random.Random, where: str = "regex",
                    length: tuple[int, int] | None = None) -> Gen:
    """Random strings matching `pattern`; with `length` (inclusive bounds), only strings that long."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as e:
        raise UserError(f"{where}: regex {pattern!r} does not compile ({e}).") from None
    extra = _UNBOUNDED_EXTRA if length is None else max(_UNBOUNDED_EXTRA, length[1])

    def once() -> str:
        out: list[str] = []
        _emit(parsed, rng, out, {}, where, extra)
        return "".join(out)
    gen = once if length is None else _of_length(once, length, f"{where}: regex {pattern!r}")
    gen()  # fail at compile time on unsupported constructs, not mid-stream
    return gen


def _of_length(once: Gen, length: tuple[int, int], what: str) -> Gen:
    lo, hi = length

    def gen() -> str:
        for _ in range(REGEX_TRIES):
            v = once()
            if lo <= len(v) <= hi:
                return v
        raise UserError(f"{what} gave no string of length {lo} to {hi} in {REGEX_TRIES} tries; "
                        "widen 'length' or the pattern.")
    return gen


def _emit(items, rng, out, groups, where, extra=_UNBOUNDED_EXTRA):
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
            hi = lo + extra if hi == sre_c.MAXREPEAT else hi
            for _ in range(rng.randint(lo, hi)):
                _emit(sub, rng, out, groups, where, extra)
        elif op == sre_c.SUBPATTERN:
            gid, sub = av[0], av[-1]
            start = len(out)
            _emit(sub, rng, out, groups, where, extra)
            if gid is not None:
                groups[gid] = "".join(out[start:])
        elif op == sre_c.BRANCH:
            _emit(rng.choice(av[1]), rng, out, groups, where, extra)
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
