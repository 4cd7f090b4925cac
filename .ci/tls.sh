#!/usr/bin/env bash
# TLS on the CI databases, sourced by .ci/run after PostgreSQL (5432) and Redis (6379) are up.
# Makes certificates in the run (a CA, a server certificate for 127.0.0.1 and localhost, and
# a second, unrelated CA), turns TLS on in the same PostgreSQL cluster with that certificate
# (plain connections keep working; the role ark_tls_only, owner of the database
# ark_auth_tls, may connect over TLS only), starts a
# second redis-server with TLS only on ARK_TLS_REDIS_PORT (default 6390), and exports what
# tests/tls.rs reads: ARK_TLS_DIR (ca.pem, wrong-ca.pem), ARK_TLS_PG_URL, ARK_TLS_REDIS_URL.
# Idempotent: a re-run makes new certificates and reloads.
set -euo pipefail

tls_dir=${ARK_TLS_DIR:-/tmp/ark-auth-tls}
redis_port=${ARK_TLS_REDIS_PORT:-6390}
pg_conf=/etc/postgresql/15/main
mkdir -p "$tls_dir"
(
  cd "$tls_dir"
  for ca in ca wrong-ca; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 \
      -keyout "$ca.key" -out "$ca.pem" -subj "/CN=ark-auth test $ca" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      2>/dev/null
  done
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
  printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=critical,CA:FALSE' \
    'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 \
    -extfile server.ext -out server.pem 2>/dev/null
  chmod 644 ./*.pem
)

# PostgreSQL: the certificate and key where the server may read them (the key 0600, owned by
# postgres), TLS on by ALTER SYSTEM, a reload (PostgreSQL re-reads its TLS files on SIGHUP).
pg_tls=/var/lib/postgresql/ark-auth-tls
install -d -o postgres -g postgres -m 700 "$pg_tls"
install -o postgres -g postgres -m 600 "$tls_dir/server.key" "$pg_tls/server.key"
install -o postgres -g postgres -m 644 "$tls_dir/server.pem" "$pg_tls/server.pem"
su postgres -c "psql -qc \"ALTER SYSTEM SET ssl = on\"" >/dev/null
su postgres -c "psql -qc \"ALTER SYSTEM SET ssl_cert_file = '$pg_tls/server.pem'\"" >/dev/null
su postgres -c "psql -qc \"ALTER SYSTEM SET ssl_key_file = '$pg_tls/server.key'\"" >/dev/null
# A role that the server refuses in plain text (the first matching pg_hba line wins).
if ! grep -q '^hostnossl all ark_tls_only' "$pg_conf/pg_hba.conf"; then
  sed -i '1i hostnossl all ark_tls_only all reject' "$pg_conf/pg_hba.conf"
fi
su postgres -c "psql -qc \"DO \\\$\\\$ BEGIN CREATE ROLE ark_tls_only LOGIN PASSWORD 'ark-ci'; EXCEPTION WHEN duplicate_object THEN NULL; END \\\$\\\$\""
su postgres -c "createdb -O ark_tls_only ark_auth_tls" 2>/dev/null || true # exists on a re-run
su postgres -c "psql -qc \"SELECT pg_reload_conf()\"" >/dev/null
for _ in $(seq 50); do
  if [ "$(su postgres -c "psql -Atc 'SHOW ssl_cert_file'")" = "$pg_tls/server.pem" ]; then break; fi
  sleep 0.1
done

# Redis: a second server, TLS only (port 0 turns the plain port off), no client certificates.
redis-cli -p "$redis_port" --tls --insecure shutdown nosave >/dev/null 2>&1 || true # a re-run's old server
redis-server --daemonize yes --port 0 --tls-port "$redis_port" --bind 127.0.0.1 \
  --tls-cert-file "$tls_dir/server.pem" --tls-key-file "$tls_dir/server.key" \
  --tls-ca-cert-file "$tls_dir/ca.pem" --tls-auth-clients no --save '' --appendonly no \
  --pidfile "$tls_dir/redis.pid" --logfile "$tls_dir/redis.log"
for _ in $(seq 100); do
  if [ "$(redis-cli -p "$redis_port" --tls --cacert "$tls_dir/ca.pem" ping 2>/dev/null)" = "PONG" ]; then break; fi
  sleep 0.1
done
[ "$(redis-cli -p "$redis_port" --tls --cacert "$tls_dir/ca.pem" ping)" = "PONG" ] \
  || { echo "redis-server with TLS did not start"; cat "$tls_dir/redis.log"; exit 1; }

export ARK_TLS_DIR=$tls_dir
export ARK_TLS_PG_URL=postgres://ark_tls_only:ark-ci@127.0.0.1:5432/ark_auth_tls
export ARK_TLS_REDIS_URL=rediss://127.0.0.1:$redis_port/
