# shellcheck shell=bash
# Shared by deploy.sh, backup.sh and restore.sh: one way to call compose, log and fail.
DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMPOSE_FILE="${COMPOSE_FILE:-$DEPLOY_DIR/docker-compose.yml}"
GATEWAYS="${GATEWAYS:-gateway-1 gateway-2}"

compose() {
  docker compose -f "$COMPOSE_FILE" "$@"
}

log() {
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# Runs stdlib Python in a one-off container of the gateway service: it has QDRANT_URL and the
# compose network, and works while the gateways themselves are stopped (restore).
qdrant_tool() {
  compose run --rm --no-deps -T --entrypoint python gateway-1 - "$@" \
    < "$DEPLOY_DIR/qdrant_snapshots.py"
}

# Runs a MongoDB tool (mongodump, mongorestore) in the mongodb container with the root
# credentials from the container's own environment; arguments follow the tool's name.
mongo_tool() {
  # shellcheck disable=SC2016  # expanded by the container's shell, from its environment
  compose exec -T mongodb sh -c 'exec "$0" --quiet --archive --gzip "$@" \
      --username "$MONGO_INITDB_ROOT_USERNAME" --password "$MONGO_INITDB_ROOT_PASSWORD" \
      --authenticationDatabase admin' "$@"
}
