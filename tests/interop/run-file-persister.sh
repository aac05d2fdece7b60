#!/bin/sh
# run-file-persister.sh: TsFilePersister against the real tinybase 10.0.1
# file persister.
#
#   run-file-persister.sh NODE NPM TEST_BINARY [GTest args...]
#
# Installs the pinned npm packages (npm ci, once, under a lock, as
# run-store-diff.sh does) if needed, then execs the C test, which runs
# file-persister.mjs itself and prints TAP.
set -eu

node=$1
npm=$2
test_binary=$3
shift 3

here=$(cd "$(dirname "$0")" && pwd)

. "$here/npm-modules.sh"
if ! ts_ensure_node_modules "$here" "$npm"; then
  echo "1..0 # SKIP npm ci failed in $here (offline?)"
  exit 0
fi

TS_NODE=$node
TS_FILE_PERSISTER_SCRIPT=$here/file-persister.mjs
export TS_NODE TS_FILE_PERSISTER_SCRIPT
exec "$test_binary" --tap "$@"
