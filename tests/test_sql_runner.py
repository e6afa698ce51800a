import pytest

from foundation import catalog
from flink_jobs import sql_runner
from flink_jobs.sql_runner import SqlError, parse, split_statements, substitute


def test_comments_and_quoted_dashes():
    stmts = split_statements("""
        -- a comment; with a semicolon
        CREATE TABLE t (a STRING) WITH ('x' = 'a -- not a comment; really'); /* block; */
        SELECT 'it''s; fine' FROM t;
    """)
    assert stmts == ["CREATE TABLE t (a STRING) WITH ('x' = 'a -- not a comment; really')",
                     "SELECT 'it''s; fine' FROM t"]


def test_set_lines_go_to_config_and_statement_sets_are_kept_whole():
    script = parse("""
        SET 'table.exec.source.idle-timeout' = '5 s';
        SET 'pipeline.name' = 'it''s';
        CREATE VIEW v AS SELECT 1;
        EXECUTE STATEMENT SET
        BEGIN
          INSERT INTO a SELECT * FROM v;
          INSERT INTO b SELECT * FROM v;
        END;
    """, {})
    assert script.config == {"table.exec.source.idle-timeout": "5 s", "pipeline.name": "it's"}
    assert script.statements == ["CREATE VIEW v AS SELECT 1"]
    assert script.inserts == ["INSERT INTO a SELECT * FROM v", "INSERT INTO b SELECT * FROM v"]


def test_parameters_are_escaped_and_cannot_break_out_of_a_string():
    sql = substitute("WITH ('topic' = '${t}')", {"t": "x'); DROP TABLE y; --"})
    assert sql == "WITH ('topic' = 'x''); DROP TABLE y; --')"
    # Still one statement with one string literal: the quote was doubled.
    assert len(split_statements(sql)) == 1


def test_option_and_list_parameters():
    assert substitute("${o:options}", {"o": {"properties.a": "1", "b": "it's"}}) == \
        "'properties.a' = '1',\n  'b' = 'it''s'"
    assert substitute("IN (${l:list})", {"l": ["a", "b'c"]}) == "IN ('a', 'b''c')"


def test_unknown_parameter_is_an_error():
    with pytest.raises(SqlError, match=r"\$\{missing\} has no value"):
        substitute("SELECT '${missing}'", {})


@pytest.mark.parametrize("text, message", [
    ("SELECT 'open", "unterminated quoted string"),
    ("SELECT 1 /* open", "unterminated /\\* comment"),
    ("EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1;", "without END"),
])
def test_broken_scripts_are_errors(text, message):
    with pytest.raises(SqlError, match=message):
        split_statements(text)


def test_project_sql_files_parse_with_the_job_parameters():
    from foundation.settings import Settings
    from flink_jobs import params, pipeline
    from flink_jobs.options import JobOptions

    values = params.build(Settings(), JobOptions())
    script = sql_runner.load([pipeline.SOURCES["json"], pipeline.TRANSFORM, pipeline.SINKS, pipeline.PIPELINE], values)
    assert "${" not in " ".join(script.statements + script.inserts)
    assert len(script.inserts) == len(catalog.INDICES)   # one per index: its result topic
    # The quiet versioned tables go idle by Flink's timeout; activity partitions by the quiet-partition
    # source's rule (sources.sql), never by Flink's; nothing sets a timeout for every source.
    create = {s.split("(")[0].split()[-1]: s for s in script.statements if s.lstrip().upper().startswith("CREATE TABLE")}
    assert "'scan.watermark.idle-timeout' = '5 s'" in create["customers"]
    assert "'scan.watermark.idle-timeout' = '5 s'" in create["offers"]
    activity = create["activity_raw"]
    assert "'connector' = 'kafka-quiet-partitions'" in activity and "'partition.idle-timeout' = '30 s'" in activity
    assert "scan.watermark.idle-timeout" not in activity and "table.exec.source.idle-timeout" not in script.config
    assert "'scan.topic-partition-discovery.interval' = '10 s'" in activity
    assert "'reader.idle-timeout' = '300 s'" in activity
    bounded = sql_runner.load([pipeline.SOURCES["json"]], params.build(Settings(), JobOptions(bounded=True)))
    assert "idle-timeout" not in " ".join(bounded.statements)
