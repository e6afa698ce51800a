"""A small runner for the `.sql` files: comments, SET lines, parameters and statement sets.

- ``-- line`` and ``/* block */`` comments are dropped, except inside quoted strings and
  identifiers (``'a -- b'`` stays as it is).
- Statements end with ``;`` outside quotes.
- ``SET 'key' = 'value';`` goes to the table config.
- ``EXECUTE STATEMENT SET BEGIN INSERT ...; INSERT ...; END;`` becomes one job.
- ``CREATE TEMPORARY VIEW name AS query`` is planned once and registered as a Table, so every
  statement reading the view shares one plan node. Plain SQL views are expanded again at each use
  with fresh correlation ids, which hides the sharing from the optimizer: a job with seven inserts
  then parsed each record four times and ran every temporal join twice.
- ``${name}`` is replaced by a parameter; its value is escaped for a single-quoted SQL string
  (``'`` doubled), so a parameter can never end the string it stands in. ``${name:options}``
  expands a dict into ``'k' = 'v', ...`` WITH-options (for connection properties whose number
  varies); ``${name:list}`` a sequence into ``'a', 'b'`` (for ``IN (...)``); ``${name:bands(expr)}`` a
  ``foundation.catalog.Bands`` into ``CASE WHEN expr IS NULL THEN 'unknown' WHEN expr < 30000 THEN
  '<30k' ... ELSE '150k+' END``, so that a tier or band edge lives in the catalog only. An unknown
  parameter is an error, never left in the SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:options|:list|:bands\(([A-Za-z_][A-Za-z0-9_.]*)\))?\}")
SET_RE = re.compile(r"^SET\s+'([^']+)'\s*=\s*'((?:[^']|'')*)'$", re.IGNORECASE | re.DOTALL)
VIEW_RE = re.compile(r"^CREATE\s+TEMPORARY\s+VIEW\s+(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\s+AS\s+(.*)$",
                     re.IGNORECASE | re.DOTALL)
BEGIN_SET = re.compile(r"^EXECUTE\s+STATEMENT\s+SET\s+BEGIN\s+", re.IGNORECASE)


class SqlError(ValueError):
    pass


def quote(value: object) -> str:
    return str(value).replace("'", "''")


def substitute(sql: str, params: dict[str, object]) -> str:
    def repl(m: re.Match) -> str:
        name, kind = m.group(1), m.group(2)
        if name not in params:
            raise SqlError(f"SQL parameter ${{{name}}} has no value")
        value = params[name]
        if kind == ":options":
            return ",\n  ".join(f"'{quote(k)}' = '{quote(v)}'" for k, v in dict(value).items())
        if kind == ":list":
            return ", ".join(f"'{quote(v)}'" for v in value)
        if kind:
            return bands_case(value, m.group(3))
        return quote(value)

    return PARAM.sub(repl, sql)


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SqlError(f"a band edge must be a number, not {value!r}")
    return repr(value)


def bands_case(bands, expr: str) -> str:
    """The CASE expression labelling ``expr`` by ``bands`` (edges ascending, ``<`` each)."""
    whens = [f"WHEN {expr} IS NULL THEN '{quote(bands.unknown)}'"] if bands.unknown is not None else []
    whens += [f"WHEN {expr} < {_number(edge)} THEN '{quote(label)}'" for edge, label in zip(bands.edges, bands.labels)]
    return f"CASE {' '.join(whens)} ELSE '{quote(bands.labels[-1])}' END"


def split_statements(text: str) -> list[str]:
    """Split on ``;`` outside quotes/comments; comments removed. Keeps statement-set blocks whole."""
    out, buf = [], []
    i, n = 0, len(text)
    quote_char = None
    while i < n:
        c = text[i]
        if quote_char:
            buf.append(c)
            if c == quote_char:
                if i + 1 < n and text[i + 1] == quote_char:   # doubled quote = escaped
                    buf.append(text[i + 1])
                    i += 1
                else:
                    quote_char = None
        elif c in ("'", '"', "`"):
            quote_char = c
            buf.append(c)
        elif text.startswith("--", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise SqlError("unterminated /* comment")
            i = end + 2
            buf.append(" ")
            continue
        elif c == ";":
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(c)
        i += 1
    if quote_char:
        raise SqlError(f"unterminated quoted string (opened with {quote_char})")
    tail = "".join(buf).strip()
    if tail:
        out.append(tail)
    # Re-join statement sets: "EXECUTE STATEMENT SET BEGIN a; b; END" was split on its inner ';'.
    merged, block = [], None
    for stmt in (s for s in out if s):
        if block is None and BEGIN_SET.match(stmt):
            block = [BEGIN_SET.sub("", stmt)]
        elif block is not None:
            if stmt.upper() == "END":
                merged.append(("SET_BLOCK", block))
                block = None
            else:
                block.append(stmt)
        else:
            merged.append(stmt)
    if block is not None:
        raise SqlError("EXECUTE STATEMENT SET BEGIN without END")
    return merged


@dataclass
class Script:
    """A parsed script: config from SET lines, DDL/queries in order, and the inserts of the job."""

    config: dict[str, str] = field(default_factory=dict)
    statements: list[str] = field(default_factory=list)
    inserts: list[str] = field(default_factory=list)


def parse(text: str, params: dict[str, object]) -> Script:
    script = Script()
    for stmt in split_statements(substitute(text, params)):
        if isinstance(stmt, tuple):
            script.inserts.extend(stmt[1])
            continue
        m = SET_RE.match(stmt)
        if m:
            script.config[m.group(1)] = m.group(2).replace("''", "'")
        elif stmt.upper().startswith("INSERT"):
            script.inserts.append(stmt)
        else:
            script.statements.append(stmt)
    return script


def load(paths: list[Path], params: dict[str, object]) -> Script:
    merged = Script()
    for p in paths:
        s = parse(Path(p).read_text(), params)
        merged.config.update(s.config)
        merged.statements.extend(s.statements)
        merged.inserts.extend(s.inserts)
    return merged


def apply(t_env, script: Script, run_inserts: bool = True):
    """Execute a script on a TableEnvironment; returns the TableResult of the statement set."""
    for k, v in script.config.items():
        t_env.get_config().set(k, v)
    for stmt in script.statements:
        view = VIEW_RE.match(stmt)
        if view:
            t_env.create_temporary_view(view.group(1).strip("`"), t_env.sql_query(view.group(2)))
        else:
            t_env.execute_sql(stmt)
    if not run_inserts or not script.inserts:
        return None
    return execute_inserts(t_env, script.inserts)


def statement_set(t_env, inserts: list[str]):
    """All inserts as one statement set (one job: shared sources are read once)."""
    stmt_set = t_env.create_statement_set()
    for ins in inserts:
        stmt_set.add_insert_sql(ins)
    return stmt_set


def execute_inserts(t_env, inserts: list[str]):
    """Submit all inserts as one job."""
    return statement_set(t_env, inserts).execute()
