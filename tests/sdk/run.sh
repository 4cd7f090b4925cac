#!/usr/bin/env bash
# The official Ark Python SDK (PyPI: ark-email) against the demo server, black box.
#
#   bash tests/sdk/run.sh
#
# Builds the server and keygen examples, mints keys with keygen (one with a low rate limit,
# to provoke 429s), starts the server on a free port with those keys, waits for /health,
# runs tests/sdk/test_python_sdk.py in a virtualenv, checks the server log, and stops the
# server whatever happens. Needs python3 with venv, and PyPI unless the venv is already set up.
#
# Environment (all optional):
#   PYTHON        interpreter that creates the venv (default python3)
#   ARK_SDK_VENV  virtualenv to create or reuse (default <cargo target dir>/sdk-venv)
#   ARK_SDK_SPEC  pip requirement for the SDK (default: the version this was written against;
#                 ARK_SDK_SPEC=ark-email to test the newest release)
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
SDK_SPEC=${ARK_SDK_SPEC:-ark-email==0.18.1}

command -v "$PYTHON" >/dev/null || {
  echo "run.sh: $PYTHON not found" >&2
  exit 1
}

WORK=$(mktemp -d)
chmod 700 "$WORK"
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build: examples server, keygen"
cargo build --quiet --example server --example keygen
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET_DIR/debug/examples"
VENV=${ARK_SDK_VENV:-$TARGET_DIR/sdk-venv}

echo "== python venv: $VENV ($SDK_SPEC, pytest)"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SDK_SPEC" pytest
"$VENV/bin/python" -c 'import ark; print("ark-email", ark.__version__)'

echo "== keys (keygen)"
gen() {
  local name=$1
  shift
  "$BIN/keygen" --name "$name" "$@" >"$WORK/$name.out" 2>/dev/null
}
gen full --permissions '*'
gen live --env live --permissions emails:send
gen reader --permissions emails:read
gen limited --permissions '*' --rate-limit 1
gen hammer --permissions emails:send --rate-limit 2
gen tenant --permissions domains:manage --tenant tn_42
gen expired --permissions '*' --expires-at 2020-01-01T00:00:00Z
# keys.json for the server (hashes only), sdk-keys.json for the test (plaintexts).
"$PYTHON" - "$WORK" <<'EOF'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
entries, plain = [], {}
for out in sorted(work.glob("*.out")):
    key, document = out.read_text().splitlines()
    entries += json.loads(document)["keys"]
    plain[out.stem] = key
    out.unlink()
(work / "keys.json").write_text(json.dumps({"keys": entries}, indent=1))
(work / "sdk-keys.json").write_text(json.dumps(plain))
print(len(entries), "keys:", ", ".join(sorted(plain)))
EOF

echo "== start the demo server"
"$BIN/server" --listen 127.0.0.1:0 --keys "$WORK/keys.json" >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
ADDR=
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's#^listening on \(http://.*\)$#\1#p' "$WORK/server.out")
  [ -n "$ADDR" ] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run.sh: the server exited:" >&2
    cat "$WORK/server.out" "$WORK/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -n "$ADDR" ] || {
  echo "run.sh: the server did not start listening" >&2
  exit 1
}
"$PYTHON" - "$ADDR/health" <<'EOF'
import sys, time, urllib.request
for _ in range(100):
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
            if r.status == 200:
                print("healthy:", sys.argv[1])
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("run.sh: /health did not answer 200")
EOF

echo "== pytest tests/sdk/test_python_sdk.py against $ADDR/v1"
TIMEOUT=()
if command -v timeout >/dev/null; then
  TIMEOUT=(timeout 120)
fi
status=0
ARK_BASE_URL="$ADDR/v1" ARK_SDK_KEYS_FILE="$WORK/sdk-keys.json" PYTHONDONTWRITEBYTECODE=1 \
  ${TIMEOUT[@]+"${TIMEOUT[@]}"} "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/sdk/test_python_sdk.py ||
  status=$?

echo "== server log"
n429=$(grep -c -- '-> 429' "$WORK/server.log" || true)
nretried=$(grep -c -- 'retry=[1-9]' "$WORK/server.log" || true)
echo "429 responses: $n429; requests the SDK retried: $nretried"
if [ "$status" -eq 0 ] && { [ "$n429" -lt 1 ] || [ "$nretried" -lt 1 ]; }; then
  echo "run.sh: expected the server to have answered 429 and the SDK to have retried" >&2
  status=1
fi
# No log line, nor anything the server printed, carries a key.
if "$PYTHON" - "$WORK" <<'EOF'; then :; else status=1; fi
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
logs = (work / "server.out").read_text() + (work / "server.log").read_text()
leaked = [name for name, key in json.loads((work / "sdk-keys.json").read_text()).items()
          if key[9:] in logs]
if leaked:
    sys.exit(f"run.sh: the server's output contains the key(s): {', '.join(leaked)}")
print("no key in the server's output")
EOF
if [ "$status" -ne 0 ]; then
  echo "---- server log (tail)" >&2
  tail -n 40 "$WORK/server.log" >&2
fi
exit "$status"
