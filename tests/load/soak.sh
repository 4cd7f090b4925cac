#!/usr/bin/env bash
# Load and soak test of the demo server on loopback, with wrk (Debian: apt-get install wrk).
#
#   bash tests/load/soak.sh [SOAK_SECONDS]        (default 60)
#
# 1. Builds the demo server and keygen in release, mints keys for this run with keygen (a
#    hash-only keys file), starts the server on 127.0.0.1.
# 2. Warm-up (10 s), then RSS; then SOAK_SECONDS of a mix of valid, unknown, revoked,
#    over-limit, forbidden and malformed requests (tests/load/mix.lua); then RSS again.
# 3. A flood of at least FLOOD_KEYS (default 1 000 000) distinct random keys
#    (tests/load/flood.lua); RSS after it.
#
# Fails (exit 1) on: any 5xx or a status outside {200, 401, 403, 429}; any missing class of
# answer in the mix; socket errors (connect/read/write/timeout) caused by the server; RSS
# growing more than RSS_SLACK_MB (default 16) over the soak or FLOOD_SLACK_MB (default 32)
# over the flood; the server dying. Prints every figure.
set -euo pipefail
cd "$(dirname "$0")/../.."
SOAK_SECONDS="${1:-60}"
FLOOD_KEYS="${FLOOD_KEYS:-1000000}"
RSS_SLACK_MB="${RSS_SLACK_MB:-16}"
FLOOD_SLACK_MB="${FLOOD_SLACK_MB:-32}"
CONNECTIONS="${CONNECTIONS:-64}"
PORT="${PORT:-$((20000 + RANDOM % 20000))}"
ADDR="127.0.0.1:$PORT"
export CARGO_TERM_COLOR=never

command -v wrk >/dev/null || { echo "soak: wrk is not installed (apt-get install -y wrk)"; exit 1; }

echo "== building the demo server and keygen (release)"
cargo build --release --example server --example keygen
BIN=target/release/examples

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== minting keys for this run"
mint() { # name, keygen args...; prints the plaintext, keeps the entry
  local name="$1"; shift
  "$BIN/keygen" --name "$name" "$@" 2>/dev/null >"$work/$name.out"
  head -n 1 "$work/$name.out"
}
ARK_VALID="$(mint valid --permissions '*' --rate-limit 100000000)"
ARK_REVOKED="$(mint revoked --permissions '*')"
ARK_LIMITED="$(mint limited --permissions '*' --rate-limit 1)"
ARK_READONLY="$(mint readonly --permissions emails:read)"
export ARK_VALID ARK_REVOKED ARK_LIMITED ARK_READONLY
# One keys file from the four (hash only), the revoked one marked revoked.
python3 - "$work" >"$work/keys.json" <<'PY'
import json, sys
work = sys.argv[1]
keys = []
for name in ["valid", "revoked", "limited", "readonly"]:
    entry = json.loads(open(f"{work}/{name}.out").read().splitlines()[1])["keys"][0]
    if name == "revoked":
        entry["revoked"] = True
    keys.append(entry)
print(json.dumps({"keys": keys}))
PY
if grep -q -e "${ARK_VALID#ark_test_}" -e "${ARK_LIMITED#ark_test_}" "$work/keys.json"; then
  echo "FAIL: the keys file holds a plaintext key"; exit 1
fi

# The demo server takes DATABASE_URL and REDIS_URL from the environment: in CI (where .ci/run
# exports both) the soak and the flood run on the cached PostgreSQL store and the Redis
# limiter, the fleet configuration; without them, on the in-memory store and limiter.
keys_in="in memory"; [ -n "${DATABASE_URL:-}" ] && keys_in="PostgreSQL (DATABASE_URL)"
limits_in="in memory"; [ -n "${REDIS_URL:-}" ] && limits_in="Redis (REDIS_URL)"
echo "== starting the demo server on $ADDR (keys: $keys_in; limits: $limits_in)"
RUST_LOG=warn "$BIN/server" --listen "$ADDR" --keys "$work/keys.json" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://$ADDR/health" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "http://$ADDR/health" >/dev/null || { cat "$work/server.err"; echo "FAIL: server did not start"; exit 1; }
test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ARK_VALID" "http://$ADDR/v1/limits")" = 200

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
rss_launch=$(rss_kb)

fail=0
# Runs wrk; checks statuses and socket errors; sets TOTAL_REQUESTS and DURATION_US.
run_wrk() { # label, lua script, seconds, required statuses...
  local label="$1" script="$2" seconds="$3"; shift 3
  local out="$work/$label.wrk"
  wrk -t2 -c"$CONNECTIONS" -d"${seconds}s" --timeout 5s --latency -s "$script" "http://$ADDR" >"$out" 2>&1 || {
    cat "$out"; echo "FAIL: wrk ($label) exited nonzero"; fail=1; return; }
  local status errors total
  status="$(grep '^STATUS' "$out")"
  errors="$(grep '^ERRORS' "$out")"
  total="$(grep '^TOTAL' "$out")"
  echo "   $label: $total"
  echo "   $label: $status"
  echo "   $label: $errors"
  grep -E 'Requests/sec|Latency ' "$out" | sed "s/^/   $label: /"
  TOTAL_REQUESTS="$(echo "$total" | sed -E 's/.*requests=([0-9]+).*/\1/')"
  DURATION_US="$(echo "$total" | sed -E 's/.*duration_us=([0-9]+).*/\1/')"
  for pair in ${status#STATUS}; do
    local code="${pair%%=*}"
    case "$code" in
      200|401|403|429) ;;
      *) echo "FAIL: $label: unexpected status $pair"; fail=1 ;;
    esac
  done
  for want in "$@"; do
    echo "$status" | grep -q " $want=" || { echo "FAIL: $label: no $want answered"; fail=1; }
  done
  for kind in connect read write timeout; do
    local n
    n="$(echo "$errors" | sed -E "s/.*$kind=([0-9]+).*/\1/")"
    if [ "$n" != 0 ]; then echo "FAIL: $label: $n $kind socket errors"; fail=1; fi
  done
  kill -0 "$server_pid" 2>/dev/null || { echo "FAIL: the server died"; cat "$work/server.err"; exit 1; }
}

echo "== warm-up (10 s)"
run_wrk warmup tests/load/mix.lua 10 200 401 403 429
rss_start=$(rss_kb)
echo "== soak: ${SOAK_SECONDS} s of mixed traffic, $CONNECTIONS connections"
run_wrk soak tests/load/mix.lua "$SOAK_SECONDS" 200 401 403 429
rss_end=$(rss_kb)
rate=$(( TOTAL_REQUESTS * 1000000 / (DURATION_US > 0 ? DURATION_US : 1) ))
echo "   soak: RSS start ${rss_start} kB, end ${rss_end} kB (after warm-up), $rate requests/s"
if [ "$rss_end" -gt $(( rss_start + RSS_SLACK_MB * 1024 )) ]; then
  echo "FAIL: RSS grew from ${rss_start} kB to ${rss_end} kB over the soak (slack ${RSS_SLACK_MB} MB)"
  fail=1
fi

# The flood runs in rounds until FLOOD_KEYS distinct keys were sent (at most 10 min): each
# round is sized from the rate the previous one reached (the first from a third of the soak's
# rate: a random key per request costs wrk and the server more than the mix does). Keys stay
# distinct across rounds: thread id, counter and 18 random characters from a per-run seed.
echo "== flood: distinct random keys until ${FLOOD_KEYS} were sent"
rss_before_flood=$(rss_kb)
flood_keys=0
flood_rate=$(( rate / 3 > 1000 ? rate / 3 : 1000 ))
flood_start=$(date +%s)
while [ "$flood_keys" -lt "$FLOOD_KEYS" ] && [ $(( $(date +%s) - flood_start )) -lt 600 ]; do
  flood_seconds=$(( (FLOOD_KEYS - flood_keys) * 11 / 10 / flood_rate + 3 ))
  [ "$flood_seconds" -gt 300 ] && flood_seconds=300
  run_wrk flood tests/load/flood.lua "$flood_seconds" 401
  flood_keys=$(( flood_keys + TOTAL_REQUESTS ))
  flood_rate=$(( TOTAL_REQUESTS * 1000000 / (DURATION_US > 0 ? DURATION_US : 1) ))
  [ "$flood_rate" -lt 1000 ] && flood_rate=1000
done
TOTAL_REQUESTS=$flood_keys
rss_after_flood=$(rss_kb)
echo "   flood: ${TOTAL_REQUESTS} distinct keys; RSS before ${rss_before_flood} kB, after ${rss_after_flood} kB"
if [ "$TOTAL_REQUESTS" -lt "$FLOOD_KEYS" ]; then
  echo "FAIL: the flood sent ${TOTAL_REQUESTS} keys, fewer than ${FLOOD_KEYS}"; fail=1
fi
if [ "$rss_after_flood" -gt $(( rss_before_flood + FLOOD_SLACK_MB * 1024 )) ]; then
  echo "FAIL: RSS grew from ${rss_before_flood} kB to ${rss_after_flood} kB over the flood (slack ${FLOOD_SLACK_MB} MB)"
  fail=1
fi
# Still serving, and nothing secret in its output.
test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ARK_VALID" "http://$ADDR/v1/limits")" = 200 \
  || { echo "FAIL: the server no longer serves a valid key"; fail=1; }
for k in "$ARK_VALID" "$ARK_REVOKED" "$ARK_LIMITED" "$ARK_READONLY"; do
  if grep -q "${k:9:16}" "$work/server.out" "$work/server.err"; then
    echo "FAIL: the server's output holds a key"; fail=1
  fi
done

echo "== soak summary"
echo "   RSS: at launch ${rss_launch} kB; soak start ${rss_start} kB, soak end ${rss_end} kB; flood before ${rss_before_flood} kB, after ${rss_after_flood} kB"
if [ "$fail" -ne 0 ]; then
  echo "soak: FAILED"
  exit 1
fi
echo "soak: passed (no 5xx, no socket error, RSS flat)"
