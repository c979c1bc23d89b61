#!/bin/sh
# A roundgate terminal in POSIX sh with curl: heartbeat, ready, long-poll the release, wait until
# the round's startAt, run COMMAND, report done, poll again with after = that round.
#
#   roundgate.sh [-u URL] [-g GROUP] [-i CLIENTID] [-n ROUNDS] [-w WAIT] [-r ROLE] -- COMMAND [ARG...]
#
# COMMAND runs once per round with RG_ROUND, RG_SHARD_INDEX, RG_SHARD_COUNT, RG_ROLE and
# RG_RELEASE (the path of the release JSON) in its environment. Its exit status is the round's `ok`
# (0: true), its standard output (up to 8 KiB) the round's `result`, as a string. Options default
# to RG_URL, RG_GROUP, RG_ID, RG_ROUNDS (0: for ever), RG_WAIT (30), RG_ROLE (small) and RG_TOKEN
# (a Bearer JWT, when authentication is on). See README.md beside this file.
set -u

URL=${RG_URL:-http://127.0.0.1:8080}
GROUP=${RG_GROUP:-}
ID=${RG_ID:-}
ROUNDS=${RG_ROUNDS:-0}
WAIT=${RG_WAIT:-30}
ROLE=${RG_ROLE:-small}

usage() {
  echo "usage: $0 [-u URL] [-g GROUP] [-i CLIENTID] [-n ROUNDS] [-w WAIT] [-r ROLE] -- COMMAND [ARG...]" >&2
  exit 2
}

while getopts u:g:i:n:w:r:h opt; do
  case $opt in
    u) URL=$OPTARG ;;
    g) GROUP=$OPTARG ;;
    i) ID=$OPTARG ;;
    n) ROUNDS=$OPTARG ;;
    w) WAIT=$OPTARG ;;
    r) ROLE=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ -n "$GROUP" ] && [ -n "$ID" ] && [ "$#" -gt 0 ] || usage
case $ROUNDS in ''|*[!0-9]*) echo "$0: -n must be a whole number" >&2; exit 2 ;; esac
case $WAIT in ''|*[!0-9]*) echo "$0: -w must be a whole number of seconds" >&2; exit 2 ;; esac
[ "$WAIT" -le 120 ] || WAIT=120
command -v curl >/dev/null 2>&1 || { echo "$0: curl is needed" >&2; exit 2; }

URL=${URL%/}
BASE="$URL/v1/groups/$GROUP"
umask 077
DIR=${TMPDIR:-/tmp}/roundgate-sh.$$
mkdir "$DIR" || exit 1
CURL_PID=
HB_PID=
cleanup() {
  [ -n "$HB_PID" ] && kill "$HB_PID" 2>/dev/null
  [ -n "$CURL_PID" ] && kill "$CURL_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
AUTH=/dev/null
if [ -n "${RG_TOKEN:-}" ]; then
  AUTH=$DIR/auth
  printf 'Authorization: Bearer %s\n' "$RG_TOKEN" >"$AUTH" # kept out of the process list
fi

log() { echo "roundgate.sh[$ID] $*" >&2; }

# json_get FILE PATH: the value at PATH (keys joined by ".", array positions as numbers), strings
# without their quotes; exit status 1 when absent. A small JSON reader in POSIX awk.
json_get() {
  awk -v want="$2" '
    function ws() { while (pos <= n && index(" \t\r\n", substr(s, pos, 1)) > 0) pos++ }
    function str(   out, c) {
      pos++; out = ""
      while (pos <= n) {
        c = substr(s, pos, 1)
        if (c == "\\") { out = out substr(s, pos, 2); pos += 2; continue }
        if (c == "\"") { pos++; return out }
        out = out c; pos++
      }
      return out
    }
    function val(path,   c, k, i, start) {
      ws(); c = substr(s, pos, 1)
      if (c == "{") {
        pos++; ws()
        if (substr(s, pos, 1) == "}") { pos++; return }
        for (;;) {
          ws(); k = str(); ws(); pos++
          val(path == "" ? k : path "." k)
          ws(); c = substr(s, pos, 1); pos++
          if (c != ",") return
        }
      }
      if (c == "[") {
        pos++; ws()
        if (substr(s, pos, 1) == "]") { pos++; return }
        for (i = 0; ; i++) {
          val(path == "" ? i : path "." i)
          ws(); c = substr(s, pos, 1); pos++
          if (c != ",") return
        }
      }
      if (c == "\"") { k = str(); if (path == want) { print k; found = 1 }; return }
      start = pos
      while (pos <= n && index(",}] \t\r\n", substr(s, pos, 1)) == 0) pos++
      if (path == want) { print substr(s, start, pos - start); found = 1 }
    }
    { s = s $0 "\n" }
    END { n = length(s); pos = 1; val(""); exit(found ? 0 : 1) }
  ' "$1"
}

# call METHOD PATH OUT [curl args...]: prints the HTTP status ("000" when unreachable)
call() {
  method=$1 path=$2 out=$3
  shift 3
  curl -sS -o "$out" -w '%{http_code}' -H @"$AUTH" -X "$method" "$@" "$BASE/$path" 2>"$DIR/curl.err"
}

post() { # post WHAT [curl -d args...]; the answer is in $DIR/answer
  what=$1
  shift
  status=$(call POST "$what" "$DIR/answer" --max-time 15 -d "clientId=$ID" "$@")
  [ "$status" = 200 ] && return 0
  log "$what: HTTP $status $(cat "$DIR/answer" "$DIR/curl.err" 2>/dev/null | head -c 300)"
  return 1
}

HB_S=10
announce() {
  post heartbeat -d "role=$ROLE" || return 1
  ms=$(json_get "$DIR/answer" heartbeatMs) && HB_S=$(( (ms + 999) / 1000 ))
  post ready -d "role=$ROLE"
}

# sleep_ms N: fractional sleep where sleep(1) takes one (GNU, busybox), whole seconds otherwise
sleep_ms() {
  [ "$1" -gt 0 ] || return 0
  sleep "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))" 2>/dev/null || sleep $(( ($1 + 999) / 1000 ))
}

stop() {
  trap - INT TERM
  [ -n "$CURL_PID" ] && kill "$CURL_PID" 2>/dev/null
  post leave >/dev/null 2>&1
  log "left"
  exit 130
}
trap stop INT TERM

# done for $round with $ok, and the command's output as the result when it printed anything
report_done() {
  if [ -s "$DIR/result" ]; then
    post done -d "round=$round" -d "ok=$ok" --data-urlencode "result@$DIR/result"
  else
    post done -d "round=$round" -d "ok=$ok"
  fi
}

backoff=1
trouble() {
  log "$1; again in ${backoff}s"
  sleep "$backoff"
  backoff=$(( backoff < 8 ? backoff * 2 : 10 ))
}

after=0
taken=0
announced=no
while [ "$ROUNDS" -eq 0 ] || [ "$taken" -lt "$ROUNDS" ]; do
  if [ "$announced" = no ]; then
    if announce; then announced=yes; backoff=1; else trouble "heartbeat/ready failed"; fi
    continue
  fi
  # the long-poll runs in the background so that a signal is handled at once
  call GET "release?clientId=$ID&after=$after&wait=$WAIT&role=$ROLE" "$DIR/release" \
    --max-time $((WAIT + 15)) -D "$DIR/headers" >"$DIR/status" &
  CURL_PID=$!
  wait "$CURL_PID"
  CURL_PID=
  status=$(cat "$DIR/status")
  case $status in
    200) ;;
    204) post ready -d "role=$ROLE" || announced=no; continue ;;
    *) trouble "release poll: HTTP $status $(head -c 300 "$DIR/release" "$DIR/curl.err" 2>/dev/null)"; announced=no; continue ;;
  esac

  round=$(json_get "$DIR/release" round) || { trouble "a release without a round"; continue; }
  # startAt and serverTime are both on the broker's clock: the wait needs no clock of ours
  if start_at=$(json_get "$DIR/release" startAt) && server_time=$(json_get "$DIR/release" serverTime); then
    delay=$((start_at - server_time))
    sleep_ms "$delay"
  fi
  RG_ROUND=$round
  RG_SHARD_INDEX=$(json_get "$DIR/release" shard.index || echo 0)
  RG_SHARD_COUNT=$(json_get "$DIR/release" shard.count || echo 1)
  RG_ROLE=$(json_get "$DIR/release" role || echo "$ROLE")
  RG_RELEASE=$DIR/release
  export RG_ROUND RG_SHARD_INDEX RG_SHARD_COUNT RG_ROLE RG_RELEASE
  log "round $round released (shard $RG_SHARD_INDEX of $RG_SHARD_COUNT)"

  # heartbeats while the command runs, so a long job does not make this terminal offline
  # (the flag file ends the loop even if the kill lands before the subshell drops the traps)
  : >"$DIR/working"
  (
    trap - INT TERM EXIT
    while sleep "$HB_S" && [ -e "$DIR/working" ]; do
      call POST heartbeat /dev/null --max-time 10 -d "clientId=$ID" >/dev/null
    done
  ) </dev/null >/dev/null 2>&1 &
  HB_PID=$!
  if "$@" >"$DIR/out"; then ok=true; else ok=false; fi
  rm -f "$DIR/working"
  kill "$HB_PID" 2>/dev/null
  HB_PID=

  head -c 8192 "$DIR/out" >"$DIR/result"
  tries=0
  until report_done; do
    # a refusal (stale round, not a participant) is final; an unreachable broker is tried again
    grep -q '"error"' "$DIR/answer" 2>/dev/null && break
    tries=$((tries + 1))
    [ "$tries" -lt 30 ] || break
    trouble "done for round $round not delivered"
  done
  taken=$((taken + 1))
  after=$round
  if [ "$ROUNDS" -eq 0 ] || [ "$taken" -lt "$ROUNDS" ]; then
    post ready -d "role=$ROLE" || announced=no
  fi
done
log "$taken round(s) done"
