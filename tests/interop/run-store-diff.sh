#!/bin/sh
# run-store-diff.sh: the live differential test of TsMergeableStore against
# the real tinybase 10.0.1.
#
#   run-store-diff.sh NODE NPM TEST_BINARY OUT_DIR [GTest args...]
#
# Installs the pinned npm packages (npm ci, once, under a lock) if needed,
# generates TS_DIFF_COUNT (default 400) random scripts from TS_DIFF_SEED
# (default 20240309; "random" picks one) with store-diff.mjs, then execs the
# C replay, which prints TAP.
set -eu

node=$1
npm=$2
test_binary=$3
out_dir=$4
shift 4

here=$(cd "$(dirname "$0")" && pwd)

seed=${TS_DIFF_SEED:-20240309}
if [ "$seed" = random ]; then
  seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' \n')
fi
count=${TS_DIFF_COUNT:-400}
echo "# store-differential: seed $seed, $count scripts (rerun with TS_DIFF_SEED=$seed)"

# npm ci must not run twice at once (parallel meson test runs, several build
# dirs): lock the package folder itself. The check is repeated under the lock;
# .package-lock.json is written last by npm, so its presence means complete.
. "$here/npm-modules.sh"
if ! ts_ensure_node_modules "$here" "$npm"; then
  echo "1..0 # SKIP npm ci failed in $here (offline?)"
  exit 0
fi

mkdir -p "$out_dir"
file="$out_dir/store-diff-$seed-$count.json"
"$node" "$here/store-diff.mjs" --seed "$seed" --count "$count" --out "$file.tmp" >&2
mv "$file.tmp" "$file"

TS_DIFF_FILE=$file
export TS_DIFF_FILE
exec "$test_binary" --tap "$@"
