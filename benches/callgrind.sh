#!/usr/bin/env bash
# Deterministic instructions per call (valgrind's callgrind) of the interleaved bench's variants,
# and, with --dhat, where the allocations of a variant's calls come from (valgrind's DHAT).
#
#   benches/callgrind.sh                        # every variant, CALLS=20000 calls each
#   benches/callgrind.sh 5_ark_accept_100k 1_bare_service_fn
#   benches/callgrind.sh --dhat 5_ark_accept_100k   # allocation sites of the calls, per call
#
# How: `benches/interleaved.rs`'s profile mode (`ARK_PROFILE=<variant>`) builds only that
# variant and runs it for ARK_PROFILE_CALLS calls through `timed_batch`, the same function the
# wall-clock measurement times; callgrind collects only inside it (`--toggle-collect`), so the
# setup (building a store of 1 000 000 keys, which under valgrind takes minutes) is not counted.
# Ir/call = collected instructions / calls. The request's drop is inside (as in a server); the
# response's drop is not (set DROP_RESPONSE=1 to include it).
#
# Under valgrind the CPU has no SHA extensions, so sha2 takes its portable path (~3 500
# instructions for the one 64-byte block of a key, instead of a few hundred SHA-NI
# instructions natively): the table also gives Ir/call excluding `sha2::sha256::compress256`
# (inclusive), which the reference and ark-auth both run once per request that reaches the hash.
# Counts move by about ±100 per call with glibc malloc's state; they do not depend on load.
#
# env: CALLS (20000), OUT (directory for the callgrind/dhat files; default target/callgrind),
#      FEATURES (cargo features of the bench build, e.g. `metrics` for the 5m variant:
#      `FEATURES=metrics benches/callgrind.sh 5_ark_accept_100k 5m_ark_accept_100k_metrics_prometheus`)
set -euo pipefail
cd "$(dirname "$0")/.."

CALLS=${CALLS:-20000}
OUT=${OUT:-target/callgrind}
mkdir -p "$OUT"
command -v valgrind >/dev/null || { apt-get install -y valgrind >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }; }

BIN=$(cargo bench ${FEATURES:+--features "$FEATURES"} --bench interleaved --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
[ -x "$BIN" ] || { echo "no bench binary found" >&2; exit 1; }

ALL="1_bare_service_fn 1b_bare_service_fn_axum_body 2_towerhttp_bearer_valid 3_reference_accept_100k 3b_reference_accept_100k+ratelimit_headers 3f_reference_accept_100k+ratelimit_headers+request_id 3c_reference_accept_1k_rotating+ratelimit_headers 3e_reference_accept_100k_rotating+ratelimit_headers 3d_reference_accept_1M_rotating+ratelimit_headers 4_reference_unknown_key_100k 5_ark_accept_100k 5b_ark_accept_1k 5c_ark_accept_1M 5d_ark_accept_exact_100k_rotating 5e_ark_accept_exact_1k_rotating 5f_ark_accept_exact_1M_rotating 5g_ark_accept_100k_no_echo_no_hiding 6_ark_unknown_key_100k 7_ark_wrong_secret_100k 8_ark_revoked 9_ark_403_missing_permission 10_ark_429_rate_limited 11_ark_malformed_header 12_ark_missing_header 13_peer_accept_100k 14_peer_unknown_key_100k 15_peer_wrong_secret_100k"

if [ "${1:-}" = --dhat ]; then
    shift
    for v in "${@:-5_ark_accept_100k}"; do
        f="$OUT/dhat.$v.json"
        ARK_PROFILE=$v ARK_PROFILE_CALLS=$CALLS valgrind --tool=dhat --num-callers=60 \
            --dhat-out-file="$f" "$BIN" >/dev/null 2>"$OUT/dhat.$v.log"
        python3 - "$f" "$CALLS" "$v" <<'EOF'
import json, re, sys
path, calls, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3]
d = json.load(open(path))
ftbl = d["ftbl"]
def name(i):
    s = ftbl[i]
    s = re.sub(r"^0x[0-9A-F]+: ", "", s)
    return s
sites = []
for pp in d["pps"]:
    frames = [name(i) for i in pp["fs"]]
    inside = [i for i, f in enumerate(frames) if "timed_batch" in f]
    if not inside:
        continue
    frames = [f for f in frames[1:inside[0]] if "(library/" not in f and not f.startswith("UnknownInlinedFun")]
    # the allocating call, then the frames of http and ark-auth that led to it
    shown = frames[:1] + [f for f in frames[1:] if "http::" in f or "ark_auth" in f][:4]
    sites.append((pp["tbk"], pp["tb"], shown))
sites.sort(key=lambda s: -s[0])
blocks = sum(s[0] for s in sites)
print(f"## {variant}: {blocks / calls:.2f} allocations per call, "
      f"{sum(s[1] for s in sites) / calls:.0f} bytes per call ({calls} calls; DHAT, inside timed_batch)")
for tbk, tb, shown in sites:
    if tbk / calls < 0.01:
        continue
    print(f"- {tbk / calls:.2f}/call, {tb / max(tbk, 1):.0f} B each:")
    for f in shown:
        print(f"    {f[:160]}")
EOF
    done
    exit 0
fi

VARIANTS=${*:-$ALL}
printf '# callgrind, %s calls per variant, %s\n' "$CALLS" "$(valgrind --version)"
echo "| variant | Ir/call | SHA-256 Ir/call | Ir/call excl. SHA-256 | excl. SHA − bare |"
echo "|---|---|---|---|---|"
bare=
for v in $VARIANTS; do
    f="$OUT/callgrind.$v.out"
    ARK_PROFILE=$v ARK_PROFILE_CALLS=$CALLS valgrind --tool=callgrind --toggle-collect='*timed_batch*' \
        --callgrind-out-file="$f" "$BIN" >/dev/null 2>"$OUT/callgrind.$v.log"
    total=$(awk '/^(totals|summary):/ {print $2; exit}' "$f")
    sha=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null | awk '/compress256/ {gsub(",", "", $1); print $1; exit}' || true)
    sha=${sha:-0}
    line=$(awk -v t="$total" -v s="$sha" -v n="$CALLS" 'BEGIN { printf "%.0f %.0f %.0f", t / n, s / n, (t - s) / n }')
    read -r ir irsha irx <<<"$line"
    [ -z "$bare" ] && [ "$v" = 1_bare_service_fn ] && bare=$irx
    delta=$([ -n "$bare" ] && echo $((irx - bare)) || echo "")
    echo "| $v | $ir | $irsha | $irx | $delta |"
done
