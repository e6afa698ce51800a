"""Every arg.properties keyword of avro-random-generator (kafka-connect-datagen), on every type it
applies to, against its documented behaviour; and a clear error wherever a keyword cannot apply."""

from __future__ import annotations

import io
import json
import random
import re
import uuid
from collections import Counter
from decimal import Decimal

import orjson
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import validate

from foundation import UserError
from generator import GeneratorConfig, generate
from generator.values import Context, Pools, compile_record

NOW = 1_704_067_200_000


def record(type_node, props=None, **field_extra) -> dict:
    fld = {"name": "v", "type": type_node, **field_extra}
    if props is not None:
        fld["arg.properties"] = props
    return {"type": "record", "name": "T", "namespace": "t", "fields": [fld]}


def values(type_node, props=None, n=300, seed=1, base_dir=None, **field_extra) -> list:
    """n values of field v; every record is also checked to be valid Avro of the schema."""
    schema = record(type_node, props, **field_extra)
    make = compile_record(schema, Context(random.Random(seed), Pools(seed), lambda: NOW, "t.avsc", base_dir))
    parsed = parse_schema(schema)
    rows = [make() for _ in range(n)]
    for row in rows[:50]:
        assert validate(row, parsed, raise_errors=True, strict=True)
    return [r["v"] for r in rows]


def refused(type_node, props=None, **field_extra) -> str:
    with pytest.raises(UserError) as e:
        values(type_node, props, n=1, **field_extra)
    return str(e.value)


def typed(t: str, **props) -> dict:
    return {"type": t, "arg.properties": props}


# --- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("t,opts", [
    ("boolean", [True]), ("int", [1, -2]), ("long", [4242424242424242, 1]), ("float", [42.5, 1]),
    ("double", [42424242.42424242]), ("string", ["Forty-two", "x"]),
])
def test_options_on_primitives_pick_only_the_given_values(t, opts):
    got = values(typed(t, options=opts))
    assert set(got) == set(opts)


def test_options_on_null_bytes_fixed_enum_array_map_record():
    assert set(values(typed("null", options=[None]))) == {None}
    assert set(values(typed("bytes", options=["NDI=", "é"]))) == {b"NDI=", "é".encode()}
    fixed = {"type": "fixed", "name": "F", "size": 2, "arg.properties": {"options": ["42", "EE"]}}
    assert set(values(fixed)) == {b"42", b"EE"}
    enum = {"type": "enum", "name": "E", "symbols": ["HELLO", "HI", "BYE"],
            "arg.properties": {"options": ["HELLO", "BYE"]}}
    assert set(values(enum)) == {"HELLO", "BYE"}
    arrays = values({"type": "array", "items": "string", "arg.properties": {"options": [["a", "b"], ["c"]]}})
    assert {tuple(a) for a in arrays} == {("a", "b"), ("c",)}
    maps = values({"type": "map", "values": "int",
                   "arg.properties": {"options": [{"zero": 0}, {"one": 1, "two": 2}]}})
    assert {json.dumps(m, sort_keys=True) for m in maps} == {'{"zero": 0}', '{"one": 1, "two": 2}'}
    rec = {"type": "record", "name": "R", "fields": [{"name": "month", "type": "string"}, {"name": "day", "type": "int"}],
           "arg.properties": {"options": [{"month": "January", "day": 2}, {"month": "NANuary", "day": 0}]}}
    assert {r["month"] for r in values(rec)} == {"January", "NANuary"}


def test_options_on_a_union_field_pick_literal_values_null_included():
    got = values(["null", "string"], {"options": [None, "a"]})
    assert set(got) == {None, "a"}


def test_options_that_are_not_values_of_the_type_are_refused():
    assert "option 'x' is not a valid int value" in refused(typed("int", options=["x"]))
    assert "not a valid fixed value" in refused(
        {"type": "fixed", "name": "F", "size": 2, "arg.properties": {"options": ["abc"]}})
    assert "not a valid enum value" in refused(
        {"type": "enum", "name": "E", "symbols": ["A"], "arg.properties": {"options": ["B"]}})
    assert "'options' must not be empty" in refused(typed("string", options=[]))


def test_options_from_a_json_file_relative_to_the_schema_folder(tmp_path):
    (tmp_path / "nouns.json").write_text('"cat"\n"dog"  "owl"\n')
    assert set(values(typed("string", options={"file": "nouns.json", "encoding": "json"}), base_dir=tmp_path)) == \
        {"cat", "dog", "owl"}
    recs = tmp_path / "recs.json"
    recs.write_text('{"a": 1} {"a": 2}')
    rec = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}],
           "arg.properties": {"options": {"file": str(recs), "encoding": "json"}}}
    assert {r["a"] for r in values(rec)} == {1, 2}


def test_options_from_an_avro_binary_file(tmp_path):
    path = tmp_path / "ints.bin"
    with open(path, "wb") as f:
        for v in (7, 8, 9):
            schemaless_writer(f, parse_schema("long"), v)
    assert set(values(typed("long", options={"file": str(path), "encoding": "binary"}))) == {7, 8, 9}


def test_options_files_refused_with_the_reason(tmp_path):
    assert "options file nope.json does not exist" in refused(
        typed("string", options={"file": "nope.json", "encoding": "json"}))
    assert "needs a string 'encoding'" in refused(typed("string", options={"file": "x.json"}))
    (tmp_path / "x.json").write_text('"a"')
    assert "encoding must be 'json' or 'binary'" in refused(
        typed("string", options={"file": str(tmp_path / "x.json"), "encoding": "csv"}))


# --- iteration ----------------------------------------------------------------------------------

def test_iteration_on_integers_wraps_modulo_restart_like_datagen():
    assert values(typed("int", iteration={"start": 0, "restart": 10, "step": 3}), n=8) == [0, 3, 6, 9, 2, 5, 8, 1]
    assert values(typed("long", iteration={"start": 5, "restart": 0}), n=7) == [5, 4, 3, 2, 1, 5, 4]   # step defaults to -1
    assert values(typed("int", iteration={"start": 1, "restart": 4, "initial": 3}), n=5) == [3, 1, 2, 3, 1]
    assert values(typed("long", iteration={"start": 10}), n=3) == [10, 11, 12]


def test_iteration_on_floats_doubles_strings_and_booleans():
    assert values(typed("double", iteration={"start": 0.0, "step": 0.1, "restart": 0.5}), n=6) == \
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.0]   # exact decimal steps, as datagen's BigDecimal
    assert values(typed("float", iteration={"start": 1.5, "step": 1}), n=3) == [1.5, 2.5, 3.5]
    assert values(typed("string", iteration={"start": 1, "restart": 3}, prefix="id-", suffix="!"), n=3) == \
        ["id-1!", "id-2!", "id-1!"]
    assert values(typed("boolean", iteration={"start": False}), n=4) == [False, True, False, True]


@pytest.mark.parametrize("t,spec,message", [
    ("int", {"step": 1}, "'iteration' needs at least a start"),
    ("int", {"start": 0, "step": 0}, "step must not be 0"),
    ("int", {"start": 3, "restart": 3}, "start and restart must differ"),
    ("int", {"start": 0, "restart": 10, "step": -1}, "step must go from start towards restart"),
    ("int", {"start": 0.5}, "start must be an integral number"),
    ("boolean", {"start": 1}, "start must be true or false"),
    ("boolean", {"start": True, "step": 1}, "takes only a start, not step"),
])
def test_iteration_refusals(t, spec, message):
    assert message in refused(typed(t, iteration=spec))


# --- range --------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", ["int", "long"])
def test_range_on_integers_is_min_inclusive_max_exclusive(t):
    got = values(typed(t, range={"min": -2, "max": 3}), n=500)
    assert set(got) == {-2, -1, 0, 1, 2}
    assert min(values(typed(t, range={"min": 100}))) >= 100


@pytest.mark.parametrize("t", ["float", "double"])
def test_range_on_floats_and_a_one_sided_range(t):
    got = values(typed(t, range={"min": 2.5, "max": 3.0}))
    assert all(2.5 <= v < 3.0 for v in got)
    lone = values(typed(t, range={"min": 5}))   # max defaults to the type's largest value, as in datagen
    assert all(v >= 5 and v == v and v != float("inf") for v in lone)


def test_range_refusals():
    assert "min and max must be integral numbers for int" in refused(typed("int", range={"min": 0.5, "max": 3}))
    assert "range min 5 must be below max 5" in refused(typed("long", range={"min": 5, "max": 5}))
    assert "'range' must be an object with min and/or max" in refused(typed("int", range=[0, 1]))
    assert "arg.properties range cannot apply to string values" in refused(typed("string", range={"min": 1}))


# --- length, regex, prefix/suffix ---------------------------------------------------------------

def test_length_on_strings_bytes_arrays_and_maps():
    assert {len(v) for v in values(typed("string", length=5))} == {5}
    assert {len(v) for v in values(typed("bytes", length={"min": 2, "max": 4}))} == {2, 3}
    arrays = values({"type": "array", "items": "int", "arg.properties": {"length": {"min": 1, "max": 3}}})
    assert {len(a) for a in arrays} == {1, 2}
    maps = values({"type": "map", "values": "int", "arg.properties": {"length": 3}})
    assert {len(m) for m in maps} == {3}   # random 8-16 letter keys never collide in practice
    assert "'length' must be a non-negative integer" in refused(typed("string", length=-1))
    assert "length cannot apply to int values" in refused(typed("int", length=3))


def test_regex_alone_and_with_a_length_bounding_the_match():
    assert all(re.fullmatch(r"User_[1-9]", v) for v in values(typed("string", regex="User_[1-9]")))
    assert {len(v) for v in values(typed("string", regex="[a-zA-Z]*", length=10))} == {10}
    lens = {len(v) for v in values(typed("string", regex="[a-zA-Z]{0,15}", length={"min": 5}))}
    assert min(lens) >= 5 and max(lens) <= 15
    lens = {len(v) for v in values(typed("string", regex="[a-zA-Z]{5,}", length={"max": 16}))}
    assert min(lens) >= 5 and max(lens) <= 15
    assert "does not compile" in refused(typed("string", regex="[a-"))
    assert "gave no string of length" in refused(typed("string", regex="abc", length=5))


def test_prefix_and_suffix_wrap_random_regex_and_faker_strings():
    assert all(v.startswith("pre-") and v.endswith("-suf") and 8 <= len(v) - 8 <= 16
               for v in values(typed("string", prefix="pre-", suffix="-suf")))
    assert all(re.fullmatch(r"ID_[0-9]{3}\.x", v)
               for v in values(typed("string", regex="[0-9]{3}", prefix="ID_", suffix=".x")))
    assert all(v.startswith("Dr. ") for v in values("string", {"prefix": "Dr. "}, faker="last_name"))
    assert "'prefix' must be a string" in refused(typed("string", prefix=3))
    assert "prefix cannot apply to int values" in refused(typed("int", prefix="x"))


def test_options_are_not_prefixed_as_in_datagen_and_cannot_mix_with_regex():
    assert "'options' and 'regex' cannot be used together" in refused(typed("string", options=["a"], regex="b"))
    assert "'iteration' and 'range' cannot be used together" in refused(typed("int", iteration={"start": 1}, range={"max": 3}))


# --- keys, odds, kind ---------------------------------------------------------------------------

def test_keys_describe_map_keys_with_string_keywords():
    maps = values({"type": "map", "values": "int", "arg.properties": {"length": 5, "keys": {"options": ["a", "b"]}}})
    assert set().union(*maps) == {"a", "b"}
    maps = values({"type": "map", "values": "int",
                   "arg.properties": {"length": 2, "keys": {"regex": "k[0-9]{4}", "prefix": "x_"}}})
    assert all(re.fullmatch(r"x_k[0-9]{4}", k) for m in maps for k in m)
    assert "range cannot apply to string values" in refused(
        {"type": "map", "values": "int", "arg.properties": {"keys": {"range": {"min": 1}}}})
    assert "'keys' must be a JSON object" in refused({"type": "map", "values": "int", "arg.properties": {"keys": "a"}})


def test_odds_is_the_probability_of_true():
    assert set(values(typed("boolean", odds=0.0))) == {False}
    assert set(values(typed("boolean", odds=1.0))) == {True}
    share = sum(values(typed("boolean", odds=0.2), n=5000)) / 5000
    assert 0.17 < share < 0.23
    assert "'odds' must be a number between 0.0 and 1.0" in refused(typed("boolean", odds=1.5))
    assert "odds cannot apply to int values" in refused(typed("int", odds=0.5))


def test_kind_generates_uuids_emails_and_names():
    assert all(uuid.UUID(v).version == 4 for v in values(typed("string", kind="uuid")))
    assert all("@" in v for v in values(typed("string", kind="email")))
    assert all(" " in v for v in values(typed("string", kind="name")))
    assert "'kind' must be one of uuid, email, name" in refused(typed("string", kind="iban"))


# --- unions: null handling, position, distribution -----------------------------------------------

def test_unions_pick_a_branch_uniformly_null_included_and_field_keywords_reach_their_branch():
    got = values(["null", "string", "int"], {"regex": "z[0-9]", "range": {"min": 0, "max": 3}}, n=600)
    kinds = Counter(type(v).__name__ for v in got)
    assert set(kinds) == {"NoneType", "str", "int"} and min(kinds.values()) > 150
    assert all(re.fullmatch("z[0-9]", v) for v in got if isinstance(v, str))
    assert all(0 <= v < 3 for v in got if isinstance(v, int))
    assert "odds cannot apply to string values" in refused(["null", "string"], {"odds": 0.5})


def test_position_selects_one_union_branch():
    assert set(values(["null", typed("int", options=[42]), "string"], {"position": 1})) == {42}
    assert set(values(["null", "string"], {"position": 0})) == {None}
    assert "'position' must be a branch index from 0 to 1" in refused(["null", "string"], {"position": 2})


def test_distribution_weights_union_branches():
    got = values(["null", typed("string", options=["s"])], {"distribution": {"0": 0.1, "1": 0.9}}, n=5000)
    assert 0.08 < got.count(None) / 5000 < 0.12
    assert "must add up to 1" in refused(["null", "string"], {"distribution": {"0": 0.5, "1": 0.1}})
    assert "must map branch indexes" in refused(["null", "string"], {"distribution": {"7": 1.0}})
    assert "'position' and 'distribution' cannot be used together" in refused(
        ["null", "string"], {"position": 0, "distribution": {"0": 1.0}})
    assert "position cannot apply to string values" in refused(typed("string", position=0))


# --- logical types, unknown keywords, a whole schema ----------------------------------------------

def test_decimal_bytes_and_fixed_are_twos_complement_values_within_the_precision():
    dec = {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}
    fix = {"type": "fixed", "name": "D", "size": 3, "logicalType": "decimal", "precision": 6, "scale": 3}
    raw = {"type": "record", "name": "R", "fields": [{"name": "a", "type": dec}, {"name": "b", "type": fix}]}
    schema = parse_schema(raw)
    make = compile_record(raw, Context(random.Random(3), Pools(3), lambda: NOW, "t.avsc"))
    for _ in range(200):
        buf = io.BytesIO()
        schemaless_writer(buf, schema, make())
        buf.seek(0)
        row = schemaless_reader(buf, schema)
        assert isinstance(row["a"], Decimal) and abs(row["a"]) < Decimal("1000") and row["a"].as_tuple().exponent == -2
        assert abs(row["b"]) < Decimal("1000")


def test_time_logical_types_follow_the_stream_clock():
    assert set(values({"type": "long", "logicalType": "time-micros"}, n=3)) == {NOW % 86_400_000 * 1000}
    assert set(values({"type": "int", "logicalType": "date"}, n=3)) == {NOW // 86_400_000}


def test_unknown_keywords_are_refused_naming_them():
    assert "unsupported arg.properties bogus" in refused(typed("string", bogus=1))


def test_a_schema_file_with_every_keyword_generates_valid_json_and_avro(tmp_path):
    (tmp_path / "colours.json").write_text('"red" "green"')
    schema = {"type": "record", "name": "everything", "fields": [
        {"name": "id", "type": {"type": "string", "arg.properties": {"iteration": {"start": 1}, "prefix": "o-"}}},
        {"name": "colour", "type": {"type": "string",
                                    "arg.properties": {"options": {"file": "colours.json", "encoding": "json"}}}},
        {"name": "flag", "type": {"type": "boolean", "arg.properties": {"odds": 0.9}}},
        {"name": "code", "type": {"type": "string", "arg.properties": {"regex": "[A-Z]+", "length": 4, "suffix": "#"}}},
        {"name": "maybe", "type": ["null", "long"],
         "arg.properties": {"distribution": {"0": 0.5, "1": 0.5}, "range": {"min": 1, "max": 9}}},
        {"name": "tags", "type": {"type": "map", "values": "int",
                                  "arg.properties": {"length": 1, "keys": {"kind": "uuid"}}}},
    ]}
    path = tmp_path / "everything.avsc"
    path.write_text(json.dumps(schema))
    rows = [orjson.loads(r.value) for r in generate(GeneratorConfig(schema_path=str(path), activities=50, start_ms=0,
                                                                    validate_every=1))]
    assert [r["id"] for r in rows[:3]] == ["o-1", "o-2", "o-3"]
    assert {r["colour"] for r in rows} == {"red", "green"}
    assert all(re.fullmatch(r"[A-Z]{4}#", r["code"]) for r in rows)
    assert all(r["maybe"] is None or 1 <= r["maybe"] < 9 for r in rows)
    assert len(list(generate(GeneratorConfig(schema_path=str(path), activities=50, start_ms=0, format="avro",
                                             validate_every=1)))) == 50
