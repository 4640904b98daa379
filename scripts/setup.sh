#!/usr/bin/env bash
# Installs what dfs needs on a Debian 12 machine and builds it from this checkout:
# Debian packages, npm dependencies (npm ci), the TypeScript build and the FUSE addon,
# and a `dfs` command at /usr/local/bin/dfs. Run as root. Shared by the README's two
# commands and by .ci/run. Safe to run again.
#
#   bash scripts/setup.sh [--skip-apt] [--no-link]
#     --skip-apt   do not touch Debian packages (they are checked, not installed)
#     --no-link    do not create /usr/local/bin/dfs
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

skip_apt=0
link=1
for arg in "$@"; do
  case "$arg" in
    --skip-apt) skip_apt=1 ;;
    --no-link) link=0 ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done

# Debian packages. fuse3/libfuse3-dev: our N-API binding to libfuse3's low-level API
# (docs/decisions/0001-fuse-binding.md); libfuse2 is not needed. The rest are the build
# toolchain and the tools the integration tests drive on a real mount; chromium is the
# browser the console tests drive through playwright-core (docs/decisions/0013-console.md).
APT_PACKAGES=(
  fuse3 libfuse3-dev pkg-config build-essential python3
  ca-certificates git tar rsync attr acl util-linux procps kmod
  chromium
)

step_started=0
step() {
  step_name="$1"
  step_started=$(date +%s)
  echo "==> setup: $step_name"
}
step_done() {
  echo "<== setup: $step_name ($(( $(date +%s) - step_started ))s)"
}

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "setup: '$*' needs root (run setup.sh as root)" >&2; return 1
  fi
}

missing_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

step "Debian packages"
mapfile -t missing < <(missing_packages)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "all present: ${APT_PACKAGES[*]}"
elif [[ $skip_apt -eq 1 ]]; then
  echo "setup: missing Debian packages: ${missing[*]} (--skip-apt given)" >&2
  exit 1
else
  echo "installing: ${missing[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
step_done

step "Node.js"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: node and npm are required (Node.js >= 20 with its headers, e.g. the nodejs package" >&2
  echo "setup: from NodeSource; Debian 12's own nodejs is 18, which is too old)." >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "setup: Node.js $(node -v) is too old; dfs needs >= 20." >&2
  exit 1
fi
# node-gyp must build against local headers (nothing can be downloaded). If npm has no
# nodedir configured, point it at the running node's prefix when that has the headers.
nodedir="$(npm config get nodedir 2>/dev/null || true)"
if [[ -z "$nodedir" || "$nodedir" == "undefined" || "$nodedir" == "null" ]]; then
  prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  if [[ -f "$prefix/include/node/node_api.h" ]]; then
    export npm_config_nodedir="$prefix"
    nodedir="$prefix"
  fi
fi
echo "node $(node -v), npm $(npm -v), nodedir=${nodedir:-<none>}"
if [[ -z "$nodedir" || ! -f "$nodedir/include/node/node_api.h" ]]; then
  echo "setup: warning: no Node headers at '${nodedir:-}'/include/node; the FUSE addon build may try to download them" >&2
fi
step_done

step "/dev/fuse"
if [[ ! -e /dev/fuse ]]; then
  as_root modprobe fuse 2>/dev/null || true
fi
if [[ ! -e /dev/fuse ]]; then
  # The module may be built in while the device node is missing (some containers).
  as_root mknod -m 666 /dev/fuse c 10 229 2>/dev/null || true
fi
if [[ -e /dev/fuse ]]; then
  ls -l /dev/fuse
else
  echo "setup: warning: /dev/fuse is missing; mounting (dfs dev up, integration tests) will fail" >&2
fi
# Lets non-root users pass allow_other when they run `dfs mount` themselves.
if [[ -f /etc/fuse.conf ]] && ! grep -q '^[[:space:]]*user_allow_other' /etc/fuse.conf; then
  as_root sh -c 'echo user_allow_other >> /etc/fuse.conf' || true
fi
step_done

step "npm ci"
# Also builds the FUSE addon (package.json "install" script).
npm ci --no-audit --no-fund
step_done

step "npm run build"
npm run build
if [[ ! -f src/fuse/native/build/Release/dfs_fuse.node ]]; then
  echo "setup: the FUSE addon was not built (src/fuse/native/build/Release/dfs_fuse.node missing)" >&2
  exit 1
fi
node -e 'process.dlopen({ exports: {} }, process.argv[1]); console.log("FUSE addon loads:", process.argv[1])' \
  "$root/src/fuse/native/build/Release/dfs_fuse.node"
step_done

if [[ $link -eq 1 ]]; then
  step "dfs on PATH"
  # A wrapper, not a symlink: bin/dfs then finds dist/ the same way however it is written.
  wrapper="$(mktemp)"
  printf '#!/bin/sh\n# Installed by %q/scripts/setup.sh\nexec %q "$@"\n' "$root" "$root/bin/dfs" > "$wrapper"
  chmod 755 "$wrapper"
  as_root mv -f "$wrapper" /usr/local/bin/dfs
  echo "/usr/local/bin/dfs -> $root/bin/dfs"
  if [[ ! -x "$root/bin/dfs" ]]; then
    echo "setup: warning: $root/bin/dfs is missing or not executable" >&2
  fi
  step_done
fi

echo "setup: done"
