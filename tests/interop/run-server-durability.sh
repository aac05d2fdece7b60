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

installed() {
  [ -f "$here/node_modules/tinybase/package.json" ] &&
    [ -f "$here/node_modules/.package-lock.json" ] &&
    ! [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]
}
if ! installed; then
  if ! flock "$here" sh -c '
      cd "$1"
      [ -f node_modules/tinybase/package.json ] &&
        [ -f node_modules/.package-lock.json ] &&
        ! [ package-lock.json -nt node_modules/.package-lock.json ] &&
        exit 0
      "$2" ci --silent --no-audit --no-fund' sh "$here" "$npm" >&2; then
    echo "1..0 # SKIP npm ci failed in $here (offline?)"
    exit 0
  fi
fi

exec "$node" "$here/server-durability.mjs" "$server" "$rounds"
