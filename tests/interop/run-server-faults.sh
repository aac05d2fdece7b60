#!/bin/sh
# run-server-faults.sh: TinyBase 10.0.1 clients through tinysync-server
# with a client that stops reading and a server that is paused.
#
#   run-server-faults.sh NODE NPM SERVER_BINARY
#
# Installs the pinned npm packages (npm ci, once, under a lock) if needed,
# then runs server-faults.mjs, which prints TAP.
set -eu

node=$1
npm=$2
server=$3

here=$(cd "$(dirname "$0")" && pwd)

. "$here/npm-modules.sh"
if ! ts_ensure_node_modules "$here" "$npm"; then
  echo "1..0 # SKIP npm ci failed in $here (offline?)"
  exit 0
fi

exec "$node" "$here/server-faults.mjs" "$server"
