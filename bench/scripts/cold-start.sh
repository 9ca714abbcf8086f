#!/usr/bin/env bash
# Embedded cold start: from launching ward on an empty data folder (initdb, migrations, demo
# data, secrets all made on the way) to the first answered GraphQL query, then a warm start on
# the same folder. Usage: bench/scripts/cold-start.sh [WARD_BIN] [RUNS]
set -euo pipefail
bin=${1:-target/release/ward}
runs=${2:-5}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d /tmp/ward-cold.XXXXXX)
chmod 755 "$dir"   # the embedded cluster runs as the postgres system user when ward runs as root

first_answer() {
  local start=$1
  # A query that reaches the database (as anon it finds nothing, but it runs under the policies).
  until curl -sf "http://127.0.0.1:$port/graphql" -H 'content-type: application/json' \
      -d '{"query":"{ ticketByTrackingNumber(trackingNumber: \"DEMO-2026-000001\") { id } }"}' \
      | grep -q '"ticketByTrackingNumber":null'; do
    sleep 0.01
  done
  echo $(( ($(date +%s%N) - start) / 1000000 ))
}

run() {
  local start pid ms
  start=$(date +%s%N)
  WARD_DATA_DIR="$dir/data" WARD_BIND="127.0.0.1:$port" WARD_LOG=warn "$bin" >/dev/null 2>&1 &
  pid=$!
  ms=$(first_answer "$start")
  kill -TERM "$pid"; wait "$pid" || true
  echo "$ms"
}

echo "| run | cold start ms (empty folder) | warm start ms (same folder) |"
echo "| --- | --- | --- |"
for i in $(seq 1 "$runs"); do
  rm -rf "$dir/data"
  cold=$(run)
  warm=$(run)
  echo "| $i | $cold | $warm |"
done
rm -rf "$dir"
