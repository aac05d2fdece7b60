#!/bin/sh
# run-server-durability.sh: TinyBase 10.0.1 clients write through
# tinysync-server while it is killed and restarted.
#
#   run-server-durability.sh NODE NPM SERVER_BINARY [ROUNDS]
#
# Installs the pinned npm packages (npm ci, once, under a lock) if needed,
# then runs server-durability.mjs, which prints TAP.
set -eu

node=$1
npm=$2
server=$3
rounds=${4:-6}

here=$(cd "$(dirname "$0")" && pwd)

. "$here/npm-modules.sh"
if ! ts_ensure_node_modules "$here" "$npm"; then
  echo "1..0 # SKIP npm ci failed in $here (offline?)"
  exit 0
fi

exec "$node" "$here/server-durability.mjs" "$server" "$rounds"
