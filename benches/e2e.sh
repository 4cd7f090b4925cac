#!/usr/bin/env bash
# End to end: the demo server (examples/server/, release build) on one core, wrk on the other,
# `GET /health` (public, no authentication) and authenticated `GET /v1/limits` measured back to
# back, interleaved (health, limits, limits, health, ... the order alternates every round so that
# neither route always runs first), ROUNDS rounds of DUR seconds each.
#
# Per run: requests/s, wrk p50/p99 latency, and the server's CPU time per request: utime+stime of
# the server process (all threads) from /proc/PID/stat before and after the run, divided by the
# requests wrk reports. Per round: the ratios of each route to /health of the same round. Summary: median
# of the per-round ratios (p25..p75) and of each metric.
#
# Default routes: /health (public), /v1/limits (authenticated; its handler builds a larger JSON
# answer, 344 body bytes against 87, so it also measures that handler's extra work) and
# GET /v1/platform/webhooks (authenticated, webhooks:manage; its handler answers
# `{"data":[],"meta":…}`, the same work as /health's): the last one against /health is the
# layer's own end-to-end cost.
#
# Every request carries the same `Authorization: Bearer <key>` header, /health's too (the demo's
# policy makes /health public: the layer passes it to the router without looking at the key),
# so the two routes' requests differ only in their path.
#
# Goals: CPU/request limits÷health <= 1.05, req/s ratio >= 0.95, p99 ratio <= 1.1.
#
#   benches/e2e.sh                                   # 8 rounds x 3 routes x 5 s, wrk -t1 -c16
#   ROUNDS=12 DUR=3 CONNS=32 benches/e2e.sh
#   ROUTES="/health /health /v1/limits" benches/e2e.sh   # A/A: the same route twice = noise floor
#
# env: ROUNDS (8), DUR (seconds per run, 5), WARMUP (seconds per route before round 1, 2),
#      CONNS (wrk connections, 16), THREADS (wrk threads, 1), SERVER_CPU (0), CLIENT_CPU (1),
#      PORT (3931), RUST_LOG (warn: the demo server logs every request at INFO to stderr, which
#      costs the same on both routes and is not what is measured; RUST_LOG=info to include it),
#      ROUTES (space-separated paths; the first is the baseline of the ratios),
#      NO_BUILD=1 (use the existing target/release/examples/server),
#      CALLGRIND=1 (instead of the wrk rounds: the server under valgrind's callgrind, one run
#      per route, instructions per request and of it the layer's and the handler's; CG_DUR
#      seconds of wrk each, default 10; deterministic, unlike the wall-clock rounds).
#
# REFERENCE=1: ark-auth against the reference pipeline (benches/reference/mod.rs) in one server
# binary instead of the demo server: benches/e2e_server.rs (built by `cargo bench --bench
# e2e_server --no-run`) serves the same axum Router and handler (`GET /v1/things`, a fixed
# 30-byte JSON answer) on two listeners of one process, ark on PORT behind `ArkAuthLayer` (100 000
# keys, a quota never reached) and the reference on PORT+1 behind `ModelAuthLayer` (100 000
# keys) plus the same response headers ark-auth writes (the three X-RateLimit-* and
# X-Request-Id); both accept the same fixture key, which the server prints at start. The rounds
# are those above with TARGETS (listeners, space-separated, of `ark` and `reference`; default
# "reference ark", the first is the baseline) in place of ROUTES; the goal line is server
# CPU/request ark / reference <= 1.03 (req/s and p99 ratios reported beside it).
# With CALLGRIND=1: one server under callgrind per listener (plus an idle one, subtracted), the
# instructions per request of each listener, with and without SHA-256, and their ratio.
#
#   REFERENCE=1 benches/e2e.sh                                   # ark / reference, 8 rounds
#   REFERENCE=1 TARGETS="reference reference ark" benches/e2e.sh  # with the A/A pair
#   CALLGRIND=1 REFERENCE=1 CG_DUR=10 benches/e2e.sh             # Ir/request of each listener
#
# env (REFERENCE=1): TARGETS, KEYS (keys in each store, 100000), WRAP (`router`: the layers on
# the router with `Router::layer`, as the demo server has them, the default; `outside`: each
# pipeline wraps the router from outside, so ark-auth's response body is not boxed into axum's
# `Body`), PORT (the ark listener; the reference's is PORT+1). NO_BUILD does not apply (cargo
# rebuilds the bench target only when something changed).
#
# Needs: wrk (installed from Debian if missing), taskset (util-linux), curl or python3 for the
# sanity checks (curl is used; installed from Debian if missing).
#
# The key file it writes (in a temp dir, removed at exit) holds one generated live key with all
# permissions and rate_limit 1000000 per second, so that no request of the run is refused (429).
# The key is passed to wrk on its command line (it only exists for this run).
set -euo pipefail

ROUNDS=${ROUNDS:-8}
DUR=${DUR:-5}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-16}
THREADS=${THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-3931}
ROUTES=${ROUTES:-"/health /v1/limits /v1/platform/webhooks"}
export RUST_LOG=${RUST_LOG:-warn}

cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null 2>&1 && return
    echo "# installing $2 from Debian" >&2
    apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; }
}
need wrk wrk
need curl curl
need taskset util-linux
REFERENCE=${REFERENCE:-0}

if [ "$REFERENCE" != 1 ] && [ "${NO_BUILD:-0}" != 1 ]; then
    cargo build --release --example server --quiet
fi
SRV_BIN=target/release/examples/server

TMP=$(mktemp -d)
SRV_PID=
cleanup() {
    if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

TICK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime (fields 14 and 15 of /proc/PID/stat; the comm field has no spaces here)
    awk '{print $14 + $15}' "/proc/$SRV_PID/stat"
}
to_us() { # wrk's "1.23ms" / "456.00us" / "1.20s" -> microseconds
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000; else m = 1; printf "%.1f", n * m }'
}

# One wrk run against a URL: prints "rps p50_us p99_us cpu_us_per_req requests".
run() {
    local url=$1 dur=$2 c0 c1 out
    c0=$(cpu_ticks)
    out=$(taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNS" -d"${dur}s" --latency \
        -H "Authorization: Bearer $KEY" "$url")
    c1=$(cpu_ticks)
    if grep -q -e 'Non-2xx' -e 'Socket errors' <<<"$out"; then
        echo "$out" >&2
        echo "errors on $url" >&2
        exit 1
    fi
    local rps total p50 p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    awk -v rps="$rps" -v p50="$p50" -v p99="$p99" -v d="$((c1 - c0))" -v tick="$TICK" -v n="$total" \
        'BEGIN { printf "%s %s %s %.4f %d\n", rps, p50, p99, d / tick / n * 1e6, n }'
}

# R: the names in the tables, U: the URL of each (R[0], U[0]: the baseline of the ratios).
# Goals on the medians of the per-round ratios (an empty one: reported without a verdict).
if [ "$REFERENCE" = 1 ]; then
    TARGETS=${TARGETS:-"reference ark"}
    WRAP=${WRAP:-router}
    G_CPU=1.03 G_RPS= G_P99=
    cargo bench --bench e2e_server --no-run >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log" >&2; exit 1; }
    SRV_BIN=$(sed -n 's/.*Executable .*(\(.*\)).*/\1/p' "$TMP/build.log" | tail -1)
    [ -x "$SRV_BIN" ] || { cat "$TMP/build.log" >&2; echo "no e2e_server binary found" >&2; exit 1; }
    SRV_ARGS=(--ark "127.0.0.1:$PORT" --reference "127.0.0.1:$((PORT + 1))")
    [ "$WRAP" = outside ] && SRV_ARGS+=(--outside)
    declare -A URL_OF=([ark]="http://127.0.0.1:$PORT/v1/things" [reference]="http://127.0.0.1:$((PORT + 1))/v1/things")
    read -r -a R <<<"$TARGETS"
    U=()
    for t in "${R[@]}"; do
        [ -n "${URL_OF[$t]:-}" ] || { echo "TARGETS: $t is neither ark nor reference" >&2; exit 1; }
        U+=("${URL_OF[$t]}")
    done
    wait_up() { # $1: tries 0.1 s apart; both listeners answering (a 401 without a key)
        local u
        for u in "${URL_OF[ark]}" "${URL_OF[reference]}"; do
            for _ in $(seq "$1"); do curl -s -o /dev/null "$u" && break; sleep 0.1; done
        done
    }
    taskset -c "$SERVER_CPU" "$SRV_BIN" "${SRV_ARGS[@]}" >"$TMP/server.out" 2>"$TMP/server.err" &
    SRV_PID=$!
    wait_up 300
    kill -0 "$SRV_PID" 2>/dev/null || { cat "$TMP/server.err" >&2; echo "server did not start" >&2; exit 1; }
    KEY=$(head -1 "$TMP/server.out") # the fixture key key_token(0), printed by the server

    echo "# server: $SRV_BIN ${SRV_ARGS[*]} (pid $SRV_PID) on cpu $SERVER_CPU, KEYS=${KEYS:-100000}; wrk -t$THREADS -c$CONNS -d${DUR}s --latency on cpu $CLIENT_CPU; $ROUNDS rounds"
    declare -A HB=()
    for t in ark reference; do
        u=${URL_OF[$t]}
        code=$(curl -s -D "$TMP/headers" -o "$TMP/body" -w '%{http_code} %{size_header} %{size_download}' \
            -H "Authorization: Bearer $KEY" "$u")
        set -- $code
        [ "$1" = 200 ] || { echo "$t: GET $u with the key answered $1" >&2; exit 1; }
        HB[$t]=$2
        echo "# $t: GET $u: 200, header bytes $2, body bytes $3: $(head -c 300 "$TMP/body"); headers: $(tr -d '\r' <"$TMP/headers" | awk -F': ' 'NR > 1 && NF > 1 { printf "%s%s", s, $1; s = ", " }')"
        c=$(curl -s -o /dev/null -w '%{http_code}' "$u")
        [ "$c" = 401 ] || { echo "$t: GET $u without a key answered $c, not 401" >&2; exit 1; }
    done
    [ "${HB[ark]}" = "${HB[reference]}" ] || echo "# WARNING: the listeners' 200s differ in header bytes (${HB[ark]} vs ${HB[reference]})"

    if [ "${CALLGRIND:-0}" = 1 ]; then
        # One server under callgrind per listener, plus one that serves only the readiness
        # requests (one 401 per listener, as every run does), whose instructions (the startup:
        # both stores built, 2 x KEYS SHA-256 on valgrind's portable path) are subtracted.
        kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=
        CG_DUR=${CG_DUR:-10}
        need valgrind valgrind
        cg_ref_run() { # $1: ark, reference or idle; prints "Ir requests sha_Ir alloc_Ir file"
            mkdir -p target/callgrind
            local f="target/callgrind/e2e_server.$1.out" n=0 out=
            taskset -c "$SERVER_CPU" valgrind --tool=callgrind --callgrind-out-file="$f" \
                "$SRV_BIN" "${SRV_ARGS[@]}" >/dev/null 2>"$TMP/cg.err" &
            SRV_PID=$!
            wait_up 3000
            kill -0 "$SRV_PID" 2>/dev/null || { cat "$TMP/cg.err" >&2; echo "server under valgrind did not start" >&2; exit 1; }
            if [ "$1" != idle ]; then
                out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c4 -d"${CG_DUR}s" -H "Authorization: Bearer $KEY" "${URL_OF[$1]}")
                if grep -q -e 'Non-2xx' -e 'Socket errors' <<<"$out"; then echo "$out" >&2; echo "errors on $1 under callgrind" >&2; exit 1; fi
                n=$(awk '/requests in/ {print $1}' <<<"$out")
            fi
            kill -TERM "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=
            local ir sha alloc
            ir=$(awk '/^(totals|summary):/ {print $2; exit}' "$f")
            # --auto=no: the bench binary has line information; without it callgrind_annotate
            # appends annotated source, whose lines would match too.
            sha=$(callgrind_annotate --auto=no --inclusive=yes "$f" 2>/dev/null | awk '/compress256/ {gsub(",", "", $1); print $1; exit}' || true)
            alloc=$(callgrind_annotate --auto=no --threshold=100 "$f" 2>/dev/null | awk '
                /^ *[0-9,]+ +\(/ && !/PROGRAM TOTALS/ && /malloc|free|arena\.c|__rdl_|__rust_alloc|__rust_dealloc|realloc/ {
                    v = $1; gsub(",", "", v); m += v }
                END { printf "%.0f", m }')
            echo "$ir $n ${sha:-0} $alloc $f"
        }
        read -r idle _ idle_sha idle_alloc _ <<<"$(cg_ref_run idle)"
        echo
        echo "## callgrind: server instructions per request (wrk -t1 -c4 -d${CG_DUR}s under valgrind; idle server's $idle Ir subtracted; WRAP=$WRAP)"
        echo "| listener | requests | Ir/request | SHA-256 Ir/request | Ir/request excl. SHA-256 | malloc/free Ir/request (self) |"
        echo "|---|---|---|---|---|---|"
        declare -A CG=()
        for t in $(tr ' ' '\n' <<<"$TARGETS" | awk 'NF && !seen[$1]++'); do
            read -r ir n sha alloc _ <<<"$(cg_ref_run "$t")"
            line=$(awk -v ir="$ir" -v n="$n" -v s="$sha" -v a="$alloc" -v i0="$idle" -v s0="$idle_sha" -v a0="$idle_alloc" \
                'BEGIN { t = (ir - i0) / n; h = (s - s0) / n; printf "%d %.0f %.0f %.0f %.0f", n, t, h, t - h, (a - a0) / n }')
            read -r n ipr h x m <<<"$line"
            CG[$t]="$ipr $x"
            echo "| $t | $n | $ipr | $h | $x | $m |"
        done
        if [ -n "${CG[ark]:-}" ] && [ -n "${CG[reference]:-}" ]; then
            read -r ai ax <<<"${CG[ark]}"
            read -r ri rx <<<"${CG[reference]}"
            awk -v ai="$ai" -v ax="$ax" -v ri="$ri" -v rx="$rx" 'BEGIN {
                printf "\nark / reference: Ir/request %.3f (%+d), excl. SHA-256 %.3f (%+d)\n", ai / ri, ai - ri, ax / rx, ax - rx }'
        fi
        exit 0
    fi
else
    G_CPU=1.05 G_RPS=0.95 G_P99=1.1
    # A fresh key: ark_live_ + 40 base62 characters from the OS RNG.
    BODY=
    while [ ${#BODY} -lt 40 ]; do
        BODY=$BODY$(head -c 256 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
    done
    BODY=${BODY:0:40}
    KEY="ark_live_$BODY"
    cat >"$TMP/keys.json" <<EOF
{"keys": [{"key": "$KEY", "name": "e2e", "permissions": ["*"], "rate_limit": 1000000}]}
EOF

    taskset -c "$SERVER_CPU" "$SRV_BIN" --listen "127.0.0.1:$PORT" --keys "$TMP/keys.json" \
        >"$TMP/server.out" 2>"$TMP/server.err" &
    SRV_PID=$!
    BASE="http://127.0.0.1:$PORT"
    for _ in $(seq 100); do
        curl -s -o /dev/null "$BASE/health" && break
        sleep 0.1
    done
    kill -0 "$SRV_PID" 2>/dev/null || { cat "$TMP/server.err" >&2; echo "server did not start" >&2; exit 1; }

    # Sanity: 200 with the key on every route, 401 without it on authenticated routes; body sizes.
    echo "# server: $SRV_BIN (pid $SRV_PID) on cpu $SERVER_CPU, RUST_LOG=$RUST_LOG; wrk -t$THREADS -c$CONNS -d${DUR}s --latency on cpu $CLIENT_CPU; $ROUNDS rounds"
    for r in $ROUTES; do
        code=$(curl -s -o "$TMP/body" -w '%{http_code} %{size_header} %{size_download}' \
            -H "Authorization: Bearer $KEY" "$BASE$r")
        set -- $code
        [ "$1" = 200 ] || { echo "GET $r with the key answered $1" >&2; exit 1; }
        echo "# GET $r: 200, header bytes $2, body bytes $3: $(head -c 300 "$TMP/body")"
        if [ "$r" != /health ]; then
            c=$(curl -s -o /dev/null -w '%{http_code}' "$BASE$r")
            [ "$c" = 401 ] || { echo "GET $r without a key answered $c, not 401" >&2; exit 1; }
        fi
    done
    read -r -a R <<<"$ROUTES"
    U=()
    for r in "${R[@]}"; do U+=("$BASE$r"); done
fi

if [ "${CALLGRIND:-0}" = 1 ]; then
    # Deterministic backing: instructions per request of the server itself, per route. One
    # server under callgrind per route (plus one that serves only the sanity requests, whose
    # instructions are subtracted), wrk for CG_DUR seconds; Ir/request = (Ir - Ir_idle) /
    # requests. Inclusive Ir of the layer (`ArkAuth::call` + its `ResponseFuture::poll`) and of
    # the route's handler, per request, from callgrind_annotate.
    kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=
    CG_DUR=${CG_DUR:-10}
    cg_run() { # $1: route or "idle"; prints "Ir requests file"
        mkdir -p target/callgrind
        local f="target/callgrind/e2e.${1//\//_}.out" n=0
        taskset -c "$SERVER_CPU" valgrind --tool=callgrind --callgrind-out-file="$f" \
            "$SRV_BIN" --listen "127.0.0.1:$PORT" --keys "$TMP/keys.json" >/dev/null 2>"$TMP/cg.err" &
        SRV_PID=$!
        for _ in $(seq 300); do curl -s -o /dev/null "$BASE/health" && break; sleep 0.1; done
        if [ "$1" != idle ]; then
            n=$(taskset -c "$CLIENT_CPU" wrk -t1 -c4 -d"${CG_DUR}s" -H "Authorization: Bearer $KEY" "$BASE$1" |
                awk '/requests in/ {print $1}')
        fi
        kill -TERM "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=
        echo "$(awk '/^(totals|summary):/ {print $2; exit}' "$f") $n $f"
    }
    read -r idle _ _ <<<"$(cg_run idle)"
    echo
    echo "## callgrind: server instructions per request (wrk -t1 -c4 -d${CG_DUR}s under valgrind; idle server's $idle Ir subtracted)"
    echo "| route | requests | Ir/request | ark_auth + sha2 + dashmap (self) | JSON: serde, serde_json, BTreeMap (self) | malloc/free (self) | hyper + httparse (self) | rest |"
    echo "|---|---|---|---|---|---|---|---|"
    for r in $ROUTES; do
        read -r ir n f <<<"$(cg_run "$r")"
        # self (exclusive) Ir of every function, grouped by what it belongs to; the idle
        # server's instructions fall into "rest". (Names only: the release example has no line
        # information, and inlined code counts where it was inlined.)
        callgrind_annotate --threshold=100 "$f" 2>/dev/null | awk -v r="$r" -v n="$n" -v ir="$ir" -v idle="$idle" '
            /^ *[0-9,]+ +\(/ && !/PROGRAM TOTALS/ {
                v = $1; gsub(",", "", v); v += 0
                if ($0 ~ /ark_auth::|sha2::|dashmap::|subtle::/) a += v
                else if ($0 ~ /serde|btree|BTreeMap/) j += v
                else if ($0 ~ /malloc|free|arena\.c|__rdl_|__rust_alloc|__rust_dealloc|realloc/) m += v
                else if ($0 ~ /hyper::|httparse::/) h += v
            }
            END { t = (ir - idle) / n; printf "| %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", r, n, t, a / n, j / n, m / n, h / n, t - (a + j + m + h) / n }'
    done
    exit 0
fi

for u in "${U[@]}"; do run "$u" "$WARMUP" >/dev/null; done

NR=${#R[@]}
RES="$TMP/results"
: >"$RES"
echo
echo "| round | route | req/s | p50 µs | p99 µs | server CPU µs/req | requests | ×base req/s | ×base p99 | ×base CPU/req |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    # alternate the order: even rounds run the routes backwards
    if [ $((round % 2)) = 1 ]; then order=$(seq 0 $((NR - 1))); else order=$(seq $((NR - 1)) -1 0); fi
    declare -A got=()
    for i in $order; do got[$i]=$(run "${U[$i]}" "$DUR"); done
    read -r brps _ bp99 bcpu _ <<<"${got[0]}"
    for i in $order; do
        read -r rps p50 p99 cpu n <<<"${got[$i]}"
        line=$(awk -v a="$rps" -v b="$brps" -v c="$p99" -v d="$bp99" -v e="$cpu" -v f="$bcpu" \
            'BEGIN { printf "%.3f %.3f %.3f", a / b, c / d, e / f }')
        read -r xr xp xc <<<"$line"
        echo "| $round | ${R[$i]} | $rps | $p50 | $p99 | $cpu | $n | $xr | $xp | $xc |"
        echo "$i $rps $p50 $p99 $cpu $xr $xp $xc" >>"$RES"
    done
    unset got
done

echo
echo "## medians over $ROUNDS rounds (ratios: per round against ${R[0]} of the same round, then the median; [p25..p75])"
echo "| route | req/s | p50 µs | p99 µs | server CPU µs/req | ×base req/s | ×base p99 | ×base CPU/req |"
echo "|---|---|---|---|---|---|---|---|"
for i in $(seq 0 $((NR - 1))); do
    q() { # column -> "median p25 p75"
        awk -v i="$i" -v c="$1" '$1 == i { print $c }' "$RES" | sort -g | awk '
            { v[NR] = $1 }
            END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                  lo = v[int((NR - 1) / 4) + 1]; hi = v[NR - int((NR - 1) / 4)];
                  printf "%g %g %g", m, lo, hi }'
    }
    read -r rps _ _ <<<"$(q 2)"
    read -r p50 _ _ <<<"$(q 3)"
    read -r p99 _ _ <<<"$(q 4)"
    read -r cpu _ _ <<<"$(q 5)"
    read -r xr xrl xrh <<<"$(q 6)"
    read -r xp xpl xph <<<"$(q 7)"
    read -r xc xcl xch <<<"$(q 8)"
    printf '| %s | %.0f | %.0f | %.0f | %.3f | %.3f [%.2f..%.2f] | %.3f [%.2f..%.2f] | %.3f [%.2f..%.2f] |\n' \
        "${R[$i]}" "$rps" "$p50" "$p99" "$cpu" "$xr" "$xrl" "$xrh" "$xp" "$xpl" "$xph" "$xc" "$xcl" "$xch"
done
echo
for last in $(seq 1 $((NR - 1))); do
awk -v i="$last" '$1 == i { print $6, $7, $8 }' "$RES" | awk -v name="${R[$last]}" -v base="${R[0]}" \
    -v gc="$G_CPU" -v gr="$G_RPS" -v gp="$G_P99" '
    { r[NR] = $1; p[NR] = $2; c[NR] = $3 }
    function med(a, n,   t, i, j, x) { # sort a copy
        for (i = 1; i <= n; i++) t[i] = a[i]
        for (i = 2; i <= n; i++) { x = t[i]; for (j = i - 1; j > 0 && t[j] > x; j--) t[j + 1] = t[j]; t[j + 1] = x }
        return (n % 2) ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2
    }
    END {
        cm = med(c, NR); rm = med(r, NR); pm = med(p, NR)
        printf "goals (%s / %s, medians of per-round ratios): CPU/request %.3f (<= %s: %s), req/s %.3f%s, p99 %.3f%s\n",
            name, base, cm, gc, (cm <= gc + 0 ? "met" : "NOT met"),
            rm, (gr == "" ? "" : sprintf(" (>= %s: %s)", gr, (rm >= gr + 0 ? "met" : "NOT met"))),
            pm, (gp == "" ? "" : sprintf(" (<= %s: %s)", gp, (pm <= gp + 0 ? "met" : "NOT met")))
    }'
done
