#!/bin/sh
# PID 1 of the vmrun guest (see vmrun). The kernel hands us, as environment:
#   VMRUN_DIR     host temp dir (cmd.sh in, rc out), mounted rw at the same path
#   VMRUN_RW      ":"-separated host dirs to mount rw at the same paths
#   VMRUN_CGROUP  optional child cgroup for the command ("" = root cgroup)
#   VMRUN_SYSTEMD 1: systemd as PID 1 instead (it mounts the cgroup2 itself and runs cmd.sh as
#                 vmrun.service: units from systemd-units.sh, in VMRUN_DIR)
# Our / is the host's / via hostfs, read-only. We build a writable copy of it
# (overlay with a tmpfs upper layer), give it fresh proc/sys/dev and a pure
# cgroup2, switch into it, run cmd.sh, write its exit status, power off.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
die() { echo "vmrun guest: $*"; busybox poweroff -f; }

mount -t proc proc /proc
mount -t tmpfs -o mode=755 tmpfs /run
busybox insmod "/usr/lib/uml/modules/$(uname -r)/kernel/fs/overlayfs/overlay.ko" || die "no overlay module"
mkdir -p /run/ovl/upper /run/ovl/work /run/ovl/root
R=/run/ovl/root
mount -t overlay overlay -o lowerdir=/,upperdir=/run/ovl/upper,workdir=/run/ovl/work $R || die "overlay failed"

mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
ln -sf pts/ptmx $R/dev/ptmx
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t mqueue mqueue $R/dev/mqueue
mount -t tmpfs -o mode=755 tmpfs $R/run
# Engine storage must not be overlay-on-overlay: containerd's and Podman's snapshotters mount
# overlays of their own there (guest-tests.sh also points TMPDIR at a tmpfs under /run). Not
# /tmp itself: the repository under test may live there.
for d in /var/lib/containers /var/lib/containerd; do
	mkdir -p "$R$d" && mount -t tmpfs -o mode=1777 tmpfs "$R$d"
done

# Pure cgroup v2; delegate every available controller to children of the root.
if [ "${VMRUN_SYSTEMD:-}" != 1 ]; then
	mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || die "cgroup2 mount failed"
	for c in $(cat $R/sys/fs/cgroup/cgroup.controllers); do
		echo "+$c" >$R/sys/fs/cgroup/cgroup.subtree_control || echo "vmrun guest: cannot enable $c"
	done
fi

# Kernel modules for modprobe (overlay, veth, ...): UML keeps them elsewhere.
mkdir -p "$R/lib/modules/$(uname -r)"
mount --bind "/usr/lib/uml/modules/$(uname -r)" "$R/lib/modules/$(uname -r)"

# Host dirs shared read-write (hostfs writes go straight to the host).
mkdir -p "$R$VMRUN_DIR"
mount -t hostfs -o "$VMRUN_DIR" hostfs "$R$VMRUN_DIR" || die "cannot mount $VMRUN_DIR"
IFS=:
for d in ${VMRUN_RW:-}; do
	mkdir -p "$R$d"
	mount -t hostfs -o "$d" hostfs "$R$d" || die "cannot mount $d"
done
unset IFS

hostname vmrun
if [ "${VMRUN_SYSTEMD:-}" = 1 ]; then
	mkdir -p $R/etc/systemd/system $R/etc/systemd/system-generators
	cp -a "$R$VMRUN_DIR/systemd/." $R/etc/systemd/system/ &&
		cp -a "$R$VMRUN_DIR/generators/." $R/etc/systemd/system-generators/ || die "no units in $VMRUN_DIR"
	echo vmrun >$R/etc/hostname
fi
cd $R
mkdir -p run/oldroot
pivot_root . run/oldroot || die "pivot_root failed"
if [ "${VMRUN_SYSTEMD:-}" = 1 ]; then
	# quiet from the start (its first messages precede the parsing of its arguments)
	export SYSTEMD_LOG_LEVEL=warning SYSTEMD_LOG_TARGET=kmsg
	exec chroot . /bin/sh -c 'umount -l /run/oldroot; exec /lib/systemd/systemd --unit=vmrun.service --log-target=kmsg --log-level=warning --show-status=0'
fi
exec chroot . /bin/sh -c '
	umount -l /run/oldroot
	ip link set lo up 2>/dev/null
	if [ -n "$VMRUN_CGROUP" ]; then
		mkdir -p "/sys/fs/cgroup$VMRUN_CGROUP" && echo $$ >"/sys/fs/cgroup$VMRUN_CGROUP/cgroup.procs"
	fi
	# through a pipe, not the console tty, as under CI
	{ /bin/sh "$VMRUN_DIR/cmd.sh" </dev/null 2>&1; echo $? >"$VMRUN_DIR/rc"; } | cat
	sync
	busybox poweroff -f'
