#!/usr/bin/env bash
# Make sure the system programs some tests drive are installed (Debian packages):
#   - chromium: the browser test (tests/ui), at $CHROMIUM (default /usr/bin/chromium)
#   - nginx: the dnn-regressor's `serve` with nginx in front of gunicorn, as in the image
#   - the shellcheck linter, for the shell scripts (scripts/push_images.sh)
#   - postgresql and redis-server: `make up EXECUTOR=celery` (scripts/up.py) runs them as its metadata
#     database and Celery broker, and its test (tests/e2e/test_celery_deployment.py)
#   - bubblewrap (bwrap) and socat: localmaker's `runtime: sandbox` (localmaker/sandbox.py), which runs
#     container programs in their own /opt/ml, /opt/program and port 8080 (socat relays to it)
#
# Installs the missing ones in one apt-get call when we are root (CI runs `make test` as root on
# a fresh machine). Never fails the build: when the install is impossible it says why, and the
# tests that need a missing program then skip with that reason. Package scripts are kept from
# starting services (no nginx on port 80, no PostgreSQL or Redis server left running: `make up`
# starts its own, with data under its home). Playwright's own browser download is
# not used on purpose (it needs a CDN this machine cannot reach); the UI test drives the system
# Chromium instead.
set -u

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
LOG=/tmp/ensure_system_deps.log

missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
postgres_bin() { compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n 1; }
[ -n "$(postgres_bin)" ] || command -v postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v socat >/dev/null 2>&1 || missing+=(socat)

if [ ${#missing[@]} -eq 0 ]; then
    echo "system-deps: chromium, nginx, shellcheck, postgresql, redis-server, bubblewrap and socat present"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "system-deps: missing ${missing[*]} and not root: not installing (run 'sudo apt-get install -y ${missing[*]}'); tests needing them will skip"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]} and no apt-get on this machine: not installing; tests needing them will skip"
    exit 0
fi
echo "system-deps: installing Debian's ${missing[*]} (apt-get install -y) ..."
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
fi
trap 'if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
if ! apt-get update -qq >"$LOG" 2>&1; then
    echo "system-deps: 'apt-get update' failed (log: $LOG); tests needing ${missing[*]} will skip"
    exit 0
fi
if ! apt-get install -y -qq "${missing[@]}" >>"$LOG" 2>&1; then
    echo "system-deps: 'apt-get install ${missing[*]}' failed (log: $LOG):"
    tail -n 5 "$LOG" | sed 's/^/    /'
    echo "system-deps: tests needing them will skip"
    exit 0
fi
for program in "${missing[@]}"; do
    case "$program" in
        chromium) found="$CHROMIUM" ;;
        nginx) found="$(command -v nginx || echo /usr/sbin/nginx)" ;;
        postgresql) found="$(postgres_bin)" ;;
        bubblewrap) found="$(command -v bwrap || true)" ;;
        *) found="$(command -v "$program" || true)" ;;
    esac
    if [ -n "$found" ] && [ -x "$found" ]; then
        echo "system-deps: installed $program ($found)"
    else
        echo "system-deps: $program package installed but the program is still missing; tests needing it will skip"
    fi
done
exit 0
