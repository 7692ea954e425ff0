#!/usr/bin/env bash
# Make sure the system programs the tests need are installed (Debian/Ubuntu):
#   chromium + chromedriver  (dash_duo browser tests)
#   PostgreSQL server        (initdb/pg_ctl for the throwaway test server; not needed with TEST_DATABASE_URL)
#   redis-server             (cache tests)
# Fast and silent when everything is present; installs what is missing with apt-get when root;
# otherwise names the missing packages and exits 1. Starts nothing: the tests start their own servers.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ]; }

have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)
if [ -z "${TEST_DATABASE_URL:-}" ] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    missing+=(postgresql)
fi
have redis-server || missing+=(redis-server)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_services: missing system packages: ${missing[*]}" >&2
    echo "ensure_services: install them as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_services: missing ${missing[*]} and no apt-get on this machine; install them by hand" >&2
    exit 1
fi

echo "ensure_services: installing ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 -q)
apt-get "${apt_opts[@]}" update
apt-get "${apt_opts[@]}" install -y "${missing[@]}" </dev/null

# Check again: a package that installed but left the program missing is an error here, not a
# confusing failure in the middle of the test run.
still=()
have chromium || still+=(chromium)
have chromedriver || still+=(chromium-driver)
if [ -z "${TEST_DATABASE_URL:-}" ] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    still+=(postgresql)
fi
have redis-server || still+=(redis-server)
if [ "${#still[@]}" -ne 0 ]; then
    echo "ensure_services: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "ensure_services: installed ${missing[*]}" >&2
