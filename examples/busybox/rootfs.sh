#!/bin/sh
# Write a busybox root filesystem tarball from Debian's busybox-static to $1 (default
# busybox-rootfs.tar): the image the demo and the tutorial use, made without Docker Hub.
set -eu
out=${1:-busybox-rootfs.tar}
busybox=$(command -v busybox)
[ -n "$busybox" ] && "$busybox" --list >/dev/null || { echo "needs busybox-static" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/var/www"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$out" .
echo "$out"
