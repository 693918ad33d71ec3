#!/usr/bin/env bash
# Roll the gateway replicas to a new image tag, one at a time, with automatic rollback.
#
# usage: deploy/deploy.sh NEW_TAG
#
#  1. pull NEW_TAG for the gateway services
#  2. back up MongoDB (backup.sh --only mongo) — a bad migration can be undone
#  3. for each replica: recreate it on NEW_TAG, wait until /readyz answers inside it, reload
#     nginx (re-resolves the replica's new address on any nginx version)
#  4. if a replica never gets ready: put every replica already rolled back on the previous tag,
#     check them, reload nginx, exit 1 (exit 2 if the rollback itself is unhealthy)
#
# The previous tag is read from $KALEEM_STATE_DIR/current-tag (default deploy/.deploy-state),
# written after a successful deploy. The Ray cluster (ray-head, ray-worker) runs the same image
# but is not rolled here: actors hold live conversations; upgrade it in a maintenance window
# (or with KubeRay's RayService, which swaps clusters without downtime).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HEALTH_RETRIES="${HEALTH_RETRIES:-30}"
HEALTH_INTERVAL_S="${HEALTH_INTERVAL_S:-5}"
STATE_DIR="${KALEEM_STATE_DIR:-$DEPLOY_DIR/.deploy-state}"
READY_PROBE="import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=5).status == 200 else 1)"

wait_ready() {
  local svc="$1" i
  for ((i = 1; i <= HEALTH_RETRIES; i++)); do
    if compose exec -T "$svc" python -c "$READY_PROBE" > /dev/null 2>&1; then
      log "$svc ready"
      return 0
    fi
    sleep "$HEALTH_INTERVAL_S"
  done
  log "$svc not ready after $HEALTH_RETRIES checks"
  return 1
}

reload_nginx() {
  compose exec -T nginx nginx -s reload
}

roll() {
  local tag="$1" svc="$2"
  log "$svc -> $tag"
  KALEEM_TAG="$tag" compose up -d --no-deps --force-recreate "$svc"
}

rollback() {
  local prev="$1"
  shift
  local svc status=1 # 1: the deploy failed, the rollback is healthy; 2: rollback unhealthy
  log "ROLLBACK to $prev: $*"
  for svc in "$@"; do
    roll "$prev" "$svc"
    if ! wait_ready "$svc"; then
      status=2
      log "$svc is unhealthy on $prev too: manual intervention needed"
    fi
  done
  reload_nginx || status=2
  return "$status"
}

main() {
  [[ $# -eq 1 && -n "$1" ]] || die "usage: deploy.sh NEW_TAG"
  local new="$1" prev svc rolled=()
  mkdir -p "$STATE_DIR"
  prev="$(cat "$STATE_DIR/current-tag" 2> /dev/null || printf '%s' "${KALEEM_TAG:-latest}")"
  [[ "$new" != "$prev" ]] || log "note: $new is already the current tag; recreating anyway"
  log "deploying $new (previous: $prev)"

  # shellcheck disable=SC2086  # word splitting of the service list is intended
  KALEEM_TAG="$new" compose pull $GATEWAYS
  "$DEPLOY_DIR/backup.sh" --only mongo > /dev/null

  for svc in $GATEWAYS; do
    roll "$new" "$svc"
    rolled+=("$svc")
    if ! wait_ready "$svc"; then
      local status=0
      rollback "$prev" "${rolled[@]}" || status=$?
      log "ERROR: deploy of $new failed at $svc; rolled back to $prev"
      exit "$status"
    fi
    reload_nginx
  done
  printf '%s\n' "$new" > "$STATE_DIR/current-tag"
  log "deployed $new"
}

main "$@"
