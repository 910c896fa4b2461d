#!/usr/bin/env bash
# The main job, end to end on the embedded default, with nothing else installed: set up the venv,
# build the demo world (cached in .data/; minutes on two cores), start the embedded server, index
# its model hub, search it by text and by example images, and measure ProbeLog's top-1 over every
# concept of the hub. The ground-truth column is printed for the reader; the search itself never
# reads it. PROBELOG_WORLD and PROBELOG_WORLD_SCALE (tiny, demo, bench) choose another world.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${PROBELOG_WORLD_SCALE:-demo}
WORLD=${PROBELOG_WORLD:-.data/world-$SCALE-seed0}
STORE=${PROBELOG_DEMO_STORE:-.data/demo-store}
RUN=$(mktemp -d)
PROBELOG=.venv/bin/probelog

./scripts/setup.sh
# A world cached by an older checkout is rebuilt rather than refused.
"$PROBELOG" world build --scale "$SCALE" --seed 0 --out "$WORLD" --replace

echo "[demo] starting the embedded server (all five services in one process)" >&2
"$PROBELOG" serve --embedded --world "$WORLD" --store-url "file://$STORE" \
  --host 127.0.0.1 --port 0 --ready-file "$RUN/port" >"$RUN/server.log" 2>&1 &
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT
for _ in $(seq 600); do
  [ -s "$RUN/port" ] && break
  if ! kill -0 "$server" 2>/dev/null; then cat "$RUN/server.log" >&2; exit 1; fi
  sleep 0.2
done
[ -s "$RUN/port" ] || { echo "[demo] the server did not start; its log:" >&2; cat "$RUN/server.log" >&2; exit 1; }
ADDRESS=127.0.0.1:$(cat "$RUN/port")
echo "[demo] serving on $ADDRESS" >&2

"$PROBELOG" index --all --address "$ADDRESS"
"$PROBELOG" models --address "$ADDRESS"

# Three concepts the hub's models were trained on, and one example image of the first.
mapfile -t QUERIES < <(.venv/bin/python scripts/demo_queries.py "$WORLD" --count 3 --image "$RUN/example.png")
for query in "${QUERIES[@]}"; do
  echo
  "$PROBELOG" search "$query" --top-k 5 --address "$ADDRESS" --truth "$WORLD/ground_truth.json"
done
echo
echo "[demo] search by an example image of '${QUERIES[0]}':" >&2
"$PROBELOG" search --image "$RUN/example.png" --top-k 5 --address "$ADDRESS" --truth "$WORLD/ground_truth.json"
echo
.venv/bin/python scripts/demo_accuracy.py "$WORLD" --address "$ADDRESS"
