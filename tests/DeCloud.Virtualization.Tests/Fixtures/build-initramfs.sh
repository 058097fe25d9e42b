#!/usr/bin/env bash
# Builds the real-VM test guest: an initramfs with static busybox and qemu-guest-agent (plus the shared libraries
# ldd finds) that loads the virtio modules the agent channel needs, writes the cloud-init marker, serves HTTP on
# 8080 and runs qemu-ga on /dev/virtio-ports/org.qemu.guest_agent.0.
# usage: build-initramfs.sh OUT.img KERNEL_VERSION
set -euo pipefail
out="$1"; kver="$2"
root="$(mktemp -d /tmp/dcv-initramfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,lib,lib64,usr/sbin,proc,sys,dev,run,tmp,www,etc,mnt/seed,var/lib/cloud/instance,lib/modules}
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/busybox"
# qemu-ga and curl (busybox-static's wget crashes in getaddrinfo without NSS), with their shared libraries.
mkdir -p "$root/usr/bin"
cp /usr/sbin/qemu-ga "$root/usr/sbin/qemu-ga"
cp /usr/bin/curl "$root/usr/bin/curl"
for lib in $( (ldd /usr/sbin/qemu-ga; ldd /usr/bin/curl) | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
done
# Copy the modules the agent channel and the NoCloud seed disk need, and record a load order with dependencies first (from modules.dep).
dep=/lib/modules/$kver/modules.dep
order=()
add() {
  local m="$1" line d
  line="$(grep -E "(^|/)$m\.ko(\.[a-z]+)?:" "$dep" || true)"
  if [[ -z "$line" ]]; then
    grep -qE "/$m\.ko" "/lib/modules/$kver/modules.builtin" 2>/dev/null && return 0
    echo "module $m not found for kernel $kver" >&2; exit 1
  fi
  for d in ${line#*:}; do add "$(basename "${d%%.ko*}")"; done
  if [[ " ${order[*]-} " != *" $m "* ]]; then
    order+=("$m")
    cp "/lib/modules/$kver/${line%%:*}" "$root/lib/modules/$m.ko"
  fi
}
add virtio_pci
add virtio_console
add virtio_blk
add isofs
printf '%s\n' "${order[@]}" > "$root/lib/modules/order"
cat > "$root/sbin/shutdown" <<'SH'
#!/bin/sh
sync
exec /bin/busybox poweroff -f
SH
chmod +x "$root/sbin/shutdown"
echo '<html>ok</html>' > "$root/www/index.html"
cat > "$root/init" <<'SH'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || echo "insmod $m failed" > /dev/console
done
ip link set lo up
httpd -p 8080 -h /www
mkdir -p /dev/virtio-ports
for i in $(seq 1 100); do
  for p in /sys/class/virtio-ports/*; do
    [ -f "$p/name" ] && ln -sf "/dev/$(basename "$p")" "/dev/virtio-ports/$(cat "$p/name")"
  done
  [ -e /dev/virtio-ports/org.qemu.guest_agent.0 ] && break
  sleep 0.1
done
date > /var/lib/cloud/instance/boot-finished
echo "dcv-guest: ready" > /dev/console
qemu-ga -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -f /run/qemu-ga.pid &
while true; do sleep 3600; done
SH
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
