#!/usr/bin/env bash
# Back up the stateful stores of the compose stack into one timestamped directory:
#   mongo.archive.gz  mongodump --archive --gzip (all databases), streamed out of the container
#   redis.rdb         BGSAVE, wait for LASTSAVE to move, copy dump.rdb (streams, dedupe keys)
#   qdrant/<c>.snapshot  one Qdrant collection snapshot per collection (snapshot API)
#   SHA256SUMS        checked by restore.sh before it touches anything
#
# usage: deploy/backup.sh [--only mongo|redis|vectors]...
#   BACKUP_DIR (default deploy/backups) is where the timestamped directory goes; the path of
#   the new backup is printed on stdout. Credentials never pass through this script: the
#   dump/CLI commands read them from the containers' own environment.
set -euo pipefail
# Dumps hold every tenant's records and messages: files 0600, directories 0700.
umask 077
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_SAVE_WAIT_S="${REDIS_SAVE_WAIT_S:-120}"

backup_mongo() {
  local dest="$1"
  log "mongodb: mongodump"
  mongo_tool mongodump > "$dest/mongo.archive.gz"
  [[ -s "$dest/mongo.archive.gz" ]] || die "mongodump produced an empty archive"
}

redis_cli() {
  # shellcheck disable=SC2016
  compose exec -T redis sh -c 'exec redis-cli -a "$REDIS_PASSWORD" --no-auth-warning "$@"' \
    redis-cli "$@"
}

backup_redis() {
  local dest="$1" before now i
  log "redis: BGSAVE"
  before="$(redis_cli LASTSAVE)"
  redis_cli BGSAVE > /dev/null || true # "already in progress" still moves LASTSAVE
  now="$before"
  for ((i = 0; i < REDIS_SAVE_WAIT_S; i++)); do
    now="$(redis_cli LASTSAVE)"
    [[ "$now" != "$before" ]] && break
    sleep "${REDIS_POLL_S:-1}"
  done
  [[ "$now" != "$before" ]] || die "redis BGSAVE did not finish within ${REDIS_SAVE_WAIT_S}s"
  compose cp redis:/data/dump.rdb "$dest/redis.rdb"
}

backup_vectors() {
  local dest="$1" coll snap
  log "qdrant: collection snapshots"
  mkdir -p "$dest/qdrant"
  qdrant_tool snapshot > "$dest/qdrant/index.tsv"
  while IFS=$'\t' read -r coll snap; do
    [[ -n "$coll" ]] || continue
    compose cp "qdrant:/qdrant/snapshots/$coll/$snap" "$dest/qdrant/$coll.snapshot"
    qdrant_tool delete "$coll" "$snap"
  done < "$dest/qdrant/index.tsv"
}

main() {
  local parts=() arg dest
  while (($#)); do
    arg="$1"
    case "$arg" in
      --only)
        [[ $# -ge 2 ]] || die "--only needs mongo, redis or vectors"
        case "$2" in mongo | redis | vectors) parts+=("$2") ;; *) die "unknown part: $2" ;; esac
        shift 2
        ;;
      -h | --help)
        sed -n '2,13p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
      *) die "unknown argument: $arg" ;;
    esac
  done
  ((${#parts[@]})) || parts=(mongo redis vectors)
  dest="${BACKUP_DIR:-$DEPLOY_DIR/backups}/$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$dest"
  for part in "${parts[@]}"; do
    "backup_$part" "$dest"
  done
  (cd "$dest" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum) \
    > "$dest/SHA256SUMS"
  log "backup complete: $dest"
  printf '%s\n' "$dest"
}

main "$@"
