#!/usr/bin/env bash
# Makes sure Debian's Chromium is there for the browser test. The test never downloads a
# browser: playwright-core only drives the one at /usr/bin/chromium.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
