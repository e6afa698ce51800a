#!/usr/bin/env bash
# The compose stack end to end, on a machine with Docker and Compose v2:
# build, up (two indexers), wait for every healthcheck, produce a few thousand events, check every
# index through Elasticsearch (as `elastic`, with the throw-away password) and the dashboard through
# Kibana, then `down -v`. One line per step; exit 0 only if every index has documents.
#
#   docker/smoke.sh          (the first build takes several minutes)
#
# It uses a throw-away .env of its own (random secrets) and removes the stack and its volumes at
# the end, pass or fail. Our development machines reach no image registry, so it has not run there
# (README, "Docker"); the Flink part of its path is tested as real processes by
# tests/test_session_cluster.py.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${SMOKE_EVENTS:-5000}
TIMEOUT=${SMOKE_TIMEOUT:-900}     # seconds for the stack to become healthy, and again for the documents

step() { printf '%s smoke: %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { step "FAILED: $*"; exit 1; }
env_file=$(mktemp)
dc() { docker compose --project-name churnstream-smoke --env-file "$env_file" "$@"; }
cleanup() { step "down -v"; dc down -v --remove-orphans >/dev/null 2>&1 || true; rm -f "$env_file"; }
trap cleanup EXIT

python3 docker/make_env.py --out "$env_file" >/dev/null
# shellcheck disable=SC1090
source "$env_file"
[ -n "${ELASTIC_PASSWORD-}" ] || fail "make_env.py wrote no ELASTIC_PASSWORD"
INDEXERS=${SMOKE_INDEXERS:-2}

step "build"
dc build --quiet

step "up with ${INDEXERS} indexers (every service gated on the health of what it needs)"
dc up -d --scale indexer="$INDEXERS"

step "waiting for the job service to be healthy (job RUNNING, all tasks up, no restarts)"
deadline=$((SECONDS + TIMEOUT))
until [ "$(docker inspect --format '{{.State.Health.Status}}' "$(dc ps -q job)" 2>/dev/null)" = healthy ]; do
    [ $SECONDS -lt $deadline ] || { dc ps; fail "the job was not healthy after ${TIMEOUT} s"; }
    sleep 5
done

running=$(dc ps --status running -q indexer | wc -l)
[ "$running" -eq "$INDEXERS" ] || { dc ps; fail "${running} of ${INDEXERS} indexers are running"; }
step "${running} indexers running"

step "producing ${EVENTS} events (1% malformed, so that dead letters exist too)"
dc run --rm --no-deps generator churnstream generate --count "$EVENTS" --rate 2000 --eps 200 \
    --seed 1 --malformed-rate 0.01 --format json

deadline=$((SECONDS + TIMEOUT))
es() { curl -fsS -u "elastic:${ELASTIC_PASSWORD}" "http://127.0.0.1:${ES_HOST_PORT:-9200}$1"; }
indices=$(dc exec -T job python -c 'from foundation.settings import Settings
from foundation.catalog import index_names
print(*index_names(Settings.from_env()).values())')
for index in $indices; do
    count=0
    until [ "$count" -gt 0 ]; do
        es "/${index}/_refresh" >/dev/null 2>&1 || true
        count=$(es "/${index}/_count" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])' || echo 0)
        [ "$count" -gt 0 ] || [ $SECONDS -lt $deadline ] || fail "${index} has no documents"
        [ "$count" -gt 0 ] || sleep 5
    done
    step "${index}: ${count} documents"
done

step "waiting for kibana-setup (data views + dashboard imported into Kibana)"
until [ "$(docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$(dc ps -a -q kibana-setup)" 2>/dev/null)" = "exited 0" ]; do
    [ $SECONDS -lt $deadline ] || { dc logs kibana-setup | tail -20; fail "kibana-setup did not complete"; }
    sleep 5
done
# Export the dashboard with everything it references (Kibana's saved objects export API).
exported=$(curl -fsS -u "elastic:${ELASTIC_PASSWORD}" -H 'kbn-xsrf: smoke' -H 'Content-Type: application/json' \
    -d '{"objects":[{"type":"dashboard","id":"churnstream-customer-churn"}],"includeReferencesDeep":true}' \
    "http://127.0.0.1:${KIBANA_HOST_PORT:-5601}/api/saved_objects/_export") || fail "the dashboard is not in Kibana"
step "Kibana exports the dashboard with $(grep -c '"type":"lens"' <<<"$exported") Lens panels"
step "ok: every index has documents, the dashboard is in Kibana"
