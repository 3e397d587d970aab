#!/usr/bin/env bash
# `make demo`: the local stack, topics and tables, GEP + demux + the fulfillment DEP as separate
# processes, the sample replayed onto the ingest topic, and the live state of fulfillments.
# `deploy/demo.sh stop` stops the stage processes; `da stack down` stops Kafka and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
DA=.venv/bin/da
RUN=.da/demo
SAMPLE=data/sample/fulfillments.csv
mkdir -p "$RUN"

stop_stages() {
    for pidfile in "$RUN"/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            # A stage finishes and commits its batch, then leaves its group.
            for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
        rm -f "$pidfile"
    done
}

if [ "${1:-}" = "stop" ]; then stop_stages; echo "demo stages stopped"; exit 0; fi

echo "== local stack (Kafka 4.1.1 KRaft + PostgreSQL)"
$DA stack up
echo "== topics and tables"
$DA topics ensure
$DA db migrate

stop_stages
echo "== starting GEP, demux and the fulfillment-state DEP (logs in $RUN/)"
for stage in "gep run" "demux run" "dep run fulfillment-state"; do
    name=${stage%% *}
    # shellcheck disable=SC2086 # the stage words are separate arguments
    nohup $DA $stage >"$RUN/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
done
trap 'echo; echo "stopping the stages"; stop_stages' EXIT

rows=$(($(wc -l <"$SAMPLE") - 1))
echo "== replaying $rows proctoring events from $SAMPLE at 250 events/s"
$DA emit "$SAMPLE" --rate 250 -v >"$RUN/emit.log" &
emit_pid=$!
if [ -t 1 ]; then
    $DA fulfillments --watch 10
else
    for _ in 1 2 3; do sleep 3; echo; $DA fulfillments; done
fi
wait "$emit_pid"
tail -n 3 "$RUN/emit.log"

# The DEP is caught up when every distinct event of the sample is stored.
distinct=$(cut -d, -f1 "$SAMPLE" | tail -n +2 | sort -u | wc -l)
for _ in $(seq 1 60); do
    stored=$($DA fulfillments | sed -n 's/^events stored: \([0-9]*\).*/\1/p')
    [ "${stored:-0}" -ge "$distinct" ] && break
    sleep 1
done
echo
echo "== live state of the fulfillments ($stored of $distinct distinct events stored)"
$DA fulfillments
echo
echo "Tables: current_fulfillments, fulfillments_history, events in schema 'da' of:"
grep DA_DATABASE_URL .da/stack.env
echo "Stop the stack with: $DA stack down"
