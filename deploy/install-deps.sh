#!/bin/sh
# System dependencies of the local stack (`da stack up`) on Debian/Ubuntu, then the Kafka jars
# and the schema registry.
# Idempotent: installs only what is missing, and `apt-get update` runs only when something is.
# Run as root (as `make test` and `make demo` do on a fresh machine) or through sudo.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    as_root="__none__"
fi

has_pg_server() {
    command -v initdb >/dev/null 2>&1 && return 0
    for bin in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$bin" ] && return 0
    done
    return 1
}

missing=""
# Extra tools named on the command line (e.g. `wrk` for `make bench`), installed when missing.
for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
has_pg_server || missing="$missing postgresql"
command -v java >/dev/null 2>&1 || missing="$missing openjdk-17-jre-headless"
command -v mvn >/dev/null 2>&1 || missing="$missing maven"
# promtool checks every stage's /metrics and the alert rules in the suite.
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
# Node and npm: the outside-subscriber test runs examples/subscribers/node.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
# Headless Chromium: the web console's browser tests drive it through Playwright (whose own
# browser downloads are never used).
[ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || missing="$missing chromium"

if [ -n "$missing" ]; then
    if [ "$as_root" = "__none__" ]; then
        echo "install-deps: missing:$missing; rerun as root (or install sudo)" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-deps: missing:$missing; install them with your package manager" >&2
        exit 1
    fi
    echo "install-deps: installing$missing"
    $as_root apt-get update -qq
    # shellcheck disable=SC2086 # $missing is a list of package names
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends $missing
else
    echo "install-deps: postgresql, java, maven, promtool, npm and chromium already installed"
fi

# The Node subscriber's packages, exactly as locked (from the npm registry; no install scripts).
node_dir="$repo/examples/subscribers/node"
if [ ! -d "$node_dir/node_modules/kafkajs" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules" ]; then
    (cd "$node_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
fi


# Same code path as `da stack up`: the jars land in the shared cache once, guarded by a marker.
python=${PYTHON:-}
if [ -z "$python" ]; then
    if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
if "$python" -c "import confluent_kafka" >/dev/null 2>&1; then
    # The Kafka jars and the schema registry of the local stack.
    cd "$repo" && PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m cli.stack fetch
else
    echo "install-deps: no project virtualenv yet; the Kafka jars will be fetched by the first" \
         "\`da stack up\`"
fi
