# Shared by scripts/load-extender, scripts/load-soak and scripts/reliability (sourced, not
# run): installing wrk, ports, the wrk request script, wrk runs, process samples, and the
# load-case runner. Figures are computed by scripts/reliability.d/figures.py.
#
# The sourcing script sets `set -euo pipefail`, cds to the repository root, and calls
# `lib_init` once; every process started through `lib_spawn` is killed on exit.

lib_dir="scripts/reliability.d"

# lib_init: a work directory ($work) removed on exit, with the processes lib_spawn started.
lib_init() {
  work="$(mktemp -d)"
  lib_pids=()
  trap lib_cleanup EXIT
}

lib_cleanup() {
  local p
  for p in "${lib_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${lib_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  lib_pids=()
  rm -rf "$work"
}

# lib_spawn CMD...: starts CMD in the background; its pid is in $spawned.
lib_spawn() {
  "$@" &
  spawned=$!
  lib_pids+=("$spawned")
}

# lib_stop PID: kills and reaps one process lib_spawn started (and forgets it).
lib_stop() {
  kill "$1" 2>/dev/null || true
  lib_wait "$1" 2>/dev/null
}

# need_wrk: wrk from Debian, installed only when missing.
need_wrk() {
  command -v wrk >/dev/null 2>&1 && return
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
}

# release_bin NAME: path of a release binary (CARGO_TARGET_DIR honoured).
release_bin() { echo "${CARGO_TARGET_DIR:-target}/release/$1"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_http URL: until URL answers 2xx (20 s at most).
wait_http() {
  local _
  for _ in $(seq 200); do curl -sf "$1" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "no answer from $1" >&2
  return 1
}

# wrk's request script. REQS="PATH=FILE,PATH=FILE,..." — each connection cycles through
# these POSTs (JSON bodies read once per thread). DELAY_MS > 0 paces each connection:
# wrk waits that long after every response before the next request.
lib_lua() {
  cat > "$work/post.lua" <<'LUA'
local reqs, i = {}, 0
local pause = tonumber(os.getenv("DELAY_MS") or "0")
function init(args)
  for spec in string.gmatch(os.getenv("REQS"), "[^,]+") do
    local path, file = spec:match("^([^=]+)=(.+)$")
    local f = assert(io.open(file, "rb"))
    local body = f:read("*a")
    f:close()
    reqs[#reqs + 1] = wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
if pause > 0 then
  function delay() return pause end
end
LUA
}

# spawn_wrk OUT BASE_URL CONNS SECONDS REQS [DELAY_MS]: wrk (one thread, latency
# percentiles) in the background, output into OUT; its pid is in $spawned.
spawn_wrk() {
  [ -f "$work/post.lua" ] || lib_lua
  REQS="$5" DELAY_MS="${6:-0}" wrk -t1 -c"$3" -d"$4s" --timeout 10s --latency \
    -s "$work/post.lua" "$2" > "$1" 2>&1 &
  spawned=$!
  lib_pids+=("$spawned")
}

# lib_wait PID: waits for a process lib_spawn or spawn_wrk started (and forgets it).
lib_wait() {
  wait "$1" || true
  local p keep=()
  for p in "${lib_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  lib_pids=("${keep[@]}")
}

# sample PID: "VmRSS_KiB open_fds" of a live process.
sample() {
  echo "$(awk '/^VmRSS/ {print $2}' "/proc/$1/status") $(ls "/proc/$1/fd" | wc -l)"
}

# peak_rss_kib PID: VmHWM of a live process.
peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# load_case NAME CACHE CONNS SECONDS VERBS BODY_ARGS...: a fresh extender-load-server with
# CACHE cached nodes, wrk for SECONDS on CONNS connections posting the body
# `extender-load-server BODY_ARGS...` prints to each verb of VERBS in turn (comma-separated:
# `prioritize`, or `filter,prioritize`), then one table row and its checks from figures.py.
# Needs $bin (extender-load-server) and $deadline_ms; returns non-zero when a check fails.
load_case() {
  local name="$1" cache="$2" conns="$3" secs="$4" verbs="$5"
  shift 5
  local body="$work/body-$(echo "$*" | tr ' ' '-').json" reqs="" verb port pid peak rc=0
  [ -s "$body" ] || "$bin" "$@" > "$body"
  for verb in ${verbs//,/ }; do reqs="$reqs${reqs:+,}/scheduler/$verb=$body"; done
  port="$(free_port)"
  lib_spawn "$bin" serve "$cache" "127.0.0.1:$port" 2>>"$work/server.log"
  pid=$spawned
  wait_http "http://127.0.0.1:$port/healthz"
  curl -s "http://127.0.0.1:$port/metrics" > "$work/m.before"
  spawn_wrk "$work/wrk.txt" "http://127.0.0.1:$port" "$conns" "$secs" "$reqs"
  lib_wait "$spawned"
  curl -s "http://127.0.0.1:$port/metrics" > "$work/m.after"
  peak="$(peak_rss_kib "$pid")"
  lib_stop "$pid"
  python3 "$lib_dir/figures.py" load-row "$name" "$(wc -c < "$body")" "$conns" \
    "$work/wrk.txt" "$work/m.before" "$work/m.after" "$peak" "$deadline_ms" || rc=$?
  return $rc
}
