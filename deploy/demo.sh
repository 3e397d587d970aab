#!/usr/bin/env bash
# `make demo`: the local stack, topics and tables, GEP + demux + the fulfillment and learning DEPs
# as separate processes, the two samples replayed onto the ingest topic (proctoring events, then a
# class's learning sessions), and the live state of fulfillments and of the class; then the OUS
# workflow: a simulation of a few dozen OUSs driven by the actor DEPs, and its board; it ends with
# the browser console's address (`da web`).
# The stages and the console keep running (supervised by `da up --web`) after it ends:
# `make demo-stop` stops them (`da down`), then Kafka, PostgreSQL and the schema registry
# (`da stack down`; the data stays).
set -euo pipefail
cd "$(dirname "$0")/.."
DA=.venv/bin/da
RUN=.da/demo
SAMPLE=data/sample/fulfillments.csv
LEARNING=data/sample/learning.jsonl
STACK_ENV=${DA_STATE_DIR:-.da}/stack.env
mkdir -p "$RUN"

if [ "${1:-}" = "stop" ]; then
    $DA down
    $DA stack down
    exit 0
fi

echo "== local stack: Kafka (KRaft), PostgreSQL, schema registry"
$DA stack up
echo "== topics and tables"
$DA topics ensure
$DA db migrate

echo "== starting every stage and the console under a supervisor (da up --web; logs in ${DA_STATE_DIR:-.da}/up/)"
$DA down >/dev/null
# The sample's events are from 2020: the console measures waits to the newest event, not to now.
export DA_CLOCK=${DA_CLOCK:-event}
$DA up --web | tail -n 3

rows=$(($(wc -l <"$SAMPLE") - 1))
echo "== replaying $rows proctoring events from $SAMPLE at 250 events/s"
# Its summary goes to the log: on a terminal it would cut through the live view below.
$DA emit "$SAMPLE" --rate 250 >"$RUN/emit.log" 2>&1 &
emit_pid=$!
if [ -t 1 ]; then
    $DA fulfillments --watch 10
else
    for _ in 1 2 3; do sleep 3; echo; $DA fulfillments; done
fi
wait "$emit_pid"
tail -n 1 "$RUN/emit.log"

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

lines=$(wc -l <"$LEARNING")
echo
echo "== replaying $lines raw learning messages from $LEARNING (log API 3.0, log writer,"
echo "   core-system content, EdMobile) at 100 messages/s"
$DA emit "$LEARNING" --rate 100
# The learning DEPs are caught up when nothing is parked and the applied DEs stop growing.
previous=""
for _ in $(seq 1 60); do
    sleep 1
    now=$($DA learning | head -n 1)
    [ "$now" = "$previous" ] && [[ "$now" == *"parked: 0" ]] && break
    previous=$now
done
echo
echo "== live state of the class (da learning)"
$DA learning
echo
echo "== the OUS workflow: 36 OUSs brought in as QA would, the dispatcher and pipeline driver"
echo "   take them on (da workflow simulate); the board: OUSs per state, the longest waiting"
$DA workflow simulate --ous 36 --seed "$(date +%s)" --wait 120
echo
echo "Tables: current_fulfillments, fulfillments_history, events, usage_metrics, content_catalog,"
echo "competency_stats, ous_status, ous_state_history, ous_rejections in schema '${DA_DATABASE_SCHEMA:-da}' of:"
grep DA_DATABASE_URL "$STACK_ENV"
echo
url="http://${DA_WEB_HOST:-127.0.0.1}:${DA_WEB_PORT:-8088}"
for _ in $(seq 1 30); do
    .venv/bin/python -c "import urllib.request as u; u.urlopen('$url/healthz', timeout=2)" \
        >/dev/null 2>&1 && break
    sleep 1
done
echo "The console (da web, DA_CLOCK=$DA_CLOCK) also shows $url/status, $url/workflow and $url/learning."
echo "The stages and the console keep running; \`make demo-stop\` stops them, Kafka, PostgreSQL and the registry."
echo "Next: put da on your PATH, then look around (from any folder of the checkout):"
echo "  source .venv/bin/activate"
echo "  da status; da fulfillments -o json; da learning; da dlq list; da --help"
echo "== the console: open $url/fulfillments"
