#!/bin/sh
# Regenerate expected.json for every case from the reference docker compose v2 binary.
# Each case is a folder holding compose.yaml (and the files it refers to). The binary runs
# with a fixed, minimal environment so results do not depend on the machine; absolute
# paths in its output are replaced by @CASE@ (the case folder) and @DATA@ (this folder) so
# the checked-in JSON is path-independent. Usage: sh regen.sh [case...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
compose=${COMPOSE_BIN:-/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/compose/docker-compose}
cd "$here"
cases=${*:-$(ls -d */ | tr -d /)}
for case in $cases; do
    dir="$here/$case"
    env -i HOME=/home/user PATH=/usr/bin:/bin FROMENV=osvalue Y=osy \
        "$compose" --project-directory "$dir" -f "$dir/compose.yaml" -p pc \
        config --format json > "$dir/expected.raw" 2> "$dir/stderr.txt" || {
            echo "$case: docker compose failed:" >&2; cat "$dir/stderr.txt" >&2; exit 1; }
    sed -e "s#$dir#@CASE@#g" -e "s#$here#@DATA@#g" "$dir/expected.raw" > "$dir/expected.json"
    rm -f "$dir/expected.raw" "$dir/stderr.txt"
    echo "$case: ok"
done
