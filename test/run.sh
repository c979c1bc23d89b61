#!/usr/bin/env bash
# `npm test`: install what the tests need if it is missing (as root, through apt-get), build, and
# run every test file under tap. Extra arguments go to tap (e.g. a single dist/test/x.test.js).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
# the dashboard tests drive Debian's Chromium (test/helpers/browser.ts); without it they fail
[ -x /usr/bin/chromium ] || missing+=(chromium)
# the terminals outside Node (test/clients-*.test.ts) and the unit check (test/systemd.test.ts)
if command -v lua5.4 >/dev/null 2>&1; then
  lua5.4 -e 'require("socket.http")' >/dev/null 2>&1 || missing+=(lua-socket)
  lua5.4 -e 'require("cjson")' >/dev/null 2>&1 || lua5.4 -e 'require("dkjson")' >/dev/null 2>&1 || missing+=(lua-cjson)
else
  missing+=(lua5.4 lua-socket lua-cjson)
fi
# Debian's own python3 (a pyenv python3 first on PATH does not see Debian's packages)
/usr/bin/python3 -c 'import paho.mqtt.client' >/dev/null 2>&1 || missing+=(python3-paho-mqtt)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "test/run.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # other work on the machine may hold the dpkg lock for a while: wait for it
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
  else
    echo "test/run.sh: missing ${missing[*]}; install them (as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# lint first: a problem fails the run before any test
npx eslint --max-warnings 0 .
npm run --silent build

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(dist/test/*.test.js)
fi
# --timeout: one file's limit; the kill -9 test (100 restarts of a real broker process, ~2-4 min on
# an idle 2-core machine, 12 min under a load average of 15) needs more than the 4 minutes others do
exec npx tap --disable-coverage --reporter=tap --jobs=2 --timeout=900 "${files[@]}"
