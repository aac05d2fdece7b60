# npm-modules.sh: sourced by the run-*.sh scripts of the interop tests.
#
# ts_ensure_node_modules DIR NPM installs the packages pinned in
# DIR/package-lock.json (tinybase 10.0.1, ws 8) with `npm ci`, once and
# under a lock so that parallel tests do not run it twice. Returns
# non-zero when that fails (for example offline).

ts_node_modules_current () {
  [ -f "$1/node_modules/tinybase/package.json" ] &&
    [ -f "$1/node_modules/ws/package.json" ] &&
    [ -f "$1/node_modules/.package-lock.json" ] &&
    ! [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]
}

ts_ensure_node_modules () {
  ts_node_modules_current "$1" && return 0
  flock "$1" sh -c '
      . "$1/npm-modules.sh"
      ts_node_modules_current "$1" && exit 0
      cd "$1" && "$2" ci --silent --no-audit --no-fund' sh "$1" "$2" >&2
}
