#!/bin/sh
# run-ws-server.sh: real TinyBase 10.0.1 clients against TsWsServer.
#
#   run-ws-server.sh NODE NPM RELAY_BINARY
#
# Installs the pinned npm packages (npm ci, once, under a lock; the same
# check as run-store-diff.sh) if needed, then runs ws-server.mjs, which
# prints TAP.
set -eu

node=$1
npm=$2
relay=$3

here=$(cd "$(dirname "$0")" && pwd)

. "$here/npm-modules.sh"
if ! ts_ensure_node_modules "$here" "$npm"; then
  echo "1..0 # SKIP npm ci failed in $here (offline?)"
  exit 0
fi

exec "$node" "$here/ws-server.mjs" "$relay"
