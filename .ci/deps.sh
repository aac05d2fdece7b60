#!/usr/bin/env bash
# Installs what tinysync needs on a Debian 12 machine, when it is missing.
# Sourced by .ci/run and examples/run. Needs root (or sudo) only when
# something is actually missing.
set -euo pipefail

TS_APT_PACKAGES=(
  meson ninja-build pkg-config gcc gettext
  libglib2.0-dev libjson-glib-dev libsoup-3.0-dev libsqlite3-dev
  gobject-introspection libgirepository1.0-dev
  python3-gi gjs gir1.2-json-1.0 gir1.2-soup-3.0
  valac glib-networking valgrind gi-docgen
  gir1.2-gtk-4.0 xvfb xauth imagemagick desktop-file-utils appstream
  nodejs npm
)

ts_missing_packages () {
  local missing=()
  for p in "${TS_APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      # node and npm may come from elsewhere than Debian
      case "$p" in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
      esac
      missing+=("$p")
    fi
  done
  echo "${missing[@]:-}"
}

ts_install_deps () {
  local missing
  missing=$(ts_missing_packages)
  if [ -n "$missing" ]; then
    echo "Installing: $missing" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
  fi
}
