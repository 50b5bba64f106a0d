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
echo "== done: the engine keeps running in the background; stop it with: $PC engine stop"
