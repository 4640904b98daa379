#!/usr/bin/env bash
# Checks systemd/dfs.service with `systemd-analyze verify` (skips, exit 0, when systemd
# is not installed) and systemd/dfs.json.example as JSON with only known keys.
# verify needs ExecStart's binary: /usr/local/bin/dfs (scripts/setup.sh puts it there).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

node -e '
  const known = ["dataDir","listen","http","mount","nodeId","connect","logLevel","chunkSizeBytes","attrTimeoutS","maxDirtyBytes","readCacheBytes","gcGraceMs"];
  const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const bad = Object.keys(c).filter(k => !known.includes(k));
  if (bad.length) { console.error("unknown keys:", bad.join(", ")); process.exit(1); }
  console.log("dfs.json.example: ok (" + Object.keys(c).join(", ") + ")");
' "$root/systemd/dfs.json.example"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze not installed: unit not verified"
  exit 0
fi
if [[ ! -x /usr/local/bin/dfs ]]; then
  echo "/usr/local/bin/dfs is missing: run scripts/setup.sh first (verify checks ExecStart's binary)" >&2
  exit 1
fi
# verify also loads the units named in After=/Wants=; their absence on a machine without
# systemd as PID 1 is not a fault of ours, so only lines about dfs.service count.
out="$(systemd-analyze verify "$root/systemd/dfs.service" 2>&1 || true)"
ours="$(grep -F 'dfs.service' <<<"$out" || true)"
if [[ -n "$ours" ]]; then
  echo "$ours" >&2
  exit 1
fi
echo "dfs.service: systemd-analyze verify ok"
