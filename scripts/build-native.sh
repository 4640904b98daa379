#!/usr/bin/env bash
# Builds the FUSE addon (src/fuse/native -> build/Release/dfs_fuse.node) with node-gyp,
# against the headers of the Node that runs it, so nothing is downloaded.
#
# node-gyp downloads Node headers unless it is given --nodedir; this machine has no way
# to download them. npm passes npm_config_nodedir when the user's npm config sets it;
# otherwise we use the prefix of the running node when it ships include/node/node_api.h
# (Debian/NodeSource packages: /usr; official tarballs and nvm: their own prefix).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
native="$root/src/fuse/native"

nodedir="${npm_config_nodedir:-}"
if [[ -z "$nodedir" || "$nodedir" == "undefined" || ! -f "$nodedir/include/node/node_api.h" ]]; then
  node_bin="$(readlink -f "$(command -v node)")"
  prefix="$(dirname "$(dirname "$node_bin")")"
  if [[ -f "$prefix/include/node/node_api.h" ]]; then
    nodedir="$prefix"
  elif [[ -f /usr/include/node/node_api.h ]]; then
    nodedir=/usr
  else
    echo "build-native: no Node headers found (looked in $prefix/include/node and /usr/include/node)." >&2
    echo "build-native: install the headers that match $(node -v) (Debian: the nodejs package ships them)." >&2
    exit 1
  fi
fi

if ! pkg-config --exists fuse3; then
  echo "build-native: pkg-config cannot find fuse3; install libfuse3-dev and pkg-config (scripts/setup.sh does)." >&2
  exit 1
fi

# npm sets npm_config_node_gyp to its bundled node-gyp inside lifecycle scripts.
if [[ -n "${npm_config_node_gyp:-}" && -f "${npm_config_node_gyp}" ]]; then
  gyp=(node "$npm_config_node_gyp")
elif command -v node-gyp >/dev/null 2>&1; then
  gyp=(node-gyp)
else
  npm_cli="$(readlink -f "$(command -v npm)")"
  bundled="$(dirname "$(dirname "$npm_cli")")/node_modules/node-gyp/bin/node-gyp.js"
  if [[ ! -f "$bundled" ]]; then
    echo "build-native: node-gyp not found (neither on PATH nor bundled with npm at $bundled)." >&2
    exit 1
  fi
  gyp=(node "$bundled")
fi

echo "build-native: node $(node -v), nodedir=$nodedir, fuse3 $(pkg-config --modversion fuse3)"
exec "${gyp[@]}" rebuild --directory="$native" --nodedir="$nodedir"
