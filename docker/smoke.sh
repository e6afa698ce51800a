#!/usr/bin/env bash
# The compose stack, built and run end to end: the one path for people and for CI
# (tests/test_compose_run.py runs exactly this script).
#
#   docker/smoke.sh              # the JSON pipeline, then the Avro profile beside it
#
# 1. A Docker engine: the running one, else a private one (Debian's docker.io, installed if
#    missing; data root $CHURNSTREAM_HOME/docker, so the layer cache survives; stopped by its pid
#    at the end). Docker Compose: the plugin, else built from its Go module (docker/validate.py).
# 2. The base image debian:bookworm-slim: pulled, else built from Debian's packages (debootstrap).
# 3. The images: the project image and, where the official Kafka and Elasticsearch images cannot
#    be pulled, the same versions from the project's stack image (docker/compose.no-registry.yml,
#    which also leaves Kibana out: no registry, no Kibana).
# 4. `up` with two indexers; every service healthy or completed in its order; no app container
#    runs as root; the job RUNNING with 0 restarts.
# 5. A seeded feed with its ledger, its event time closed; every index equals the recomputation
#    (`churnstream verify`); the two indexers share every result partition.
# 6. The Avro profile beside it: its job with 0 restarts (and the JSON job not restarted), a seeded
#    Avro feed through the Schema Registry, closed.
# 7. `kill taskmanager` in the middle of that feed, `start taskmanager`: both jobs restore their
#    latest checkpoint; every avro-churn index and every JSON index equals the recomputation.
# 8. `down -v`: no container, network or volume of the project left.
# One line per step, with the time; exit 0 only if every check passed. A throw-away .env of its own
# (random secrets) and its own host ports, so it never meets a local stack or a user's .env.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

EVENTS=${SMOKE_EVENTS:-20000}
TIMEOUT=${SMOKE_TIMEOUT:-600}   # seconds for each wait: healthy services, exact indices
PROJECT=${SMOKE_PROJECT:-churnstream-smoke}
HOME_DIR=${CHURNSTREAM_HOME:-$HOME/.cache/churnstream}
STARTED=$SECONDS

step() { printf '%s smoke [%4ds]: %s\n' "$(date +%H:%M:%S)" "$((SECONDS - STARTED))" "$*"; }
fail() { step "FAILED: $*"; exit 1; }

work=$(mktemp -d)
engine_pid=""
cleanup() {
    local rc=$?
    if [ -n "${compose_ready-}" ]; then
        [ "$rc" -eq 0 ] || { dc ps -a || true; dc logs --tail 30 2>/dev/null | tail -150 || true; }
        step "down -v"
        dc --profile avro down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    if [ -n "$engine_pid" ]; then
        step "stopping the private Docker engine (pid $engine_pid)"
        as_root kill "$engine_pid" 2>/dev/null || true
        for _ in $(seq 60); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 1; done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT   # a stopped run still takes its stack and its engine down (the EXIT trap)

# ------------------------------------------------------------------------------ 1. engine, compose
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then
    step "installing Docker from Debian's packages (docker.io)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
# (On a host with systemd the package starts its own engine: then that one is used.)
if docker info >/dev/null 2>&1; then
    step "using the running Docker engine ($(docker version --format '{{.Server.Version}}'))"
else
    # A short exec root: the engine's sockets live there, and a socket path has ~100 characters.
    exec_root=/run/churnstream-docker
    data_root=$HOME_DIR/docker/data
    as_root mkdir -p "$exec_root" "$data_root"
    export DOCKER_HOST=unix://$exec_root/docker.sock
    if [ -f "$exec_root/dockerd.pid" ] && kill -0 "$(cat "$exec_root/dockerd.pid")" 2>/dev/null; then
        fail "a private Docker engine (pid $(cat "$exec_root/dockerd.pid")) is already running: stop it first"
    fi
    step "starting a private Docker engine (data root $data_root)"
    # --group: the socket is this user's group's too, for a user who started it through sudo.
    as_root dockerd --data-root "$data_root" --exec-root "$exec_root" --host "$DOCKER_HOST" \
        --group "$(id -g)" --pidfile "$exec_root/dockerd.pid" >"$work/dockerd.log" 2>&1 &
    for _ in $(seq 60); do
        # The engine's own pid (not a wrapper's), as soon as it has one: cleanup stops it by that.
        [ -n "$engine_pid" ] || engine_pid=$(cat "$exec_root/dockerd.pid" 2>/dev/null || true)
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log"; fail "the private Docker engine did not start"; }
    engine_pid=$(cat "$exec_root/dockerd.pid")
    step "private Docker engine $(docker version --format '{{.Server.Version}}') up (pid $engine_pid)"
fi

if ! docker compose version >/dev/null 2>&1; then
    step "Docker Compose: building it from its Go module (once; cached in $HOME_DIR/tools)"
    compose_bin=$(python3 -c 'import importlib.util as u, sys
s = u.spec_from_file_location("validate", "docker/validate.py"); m = u.module_from_spec(s); s.loader.exec_module(m)
print(m.compose_binary(log=lambda *a: print(*a, file=sys.stderr)))')
    export DOCKER_CONFIG=$HOME_DIR/docker-config
    mkdir -p "$DOCKER_CONFIG/cli-plugins"
    ln -sf "$compose_bin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
fi
step "$(docker compose version)"

# ------------------------------------------------------------------------------ 2. base image
if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1 && ! docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
    step "debian:bookworm-slim cannot be pulled: building it from Debian's packages (debootstrap)"
    command -v debootstrap >/dev/null || { as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    rootfs=$work/rootfs
    as_root debootstrap --variant=minbase bookworm "$rootfs" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log"; fail "debootstrap failed"; }
    as_root tar -C "$rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
    as_root rm -rf "$rootfs"
fi

# ------------------------------------------------------------------------------ 3. images
env_file=$work/smoke.env
python3 docker/make_env.py --out "$env_file" >/dev/null
cat >>"$env_file" <<EOF
KAFKA_HOST_PORT=${SMOKE_KAFKA_PORT:-19094}
ES_HOST_PORT=${SMOKE_ES_PORT:-19200}
FLINK_UI_HOST_PORT=${SMOKE_FLINK_PORT:-18081}
SCHEMA_REGISTRY_HOST_PORT=${SMOKE_REGISTRY_PORT:-18085}
KIBANA_HOST_PORT=${SMOKE_KIBANA_PORT:-15601}
EOF
# shellcheck disable=SC1090
source "$env_file"
export CHURNSTREAM_PII_HASH_KEY="${PII_HASH_KEY}"   # passed to one-off containers by name only

files=(-f docker-compose.yml)
if docker image inspect apache/kafka:4.3.1 >/dev/null 2>&1 || docker pull -q apache/kafka:4.3.1 >/dev/null 2>&1; then
    step "the official images can be had: running docker-compose.yml as it is"
else
    files+=(-f docker/compose.no-registry.yml)
    step "no image registry: Kafka and Elasticsearch from the project's stack image, no Kibana (docker/compose.no-registry.yml)"
fi
dc() { docker compose --project-name "$PROJECT" --project-directory "$ROOT" "${files[@]}" --env-file "$env_file" "$@"; }
compose_ready=1

# A TLS-inspecting proxy's CA for the build stage only (docker/ca-certificates/README.md).
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$crt" ] && cp "$crt" docker/ca-certificates/
done

step "build (Docker's layer cache is kept between runs)"
build_started=$SECONDS
# Progress: the builder's step lines as they come; the whole output in a log shown on failure.
set +e
# The app image first, then the rest: built together, the two targets would run the same build
# stage twice at once; one after the other, the second takes it from the layer cache.
{ dc build jobmanager && dc --profile avro build; } 2>&1 | tee "$work/build.log" | grep --line-buffered -E '^(Step [0-9]+/[0-9]+ : (FROM|RUN)|Successfully tagged)' \
    | awk '{ print "    " substr($0, 1, 110); fflush() }'
built=${PIPESTATUS[0]}
set -e
[ "$built" -eq 0 ] || { tail -40 "$work/build.log"; fail "the build failed"; }
step "images built in $((SECONDS - build_started)) s: $(docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' 'churnstream/*' | tr '\n' ' ')"

# ------------------------------------------------------------------------------ 4. up, health, order
step "up with 2 indexers; the endless demo generator stays at 0 (this run feeds a seeded, verifiable load)"
dc up -d --no-build --scale indexer=2 --scale generator=0

wait_healthy() {   # every service of `dc ps` healthy (or one-shot exited 0), within TIMEOUT
    local deadline=$((SECONDS + TIMEOUT)) pending
    while :; do
        pending=$(dc ps -a --format '{{.Service}}|{{.State}}|{{.Health}}|{{.ExitCode}}' | awk -F'|' '
            !(($2 == "running" && ($3 == "healthy" || $3 == "")) || ($2 == "exited" && $4 == 0)) {print $1 "=" $2 "/" $3}
            $2 == "exited" && $4 != 0 {print "FAILED:" $1}' | sort -u | tr '\n' ' ')
        [ -z "$pending" ] && return 0
        case "$pending" in *FAILED:*) fail "a service failed: $pending";; esac
        [ $SECONDS -lt $deadline ] || fail "not healthy after ${TIMEOUT} s: $pending"
        sleep 5
    done
}
wait_healthy
step "every service healthy or completed: $(dc ps -a --format '{{.Service}}' | sort | uniq -c | awk '{printf "%s%s ", $2, ($1 > 1 ? "x" $1 : "")}')"

dc config --format json >"$work/config.json"
mapfile -t containers < <(dc ps -a -q)
docker inspect "${containers[@]}" >"$work/inspect.json"
python3 docker/smoke_checks.py order "$work/config.json" "$work/inspect.json" | tail -5 || fail "services started out of order"
python3 docker/smoke_checks.py root "$work/inspect.json" || fail "an app container runs as root"
app_services=(jobmanager taskmanager job indexer)
[ "${#files[@]}" -eq 4 ] && app_services+=(kafka elasticsearch)   # from the project's stack image here
uids=""
for service in "${app_services[@]}"; do
    uid=$(dc exec -T --index 1 "$service" id -u 2>/dev/null || true)
    [ -n "$uid" ] && [ "$uid" != 0 ] || fail "$service runs as uid '${uid}' (root, or not running)"
    uids+="$service=$uid "
done
step "no app process runs as root (id -u: ${uids})"

check() { dc exec -T --index 1 "$1" python docker/smoke_checks.py "${@:2}"; }
check job job jobmanager:8081 | tee "$work/job.json" || fail "the job is not running"
grep -q '"restarts": 0' "$work/job.json" || fail "the job restarted before any fault"

# ------------------------------------------------------------------------------ 5. exact
step "producing ${EVENTS} seeded events (late, duplicate, malformed and invalid ones among them), then closing their event time"
dc run --rm --no-deps -T generator churnstream generate --count "$EVENTS" --rate 4000 --eps 1000 \
    --seed 11 --start 1767225600000 --customers 1000 --late-rate 0.01 --duplicate-rate 0.005 \
    --malformed-rate 0.002 --invalid-rate 0.002 --format json --close >"$work/ledger.json" \
    || fail "the generator failed"
verify() {
    dc run --rm --no-deps -T -e CHURNSTREAM_PII_HASH_KEY indexer \
        churnstream verify --ledger /dev/stdin --wait "$TIMEOUT" <"$work/ledger.json"
}
verify || fail "an index differs from the recomputation"
step "every index equals the recomputation"
check indexer group churnstream-indexer 2 || fail "the two indexers do not share the result partitions"

# ------------------------------------------------------------------------------ 6, 7. Avro, TaskManager lost
# The Avro profile joins the running stack; its seeded feed is produced while the TaskManager, which
# runs both jobs, is killed and started again: both jobs restore their latest checkpoint and replay
# from it, and every index, JSON and Avro, must be exact afterwards (nothing lost, nothing doubled).
{
    step "the Avro profile: Schema Registry, avro topics, the Avro job, its indexer"
    restarts=$(grep -o '"restarts": [0-9]*' "$work/job.json")
    dc --profile avro up -d --no-build --scale indexer=2 --scale generator=0 --scale generator-avro=0
    wait_healthy
    check job job jobmanager:8081 | grep -q "$restarts," || fail "the JSON job restarted when the Avro one joined"
    avro() { dc --profile avro run --rm --no-deps -T -e CHURNSTREAM_PII_HASH_KEY indexer-avro "$@"; }
    avro python docker/smoke_checks.py job jobmanager:8081 | tee "$work/job-avro.json" || fail "the Avro job is not running"
    grep -q '"restarts": 0' "$work/job-avro.json" || fail "the Avro job restarted"
    checkpoints=$(grep -o '"completed_checkpoints": [0-9]*' "$work/job-avro.json" | grep -o '[0-9]*$')
    step "producing ${EVENTS} seeded Avro events through the Schema Registry (in the background), then closing their event time"
    dc --profile avro run --rm --no-deps -T generator-avro churnstream generate --count "$EVENTS" --rate 500 \
        --eps 1000 --seed 12 --start 1767225600000 --customers 1000 --late-rate 0.01 --duplicate-rate 0.005 \
        --format avro --schema-registry http://schema-registry:8085/apis/ccompat/v7 --close \
        >"$work/ledger-avro.json" 2>"$work/generator-avro.log" &
    generator=$!
    # Kill once the Avro job has checkpointed part of the feed, while the rest is still coming.
    deadline=$((SECONDS + TIMEOUT))
    until avro python docker/smoke_checks.py job jobmanager:8081 >"$work/job-avro.json" 2>>"$work/checks.log" \
            && [ "$(grep -o '"completed_checkpoints": [0-9]*' "$work/job-avro.json" | grep -o '[0-9]*$')" -gt "$checkpoints" ]; do
        [ $SECONDS -lt $deadline ] || { cat "$work/job-avro.json"; fail "the Avro job made no checkpoint"; }
        sleep 2
    done
    kill -0 "$generator" 2>/dev/null || fail "the Avro feed ended before the TaskManager could be killed mid-feed"
    step "kill taskmanager (SIGKILL) mid-feed, then start it again"
    dc kill taskmanager
    dc start taskmanager
    wait "$generator" || { cat "$work/generator-avro.log"; fail "the Avro generator failed"; }
    for job in json avro; do
        deadline=$((SECONDS + TIMEOUT))
        until { if [ $job = json ]; then check job job jobmanager:8081 --restored; else
                avro python docker/smoke_checks.py job jobmanager:8081 --restored; fi; } >"$work/job.json" 2>>"$work/checks.log" \
              && ! grep -q "$restarts," "$work/job.json" && ! grep -q '"restarts": 0,' "$work/job.json"; do
            [ $SECONDS -lt $deadline ] || { cat "$work/job.json"; fail "the $job job did not recover from its checkpoint"; }
            sleep 5
        done
        step "the $job job recovered: $(tail -1 "$work/job.json")"
    done
    wait_healthy
    avro churnstream verify --ledger /dev/stdin --wait "$TIMEOUT" <"$work/ledger-avro.json" \
        || fail "an avro-churn index differs from the recomputation"
    step "avro: every avro-churn index equals the recomputation, the TaskManager lost mid-feed"
    verify || fail "an index differs from the recomputation after the TaskManager was lost"
    step "every index still equals the recomputation"
}

# ------------------------------------------------------------------------------ 8. down -v
step "down -v"
dc --profile avro down -v --remove-orphans >/dev/null 2>&1
compose_ready=""
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" | wc -l)
nets=$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT" | wc -l)
vols=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | wc -l)
[ "$left$nets$vols" = 000 ] || fail "down -v left $left containers, $nets networks, $vols volumes"
step "down -v left no container, network or volume"
step "ok: built, healthy in order, no root, every index exact, indexers sharing, TaskManager loss survived ($((SECONDS - STARTED)) s)"
