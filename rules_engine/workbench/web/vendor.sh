#!/usr/bin/env bash
# Installs the workbench's charting library from package-lock.json (npm ci, no install scripts)
# and copies the files the pages load into ../static/vendor/, so the workbench needs no CDN.
# Run by `make setup` (only when package.json, the lockfile or this script changed) and by the
# Dockerfile's web stage.
#   vega, vega-lite, vega-embed: their UMD builds (classic <script>s that set window.vega,
#     window.vegaLite, window.vegaEmbed);
#   vega-interpreter: Vega's CSP-safe expression interpreter (an ES module), so the pages run
#     without 'unsafe-eval'; its one import (vega-util) is pointed at vega-util's own ES build,
#     copied beside it.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
out=../static/vendor
rm -rf "$out"
mkdir -p "$out/vega-util"
cp node_modules/vega/build/vega.min.js node_modules/vega-lite/build/vega-lite.min.js \
  node_modules/vega-embed/build/vega-embed.min.js "$out/"
cp node_modules/vega-util/build/*.js "$out/vega-util/"
sed "s#from 'vega-util';#from './vega-util/index.js';#" \
  node_modules/vega-interpreter/build/vega-interpreter.js >"$out/vega-interpreter.js"
if grep -q "from 'vega-util'" "$out/vega-interpreter.js"; then
  echo "vendor.sh: vega-interpreter's import of vega-util was not rewritten" >&2
  exit 1
fi
for package in vega vega-lite vega-embed vega-interpreter vega-util; do
  cp "node_modules/$package/LICENSE" "$out/LICENSE-$package"
done
# Which versions were copied (npm ci installed exactly the lockfile's).
node -e 'for (const p of ["vega", "vega-lite", "vega-embed", "vega-interpreter", "vega-util"])
  console.log(p, require(`./node_modules/${p}/package.json`).version)' >"$out/VERSIONS"
