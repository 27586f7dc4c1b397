#!/usr/bin/env bash
# Make sure a Chromium for the browser tests (tests/ui) is at $CHROMIUM (default /usr/bin/chromium).
#
# Installs Debian's `chromium` package when it is missing and we are root (CI runs `make test` as
# root on a fresh machine). Never fails the build: when the install is impossible it says why, and
# the UI test then skips with that reason. Playwright's own browser download is not used on purpose
# (it needs a CDN this machine cannot reach); the test drives the system Chromium instead.
set -u

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "browser-deps: $CHROMIUM present ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "browser-deps: $CHROMIUM missing and not root: not installing (run 'sudo apt-get install -y chromium'); the UI tests will skip"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser-deps: $CHROMIUM missing and no apt-get on this machine: not installing; the UI tests will skip"
    exit 0
fi
echo "browser-deps: installing Debian's chromium (apt-get install -y chromium) ..."
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq; then
    echo "browser-deps: 'apt-get update' failed: chromium not installed; the UI tests will skip"
    exit 0
fi
if ! apt-get install -y -qq chromium >/tmp/ensure_chromium.log 2>&1; then
    echo "browser-deps: 'apt-get install chromium' failed (log: /tmp/ensure_chromium.log):"
    tail -n 5 /tmp/ensure_chromium.log | sed 's/^/    /'
    echo "browser-deps: the UI tests will skip"
    exit 0
fi
if [ -x "$CHROMIUM" ]; then
    echo "browser-deps: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
else
    echo "browser-deps: chromium package installed but $CHROMIUM is still missing; the UI tests will skip"
fi
exit 0
