#!/usr/bin/env bash
# guest-image.sh [CACHE_DIR]
#
# Builds, once, a tiny QEMU guest for the vhost-user end-to-end tests:
#   CACHE_DIR/vmlinuz     Debian's cloud kernel (linux-image-cloud-amd64)
#   CACHE_DIR/initrd.gz   busybox-static + virtio_net (and the modules it
#                         needs) + an /init driven by the kernel command line
# CACHE_DIR defaults to /var/cache/xvs-guest. Nothing is installed on the
# host: the two .deb files are fetched with `apt-get download` and unpacked
# with dpkg-deb -x. A second run with a complete cache built by this same
# script (the cache is keyed on the script's sha256, so an edited /init is
# rebuilt) does nothing.
# Prints the two paths on stdout (kernel first) when done.
#
# Set XVS_GUEST_KERNEL_PKG to pick another kernel package (its vmlinuz and
# modules are used); XVS_GUEST_REBUILD=1 rebuilds even with a cache.
#
# The guest's /init reads these kernel command line parameters:
#   xvs.if=eth0           interface to configure (default eth0)
#   xvs.ip=10.0.0.5/24    address for it (omit: link up only)
#   xvs.mtu=N             MTU
#   xvs.gw=10.0.0.1       default route
#   xvs.ping=10.0.0.1     ping it once the network is up (after XVS-NET-UP);
#                         prints XVS-PING-OK or XVS-PING-FAIL
#   xvs.count=3           ping count (default 3)
#   xvs.wait=10           seconds ping waits in all (-w, default 10)
#   xvs.cmd64=BASE64      a shell command, base64-encoded (no spaces on the
#                         kernel command line); prints XVS-CMD-RC=<rc>
#   xvs.stay=1            do not power off: print XVS-READY and run a shell
#                         on the serial console (commands can be typed on
#                         QEMU's stdin with -nographic)
# Marker lines on the console: XVS-BOOT, XVS-NET-UP <if> <addr> <mac>,
# XVS-NET-FAIL <reason> (then nothing but XVS-READY or XVS-POWEROFF: no
# ping verdict, so a failed ping always means the network was up),
# XVS-PING-OK, XVS-PING-FAIL, XVS-CMD-RC=<n>, XVS-READY, XVS-POWEROFF.
# Markers may follow other output on the same console line: match them as
# substrings.
set -euo pipefail

cache=${1:-/var/cache/xvs-guest}
kernel_out=$cache/vmlinuz
initrd_out=$cache/initrd.gz
stamp=$cache/.complete
key=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

if [[ -f $stamp && -f $kernel_out && -f $initrd_out && -z ${XVS_GUEST_REBUILD:-} ]] &&
	[[ $(head -c ${#key} "$stamp") == "$key" ]]; then
	echo "$kernel_out"
	echo "$initrd_out"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/xvs-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT

log() { echo "guest-image: $*" >&2; }

kpkg=${XVS_GUEST_KERNEL_PKG:-}
if [[ -z $kpkg ]]; then
	# linux-image-cloud-amd64 is a meta package: take the versioned one it
	# depends on (linux-image-6.1.0-NN-cloud-amd64 on Debian 12).
	kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ && !f { print $2; f = 1 }')
	if [[ -z $kpkg ]]; then
		log "no linux-image-cloud-amd64 in the apt lists; running apt-get update"
		apt-get update -qq >&2
		kpkg=$(apt-cache depends linux-image-cloud-amd64 |
			awk '/Depends: linux-image-[0-9]/ && !f { print $2; f = 1 }')
	fi
	[[ -n $kpkg ]] || { log "cannot resolve linux-image-cloud-amd64"; exit 1; }
fi

log "downloading $kpkg busybox-static"
download() {
	(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" busybox-static >&2)
}
download || {
	log "apt-get download failed; running apt-get update and retrying"
	apt-get update -qq >&2
	download
}

mkdir -p "$work/deb"
for deb in "$work"/*.deb; do
	dpkg-deb -x "$deb" "$work/deb"
done

vmlinuz=$(ls "$work"/deb/boot/vmlinuz-* | head -n1)
kver=${vmlinuz##*/vmlinuz-}
moddir=$work/deb/lib/modules/$kver
[[ -d $moddir ]] || moddir=$work/deb/usr/lib/modules/$kver
bb=$work/deb/bin/busybox
[[ -x $bb ]] || bb=$work/deb/usr/bin/busybox
[[ -x $bb && -f $vmlinuz && -d $moddir ]] || { log "unexpected package layout"; exit 1; }
log "kernel $kver"

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root,lib/modules/"$kver"}
cp "$bb" "$root/bin/busybox"
# Applet links are made at build time so /init can be plain #!/bin/sh.
for applet in $("$bb" --list); do
	[[ $applet == busybox ]] && continue
	ln -sf busybox "$root/bin/$applet"
done

# Modules: virtio_net and virtio_pci with everything they depend on; any
# that the kernel has built in are simply absent and skipped.
declare -A seen=()
need_mod() {
	local name=$1 f deps d
	[[ -n ${seen[$name]:-} ]] && return 0
	seen[$name]=1
	f=$(find "$moddir/kernel" -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" -o -name "$name.ko.gz" | head -n1)
	if [[ -z $f ]]; then
		# "_" and "-" are interchangeable in module names.
		f=$(find "$moddir/kernel" -name "${name//_/-}.ko*" | head -n1)
	fi
	if [[ -z $f ]]; then
		if grep -q "/${name}.ko" "$moddir/modules.builtin" 2>/dev/null; then
			log "module $name is built in"
		else
			log "module $name not found (assuming built in)"
		fi
		return 0
	fi
	local rel=${f#"$moddir"/}
	local dst=$root/lib/modules/$kver/${rel%.ko*}.ko
	mkdir -p "$(dirname "$dst")"
	case $f in
	*.ko.xz) xz -dc "$f" >"$dst" 2>/dev/null || "$bb" xzcat "$f" >"$dst" ;;
	*.ko.zst) zstd -dc "$f" >"$dst" ;;
	*.ko.gz) gzip -dc "$f" >"$dst" ;;
	*) cp "$f" "$dst" ;;
	esac
	# The .modinfo section holds NUL-separated key=value strings.
	deps=$(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p')
	for d in ${deps//,/ }; do
		need_mod "$d"
	done
}
for m in virtio_pci virtio_net; do
	need_mod "$m"
done
cp "$moddir/modules.builtin" "$moddir/modules.order" "$root/lib/modules/$kver/" 2>/dev/null || true
"$bb" depmod -b "$root" "$kver"
log "modules: $(cd "$root/lib/modules/$kver" && find . -name '*.ko' -printf '%f ' )"

cat >"$root/init" <<'INIT'
#!/bin/sh
# xvs test guest init: see scripts/guest-image.sh for the parameters.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
exec </dev/console >/dev/console 2>&1
echo
echo "XVS-BOOT $(cut -d' ' -f1 /proc/uptime)s"

IF=eth0 IP= GW= MTU= PING= COUNT=3 WAIT=10 CMD64= STAY=
for arg in $(cat /proc/cmdline); do
	case $arg in
	xvs.if=*) IF=${arg#*=} ;;
	xvs.ip=*) IP=${arg#*=} ;;
	xvs.gw=*) GW=${arg#*=} ;;
	xvs.mtu=*) MTU=${arg#*=} ;;
	xvs.ping=*) PING=${arg#*=} ;;
	xvs.count=*) COUNT=${arg#*=} ;;
	xvs.wait=*) WAIT=${arg#*=} ;;
	xvs.cmd64=*) CMD64=${arg#*=} ;;
	xvs.stay=*) STAY=${arg#*=} ;;
	esac
done

finish() {
	if [ -n "$STAY" ] && [ "$STAY" != 0 ]; then
		echo "XVS-READY"
		while true; do
			setsid cttyhack sh -l
			sleep 1
		done
	fi
	echo "XVS-POWEROFF"
	sync
	poweroff -f
	sleep 5
	exit 1 # panic; with panic=-1 and QEMU -no-reboot that ends QEMU too
}

modprobe virtio_pci 2>/dev/null
modprobe virtio_net 2>/dev/null
ip link set lo up

i=0
while [ ! -e /sys/class/net/$IF ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ ! -e /sys/class/net/$IF ]; then
	echo "XVS-NET-FAIL no $IF: $(ls /sys/class/net | tr '\n' ' ')"
	finish
fi
[ -n "$MTU" ] && ip link set "$IF" mtu "$MTU"
ip link set "$IF" up
if [ -n "$IP" ] && ! ip addr add "$IP" dev "$IF"; then
	echo "XVS-NET-FAIL addr $IP"
	finish
fi
[ -n "$GW" ] && ip route add default via "$GW"
echo "XVS-NET-UP $IF ${IP:-none} $(cat /sys/class/net/$IF/address)"

if [ -n "$PING" ]; then
	# The link of a vhost-user port comes up once the backend has the rings;
	# ping -w keeps trying for WAIT seconds and stops after COUNT replies.
	if ping -c "$COUNT" -w "$WAIT" "$PING"; then
		echo "XVS-PING-OK"
	else
		echo "XVS-PING-FAIL"
	fi
fi

if [ -n "$CMD64" ]; then
	echo "$CMD64" | base64 -d >/tmp/cmd.sh
	sh /tmp/cmd.sh
	echo "XVS-CMD-RC=$?"
fi

finish
INIT
chmod 755 "$root/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

(cd "$root" && find . | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null) | gzip -9n >"$work/initrd.gz"

# Copy next to the targets first so each rename is atomic.
cp "$vmlinuz" "$kernel_out.tmp.$$"
cp "$work/initrd.gz" "$initrd_out.tmp.$$"
mv -f "$kernel_out.tmp.$$" "$kernel_out"
mv -f "$initrd_out.tmp.$$" "$initrd_out"
echo "$key $kpkg $kver" >"$stamp"
log "done: $(du -h "$kernel_out" | cut -f1) kernel, $(du -h "$initrd_out" | cut -f1) initrd"
echo "$kernel_out"
echo "$initrd_out"
