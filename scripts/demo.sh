#!/bin/sh
# Set up (see setup.sh), then show pycompose working on this machine, without Docker Hub:
#   1. `pycompose config` of the example project, as docker compose config prints it;
#   2. the Docker tutorial's container commands on pycompose's own engine, with a busybox
#      image made from Debian's busybox-static.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
PC="$PWD/.venv/bin/pycompose"

echo "== pycompose config (examples/hello)"
(cd examples/hello && "$PC" config)

echo "== a busybox image from busybox-static"
tar=$(mktemp --suffix=.tar)
trap 'rm -f "$tar"' EXIT
examples/busybox/rootfs.sh "$tar" >/dev/null
"$PC" image import -c 'CMD ["sh"]' -c 'ENV PATH=/bin' "$tar" busybox:latest
"$PC" tag busybox:latest mybusybox:1.28
"$PC" images

echo "== the tutorial's commands"
"$PC" run --rm busybox echo "hello from a pycompose container"
"$PC" rm -f mynginx >/dev/null 2>&1 || true
"$PC" run -itd --name mynginx busybox sh -c 'echo serving; exec httpd -f -v -p 80 -h /var/www'
"$PC" ps
"$PC" logs mynginx
"$PC" top mynginx
"$PC" inspect --format 'pid {{.State.Pid}}, status {{.State.Status}}' mynginx
"$PC" exec mynginx sh -c 'echo "<h1>hi</h1>" > /var/www/index.html; wget -q -O - http://127.0.0.1/'
"$PC" stop -t 1 mynginx
"$PC" rm mynginx
"$PC" rmi mybusybox:1.28

echo "== a published port, answered on the host"
"$PC" rm -f web >/dev/null 2>&1 || true
"$PC" run -d --name web -p 127.0.0.1:8080:80 busybox sh -c \
  'mkdir -p /www; echo "<h1>hello from pycompose</h1>" > /www/index.html; exec httpd -f -p 80 -h /www'
"$PC" port web
for _ in 1 2 3 4 5 6 7 8 9 10; do
  page=$(busybox wget -q -O - http://127.0.0.1:8080/ 2>/dev/null) && break
  sleep 0.2
done
echo "GET http://127.0.0.1:8080/ -> ${page:-no answer}"
"$PC" rm -f web

echo "== a user-defined network: containers find each other by name (DNS at 127.0.0.11)"
"$PC" rm -f db >/dev/null 2>&1 || true
"$PC" network rm demo-net >/dev/null 2>&1 || true
"$PC" network create demo-net
"$PC" run -d --name db --network demo-net busybox sleep 300 >/dev/null
"$PC" run --rm --network demo-net busybox sh -c 'cat /etc/resolv.conf; nslookup db; ping -c 1 db'
"$PC" rm -f db
"$PC" network rm demo-net
[ -n "${page:-}" ] || { echo "the published port did not answer" >&2; exit 1; }
echo "== done: the engine keeps running in the background; stop it with: $PC engine stop"
