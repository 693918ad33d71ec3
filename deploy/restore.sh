#!/usr/bin/env bash
# Restore a backup made by backup.sh. Destructive: replaces the current data.
#
# usage: deploy/restore.sh BACKUP_DIR --yes [--only mongo|redis|vectors]...
#
# Order: verify SHA256SUMS (nothing is touched if a file is damaged) → stop the writers
# (gateways, Ray) → MongoDB (mongorestore --drop) → Redis (stop, replace dump.rdb, drop the AOF
# so Redis rebuilds it from the snapshot, start) → Qdrant (recover each collection from its
# snapshot) → start the writers again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WRITERS="${WRITERS:-$GATEWAYS ray-worker ray-head}"

restore_mongo() {
  local src="$1"
  log "mongodb: mongorestore --drop"
  mongo_tool mongorestore --drop < "$src/mongo.archive.gz"
}

restore_redis() {
  local src="$1"
  log "redis: replace dump.rdb"
  compose stop redis
  # With appendonly on, Redis loads the AOF and ignores dump.rdb: remove the AOF so Redis 7
  # loads the snapshot and writes a fresh AOF from it.
  compose run --rm --no-deps -T --entrypoint sh redis -c 'rm -rf /data/appendonlydir'
  compose cp "$src/redis.rdb" redis:/data/dump.rdb
  compose start redis
}

restore_vectors() {
  local src="$1" file coll
  log "qdrant: recover collections"
  for file in "$src"/qdrant/*.snapshot; do
    [[ -e "$file" ]] || continue
    coll="$(basename "$file" .snapshot)"
    compose cp "$file" "qdrant:/qdrant/snapshots/$coll/restore-$coll.snapshot"
    qdrant_tool recover "$coll" "/qdrant/snapshots/$coll/restore-$coll.snapshot"
  done
}

main() {
  local src="" yes=0 parts=() part
  while (($#)); do
    case "$1" in
      --yes) yes=1 && shift ;;
      --only)
        [[ $# -ge 2 ]] || die "--only needs mongo, redis or vectors"
        case "$2" in mongo | redis | vectors) parts+=("$2") ;; *) die "unknown part: $2" ;; esac
        shift 2
        ;;
      -h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" && exit 0 ;;
      -*) die "unknown option: $1" ;;
      *) src="$1" && shift ;;
    esac
  done
  [[ -n "$src" && -d "$src" ]] || die "usage: restore.sh BACKUP_DIR --yes [--only PART]..."
  ((yes)) || die "restore replaces the current data; pass --yes to confirm"
  ((${#parts[@]})) || parts=(mongo redis vectors)
  (cd "$src" && sha256sum --quiet -c SHA256SUMS) || die "checksum mismatch in $src: not restoring"
  for part in "${parts[@]}"; do
    case "$part" in
      mongo) [[ -s "$src/mongo.archive.gz" ]] || die "no mongo.archive.gz in $src" ;;
      redis) [[ -s "$src/redis.rdb" ]] || die "no redis.rdb in $src" ;;
      vectors) [[ -d "$src/qdrant" ]] || die "no qdrant/ in $src" ;;
    esac
  done
  log "stopping writers: $WRITERS"
  # shellcheck disable=SC2086  # word splitting of the service list is intended
  compose stop $WRITERS
  for part in "${parts[@]}"; do
    "restore_$part" "$src"
  done
  log "starting writers"
  # shellcheck disable=SC2086
  compose up -d $WRITERS
  log "restore complete from $src"
}

main "$@"
