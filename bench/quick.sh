#!/usr/bin/env bash
# Quick side-by-side figures until `bench` (issue 7) exists:
#  1. deploy time of a 1,000-file folder through `coordinator dev` (cold, then unchanged redeploy);
#  2. wrk keep-alive load on a 1 KB file: the edge node vs nginx serving the same file.
# Loopback only; every run is bounded (wrk -d). Needs release binaries, nginx and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API=$(free_port); QUIC=$(free_port); HTTP=$(free_port); HTTPS=$(free_port); NGINX=$(free_port)

export HOME="$work/home"; mkdir -p "$HOME"
"$BIN/coordinator" dev --data-dir "$work/dev" --api-port "$API" --quic-port "$QUIC" \
  --http-port "$HTTP" --https-port "$HTTPS" > "$work/dev.log" 2>&1 &
for _ in $(seq 1 100); do grep -q "Outpost dev is running" "$work/dev.log" && break; sleep 0.1; done

mkdir -p "$work/site/pages"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$work/site/1k.txt"
echo '<h1>bench</h1>' > "$work/site/index.html"
for i in $(seq 1 998); do echo "<p>page $i $(head -c 64 /dev/urandom | base64 -w0)</p>" > "$work/site/pages/$i.html"; done

t0=$(date +%s.%N)
"$BIN/coordinator" deploy "$work/site" --project bench --prod --json > "$work/deploy1.json"
t1=$(date +%s.%N)
until curl -fs -H 'Host: bench.localhost' "http://127.0.0.1:$HTTP/1k.txt" -o /dev/null; do sleep 0.01; done
t2=$(date +%s.%N)
"$BIN/coordinator" deploy "$work/site" --project bench --prod --json > "$work/deploy2.json"
t3=$(date +%s.%N)

mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$NGINX; root $work/site; etag on; }
}
NGINX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"
sleep 0.3

run_wrk() { wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Host: $2" "$1" ; }
edge_out=$(run_wrk "http://127.0.0.1:$HTTP/1k.txt" bench.localhost)
nginx_out=$(run_wrk "http://127.0.0.1:$NGINX/1k.txt" localhost)

secs() { python3 -c "print(round($1 - $2, 3))"; }
rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '/ 99%/ {print $2}'; }
echo "## deploy (1,000 files)"
echo "first deploy:     $(secs "$t1" "$t0") s  ($(python3 -c "import json;d=json.load(open('$work/deploy1.json'));print(d['uploaded_blobs'],'of',d['blobs'],'blobs uploaded')"))"
echo "deploy returned → edge serves it: $(secs "$t2" "$t1") s"
echo "unchanged redeploy: $(secs "$t3" "$t2") s  ($(python3 -c "import json;d=json.load(open('$work/deploy2.json'));print(d['uploaded_blobs'],'blobs uploaded')"))"
echo
echo "## 1 KB file, wrk -t$THREADS -c$CONNS -d$DURATION (keep-alive)"
e_rps=$(echo "$edge_out" | rps); n_rps=$(echo "$nginx_out" | rps)
echo "| server | req/s | p50 | p99 |"
echo "|---|---|---|---|"
echo "| outpost edge | $e_rps | $(echo "$edge_out" | awk '/ 50%/ {print $2}') | $(echo "$edge_out" | p99) |"
echo "| nginx        | $n_rps | $(echo "$nginx_out" | awk '/ 50%/ {print $2}') | $(echo "$nginx_out" | p99) |"
echo "edge/nginx req/s ratio: $(python3 -c "print(round($e_rps/$n_rps, 2))")"
