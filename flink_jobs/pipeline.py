"""Build and run the churn pipeline: sources -> checks -> enrichment -> aggregates -> sinks."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from foundation import UserError, catalog
from foundation.pii import hash_key
from foundation.settings import Settings, prefix_tag
from flink_jobs import bounded, compiled_plan
from flink_jobs import params as job_params
from flink_jobs import sql_runner
from flink_jobs.jars import JobJars
from flink_jobs.options import JobOptions
from flink_jobs.rest import FlinkRest, job_name

log = logging.getLogger("churnstream.job")

SOURCES = {"json": job_params.SQL_DIR / "sources.sql", "avro": job_params.SQL_DIR / "sources_avro.sql"}
TRANSFORM = job_params.SQL_DIR / "transform.sql"
SINKS = job_params.SQL_DIR / "sinks.sql"
PIPELINE = job_params.SQL_DIR / "pipeline.sql"


# PyFlink is imported inside the functions that build a job, never at the top of this module. With
# the imports at the top, the kill-and-resume test once lost 168 of 189 window results after the
# resume: the slower start let activity partitions go idle and be overtaken (the idle timeout then
# applied to every source). Activity partitions are no longer marked idle (sql/sources.sql), which
# removes that race; the deferral stays, as it costs nothing.
def register_functions(t_env, key: bytes, opts: JobOptions, end_ms: int | None = None) -> None:
    """Our Java functions that take constructor arguments (no PyFlink API takes a Java instance):

    - pseudonymise(STRING): the keyed hash of foundation.pii (flink_udfs/Pseudonymise.java). The
      key goes to its constructor, so it never shows in SQL, the plan or the job's configuration;
      it travels inside the serialized function.
    - customer_engagement(TABLE ...): the per-customer state and timers of transform.sql step 8
      (flink_udfs/CustomerEngagement.java). Its durations go to the constructor because its timers
      fire without a row, where a PTF sees no scalar argument. ``end_ms``: where a bounded input's
      event time ends (flink_jobs/bounded.py), None if unknown.
    """
    from pyflink.java_gateway import get_gateway

    udf = get_gateway().jvm.io.churnstream.udf
    t_env._j_tenv.createTemporarySystemFunction("pseudonymise", udf.Pseudonymise(bytearray(key)))  # noqa: SLF001
    engagement = udf.CustomerEngagement(opts.inactivity_gap_seconds * 1000, opts.engagement_window_seconds * 1000,
                                        opts.engagement_refresh_seconds * 1000,
                                        opts.customer_state_interval_seconds * 1000,
                                        opts.session_gap_minutes * 60_000, opts.out_of_orderness_seconds * 1000,
                                        udf.CustomerEngagement.NO_END if end_ms is None else end_ms)
    t_env._j_tenv.createTemporarySystemFunction("customer_engagement", engagement)  # noqa: SLF001


@contextlib.contextmanager
def _python_workers_for(settings: Settings):
    """How the job's Python functions will run, decided while the table environment is created.

    PyFlink decides it once, in TableEnvironment's constructor, from the gateway's execution target,
    which is "local" whatever the table config says later: it starts a loopback worker pool in this
    process and writes its address into every job. On a session cluster the TaskManager would then
    run the Python functions inside this client, and fail on every record once the client is gone
    (in compose, from the first record: the client runs in another container). For a remote
    JobManager the workers must be processes the TaskManager starts itself: PyFlink's switch for
    that is this environment variable, read only by the constructor.
    """
    if not settings.flink_jobmanager:
        yield
        return
    before = os.environ.get(_WORKER_MODE)
    os.environ[_WORKER_MODE] = "process"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_WORKER_MODE, None)
        else:
            os.environ[_WORKER_MODE] = before


_WORKER_MODE = "_python_worker_execution_mode"


def table_env(settings: Settings, streaming: bool = True, jars: JobJars | None = None, ship_jars: bool = False):
    """A table environment for this job's SQL. ``ship_jars``: the connectors go with the job
    (pipeline.jars); without, only the client has our function (literal-row tests)."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    jars = jars or JobJars.resolve(settings)

    # A process that ran a job with Python UDFs in loopback mode (tests, bench) has had its UDF
    # worker's environment merged into its own (Beam's worker pool calls os.environ.update), with
    # PYFLINK_GATEWAY_DISABLED=true among it; its children inherit that and then refuse to start a
    # gateway. We only ever build a table environment as a client, never inside a UDF worker.
    os.environ.pop("PYFLINK_GATEWAY_DISABLED", None)
    _prepare_gateway_jvm(jars, heap=None if settings.flink_jobmanager else settings.flink_heap)
    # The local mini-cluster's own log (partitions going idle, checkpoints, restarts) in the run
    # folder with the other services' logs, not inside the installed pyflink package; a
    # FLINK_LOG_DIR of the caller's wins. (Read when the gateway starts: the first table
    # environment of a process decides, and its children inherit it.)
    os.environ.setdefault("FLINK_LOG_DIR", str(Path(settings.run_dir).resolve() / "logs"))
    flink_log_dir(settings).mkdir(parents=True, exist_ok=True)
    env_settings = (EnvironmentSettings.in_streaming_mode() if streaming
                    else EnvironmentSettings.in_batch_mode())
    with _python_workers_for(settings):
        t_env = TableEnvironment.create(env_settings)
    conf = t_env.get_config()
    conf.set("pipeline.name", job_name(settings.topic_prefix))
    conf.set("parallelism.default", str(settings.parallelism))
    conf.set("table.local-time-zone", "UTC")
    # Chained operators otherwise deep-copy every row they hand on (RowDataSerializer.copy was the
    # top frame of the job's task threads); the SQL runtime's operators never keep a row they emit.
    conf.set("pipeline.object-reuse", "true")
    # Latency. A network buffer that is not full leaves after buffer-timeout (100 ms by default); the
    # rows a watermark releases end in a part-full buffer, one per exchange on the way to the sinks.
    # 10 ms took the job's own latency (enriched topic write time - event time, 5k msg/s,
    # out-of-orderness 1 s) from p50 1.27 / p90 1.42 s to 1.18 / 1.38 s. Watermarks stay at Flink's
    # 200 ms: at 50 ms the p50 was 1.08 s, but each time a key's timer fires the event-time temporal
    # join visits every pending row of the key and sorts its versions, so the offers join (20 keys,
    # ~1000 rows each within the out-of-orderness) took twice the CPU (JFR samples of its task
    # thread in a 1M-event run: 317 -> 656 of ~5000, bench --profile).
    conf.set("execution.buffer-timeout.interval", "10 ms")
    conf.set("python.executable", sys.executable)
    conf.set("python.client.executable", sys.executable)
    if ship_jars:
        conf.set("pipeline.jars", ";".join(p.resolve().as_uri() for p in (*jars.connectors, jars.udf)))
    if settings.flink_jobmanager:
        host, _, port = settings.flink_jobmanager.partition(":")
        conf.set("execution.target", "remote")
        conf.set("rest.address", host)
        conf.set("rest.port", port or "8081")
    return t_env


# Avro allocates a string, bytes or array of the length a record's prefix claims before reading it:
# near 2^31 that fails the task with an OutOfMemoryError, and the job restarts on the same record
# forever. No field can be longer than Kafka's default maximum record size, so above it the
# (relocated) Avro throws, and the record becomes a malformed_avro dead letter. JVM-wide settings:
# the mini-cluster gets them here, a session cluster from its JVM_ARGS (docker-compose.yml).
AVRO_MAX_LENGTH = 1_048_576
AVRO_LIMIT_OPTS = " ".join(f"-Dorg.apache.flink.avro.shaded.org.apache.avro.limits.{kind}.maxLength={AVRO_MAX_LENGTH}"
                           for kind in ("string", "bytes", "collectionItems"))


def _prepare_gateway_jvm(jars: JobJars, heap: str | None) -> None:
    """Our Java function on the class path of the JVM that PyFlink starts (its first table
    environment), and the Avro limits above in its options.

    The client compiles the generated operators that call the function while it builds the job
    graph, with the JVM's application class loader: a jar known only through pipeline.jars or
    USING JAR is not seen there ("Cannot determine simple type name io"). PyFlink's gateway
    launcher puts HADOOP_CLASSPATH on its class path and JVM_ARGS on its command line; with the
    function goes the Avro format jar, whose relocated Avro it calls. Both still reach a cluster as
    before: USING JAR (sources_avro.sql) and pipeline.jars.
    """
    wanted = [str(j) for j in jars.client_classpath()]
    current = [p for p in os.environ.get("HADOOP_CLASSPATH", "").split(os.pathsep) if p]
    os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(current + [j for j in wanted if j not in current])
    os.environ["JVM_ARGS"] = gateway_jvm_args(os.environ.get("JVM_ARGS", ""), heap)


def gateway_jvm_args(current: str, heap: str | None) -> str:
    """JVM_ARGS for PyFlink's JVM: the Avro limits, and with ``heap`` (the local mini-cluster, which
    runs the whole job in that JVM) a -Xmx and the parallel collector, unless the caller's JVM_ARGS
    chose them. A client of a session cluster keeps the JVM's defaults (compose sizes its container
    for them).

    Why the parallel collector: the job wants throughput, and a pause of a ~1 GB heap is short; G1
    needed more heap for the same work (1g: 30% more CPU; ParallelGC at 1200m: 106 s of CPU for 1M
    events and 1.99 GB RSS, G1 at 1536m: 112 s and 2.45 GB; README, Benchmarks)."""
    args = current.split()
    if AVRO_LIMIT_OPTS not in current:
        args += AVRO_LIMIT_OPTS.split()
    if heap and not any(a.startswith("-Xmx") for a in args):
        args.append(f"-Xmx{heap}")
    if heap and not any(a.startswith("-XX:+Use") and a.endswith("GC") for a in args):
        args.append("-XX:+UseParallelGC")
    return " ".join(args)


def configure_checkpoints(t_env, settings: Settings) -> None:
    conf = t_env.get_config()
    # Every checkpoint of the heap state backend is a full copy of the state, and while one runs
    # each write copies the entry it touches: at 5 s the job spent 14% more CPU per event than at
    # 10 s (bench --only throughput, 1M events). A restart replays at most one interval of input
    # into upsert results. The pause keeps a slow snapshot (a large deduplication state) from
    # running back to back with the next.
    conf.set("execution.checkpointing.interval", f"{settings.checkpoint_interval_ms} ms")
    conf.set("execution.checkpointing.min-pause", f"{settings.checkpoint_interval_ms // 2} ms")
    conf.set("execution.checkpointing.mode", "EXACTLY_ONCE")
    # Where state lives (Settings.state_backend): on the heap, or in RocksDB on local disk, whose
    # checkpoints then upload only the files that changed since the last one.
    conf.set("state.backend.type", settings.state_backend)
    if settings.state_backend == "rocksdb":
        conf.set("execution.checkpointing.incremental", "true")
    # The default JobManager-memory storage fails above 5 MB of state: keep checkpoints on disk.
    ckpt = checkpoint_root(settings)
    conf.set("execution.checkpointing.storage", "filesystem")
    conf.set("execution.checkpointing.dir", ckpt.as_uri())
    conf.set("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    # An unreachable Elasticsearch or Kafka fails the job; it restarts from the last checkpoint,
    # waiting 1 s, 2 s, 4 s ... at most 20 s, forever: an outage delays results, never drops them.
    conf.set("restart-strategy.type", "exponential-delay")
    conf.set("restart-strategy.exponential-delay.initial-backoff", "1 s")
    conf.set("restart-strategy.exponential-delay.max-backoff", "20 s")


def checkpoint_root(settings: Settings) -> Path:
    """<run folder>/checkpoints, and a folder of its own below it for the jobs of another topic prefix
    (the compose Avro job): `--resume` then never takes another job's checkpoint."""
    root = Path(settings.run_dir) / "checkpoints"
    tag = prefix_tag(settings.topic_prefix)
    return (root / tag if tag else root).resolve()


def latest_checkpoint(settings: Settings) -> Path | None:
    """The newest complete checkpoint of any earlier run (a folder with its _metadata)."""
    done = sorted(checkpoint_root(settings).glob("*/chk-*/_metadata"), key=lambda p: p.stat().st_mtime)
    return done[-1].parent if done else None


def build(settings: Settings, opts: JobOptions, sink: str = "kafka", resume_from: Path | None = None):
    """Create the table environment with every table and view; returns (t_env, script)."""
    jars = JobJars.resolve(settings)
    # A bounded run reads the activity records present now; first, where their event time ends
    # (flink_jobs/bounded.py), in a batch job of its own.
    stop = bounded.stop_offsets(settings, settings.topic(catalog.ACTIVITY)) if opts.bounded else None
    values = job_params.build(settings, opts, jars, activity_stop_offsets=stop)
    end_ms = None
    if opts.bounded:
        batch = table_env(settings, streaming=False, jars=jars, ship_jars=True)
        sql_runner.apply(batch, sql_runner.load([SOURCES[opts.format]], values), run_inserts=False)
        newest = bounded.newest_event_time(batch, values)
        end_ms = None if newest is None else newest - opts.out_of_orderness_seconds * 1000
    t_env = table_env(settings, jars=jars, ship_jars=True)
    configure_checkpoints(t_env, settings)
    if resume_from is not None:
        # State (offsets, windows, joins) continues where the checkpoint left it: nothing lost or counted twice.
        t_env.get_config().set("execution.state-recovery.path", Path(resume_from).resolve().as_uri())
        log.info("job: resuming from %s", resume_from)
    if not settings.flink_jobmanager:
        # The local mini-cluster's REST endpoint on a port we know (Flink picks a random one
        # otherwise): `churnstream job --stop` reaches the job there (run_file says where).
        t_env.get_config().set("rest.bind-port", str(_free_port()))
    register_functions(t_env, hash_key(settings), opts, end_ms)
    script = sql_runner.load([SOURCES[opts.format], TRANSFORM, SINKS, PIPELINE], values)
    sql_runner.apply(t_env, script, run_inserts=False)
    if sink == "print":
        # Temporary tables shadow the result topics' ones: same schema, printed to stdout instead.
        for name in (index.table for index in catalog.INDICES):
            t_env.execute_sql(f"CREATE TEMPORARY TABLE {name} WITH ('connector' = 'print', "
                              f"'print-identifier' = '{name}') LIKE default_catalog.default_database.{name} "
                              "(EXCLUDING OPTIONS)")
    return t_env, script


def run_file(settings: Settings) -> Path:
    """Where the newest job submitted from this run folder left its id and REST address."""
    return Path(settings.run_dir) / "job.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def savepoint_root(settings: Settings) -> Path:
    return (Path(settings.run_dir) / "savepoints").resolve()


def stop_with_savepoint(settings: Settings) -> str:
    """Stop the running pipeline with a savepoint and return its location: on the session cluster
    of ``settings.flink_jobmanager`` (into its execution.checkpointing.savepoint-dir), else the local job this run
    folder started (into <run folder>/savepoints)."""
    if settings.flink_jobmanager:
        address, target = settings.flink_jobmanager, None
    else:
        try:
            address = json.loads(run_file(settings).read_text())["rest"]
        except (OSError, ValueError, KeyError):
            raise UserError(f"no job was started from {settings.run_dir} ({run_file(settings).name} is missing); "
                            "start one with 'churnstream job', or pass --jobmanager HOST:PORT for a cluster.") from None
        target = savepoint_root(settings).as_uri()
    rest = FlinkRest(address, timeout=30)
    try:
        jid = rest.running(job_name(settings.topic_prefix))
    except OSError:
        jid = None
    if jid is None:
        raise UserError(f"no churnstream job is running at {address}; there is nothing to stop.")
    log.info("job: stopping %s at %s with a savepoint ...", jid, address)
    asked = time.time()
    try:
        request = rest.trigger_stop(jid, target)
        location = rest.savepoint_location(jid, request)
    except OSError as e:
        # The local mini-cluster shuts down with its job, often before the savepoint's status was
        # read (CI saw "Connection reset by peer"): the savepoint is then in our own folder.
        location = None if settings.flink_jobmanager else _savepoint_left_by(savepoint_root(settings), jid, asked)
        if location is None:
            where = (f"the Flink UI at http://{address}" if settings.flink_jobmanager
                     else f"the job's own output (no savepoint appeared in {savepoint_root(settings)})")
            raise UserError(f"the job {jid} could not be stopped with a savepoint: {e}; "
                            f"see {where} whether it keeps running.") from None
    except RuntimeError as e:
        raise UserError(f"the job {jid} could not be stopped with a savepoint: {e}; it keeps running.") from None
    log.info("job: %s stopped; savepoint %s", jid, location)
    return location


def _savepoint_left_by(root: Path, jid: str, since: float, wait_s: float = 60.0) -> str | None:
    """The newest complete savepoint of job ``jid`` written into ``root`` after ``since`` (epoch s):
    Flink names it savepoint-<first 6 characters of the job id>-<random> and writes its _metadata
    last. Waits up to ``wait_s`` for it; None if there is none."""
    deadline = time.monotonic() + wait_s
    while True:
        done = [m for m in root.glob(f"savepoint-{jid[:6]}-*/_metadata") if m.stat().st_mtime >= since - 1]
        if done:
            return max(done, key=lambda m: m.stat().st_mtime).parent.as_uri()
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def flink_log_dir(settings: Settings) -> Path:
    return Path(os.environ.get("FLINK_LOG_DIR") or Path(settings.run_dir).resolve() / "logs")


def flink_log(settings: Settings) -> Path | None:
    """The local mini-cluster's log file: PyFlink names it flink-<user>-python-<host>.log."""
    logs = sorted(flink_log_dir(settings).glob("flink-*-python-*.log"), key=lambda f: f.stat().st_mtime)
    return logs[-1] if logs else None


def dedup_state_ttls(opts: JobOptions) -> dict[tuple[str, str], str]:
    """The only state that expires: the deduplication's and the duplicate report's (a first-N)."""
    ttl = f"{opts.dedup_horizon_minutes} min"
    return {("stream-exec-deduplicate", "deduplicateState"): ttl, ("stream-exec-rank", "rankState"): ttl}


def run(settings: Settings, opts: JobOptions, sink: str = "kafka", wait: bool = True,
        resume_from: Path | None = None):
    """Submit the pipeline; with ``wait`` block until it ends (bounded runs end by themselves)."""
    t0 = time.monotonic()
    t_env, script = build(settings, opts, sink, resume_from)
    result = compiled_plan.execute(t_env, script.inserts, dedup_state_ttls(opts))
    client = result.get_job_client()
    job_id = client.get_job_id() if client else "?"
    rest = settings.flink_jobmanager or f"127.0.0.1:{t_env.get_config().get_configuration().get_string('rest.bind-port', '8081')}"
    run_file(settings).parent.mkdir(parents=True, exist_ok=True)
    run_file(settings).write_text(json.dumps({"job_id": str(job_id), "rest": rest}) + "\n")
    log.info("job: submitted %s (%d inserts, %s, sink=%s) in %.1f s; REST %s", job_id, len(script.inserts),
             "bounded" if opts.bounded else "unbounded", sink, time.monotonic() - t0, rest)
    if not settings.flink_jobmanager:
        log.info("job: Flink's log (partitions going idle and back, checkpoints, restarts): %s", flink_log(settings))
    if settings.flink_jobmanager and not (opts.bounded and wait):
        # The submission only says the JobManager accepted the graph: wait for every task to run, so
        # that a job which cannot start (a missing class, no free slot) is an error here. (A bounded
        # run waited for may end before all its tasks were seen running: its end says how it went.)
        try:
            FlinkRest(settings.flink_jobmanager).wait_running(str(job_id), timeout=180)
        except (RuntimeError, OSError) as e:
            raise UserError(f"the Flink job did not start on {settings.flink_jobmanager}: {e}; see the Flink UI "
                            "or the JobManager's log.") from None
        log.info("job: %s running on %s, all tasks up, in %.1f s", job_id, settings.flink_jobmanager,
                 time.monotonic() - t0)
    if wait:
        try:
            result.wait()
        except Exception as e:  # noqa: BLE001 - surface the root cause in one line
            raise UserError(f"the Flink job failed: {_root_cause(e)}") from None
        log.info("job: %s finished after %.1f s", job_id, time.monotonic() - t0)
    return result


def follow(settings: Settings, jid: str, poll_seconds: float = 5.0) -> int:
    """Wait for a job already on the cluster to end, logging each change of its state: 0 when it
    was cancelled or finished, a UserError when it failed."""
    rest, state = FlinkRest(settings.flink_jobmanager), None
    log.info("job: following %s on %s", jid, settings.flink_jobmanager)
    while True:
        now = rest.job(jid)["state"]
        if now != state:
            log.info("job: %s is %s", jid, now)
            state = now
        if state == "FAILED":
            raise UserError(f"the Flink job {jid} failed: {rest.last_failure(jid)}")
        if state in ("CANCELED", "FINISHED"):
            return 0
        time.sleep(poll_seconds)


def _root_cause(e: Exception) -> str:
    text = str(e)
    causes = [line.strip() for line in text.splitlines() if line.strip().startswith("Caused by:")]
    return causes[-1] if causes else text.splitlines()[0] if text else repr(e)
