#!/usr/bin/env bash
# Makes sure Debian's headless-capable `chromium` is installed, with fonts for
# legible screenshots, and that the end-to-end tests' npm dependency
# (playwright-core, pinned in e2e/package-lock.json; it drives the installed
# browser and downloads none) is in e2e/node_modules. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "--- installing chromium from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version | head -n 1

if [ ! -d e2e/node_modules/playwright-core ]; then
  echo "--- npm ci (e2e)"
  (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
node -e 'console.log("playwright-core " + require("./e2e/node_modules/playwright-core/package.json").version)'
