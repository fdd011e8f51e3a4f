#!/bin/sh
# systemd-units.sh D: for VMRUN_SYSTEMD=1 (vmrun, vmrun-qemu), write into the host temp dir D
# (the guest's VMRUN_DIR, shared read-write, cmd.sh already there) what the guest's init copies
# into the overlay root before it starts /lib/systemd/systemd --unit=vmrun.service:
#   D/systemd/        -> /etc/systemd/system/
#     vmrun.service     Type=exec (the boot job ends at once: is-system-running says "running"),
#                       no default dependencies, D-Bus socket first, runs D/service.sh; powers
#                       off (forced: no unit is stopped first) when it ends either way
#     dbus.{socket,service}.d/vmrun.conf   D-Bus without sysinit.target/sockets.target
#     tmp.mount -> /dev/null               /tmp stays the host's /tmp (the repository may be there)
#     systemd-tmpfiles-*  -> /dev/null     nor is it emptied when a unit pulls in sysinit.target
#   D/generators/     -> /etc/systemd/system-generators/: every generator masked (fstab, getty,
#                       sysv, ...: nothing they make is wanted here; each costs a fork under TCG,
#                       at boot and at every daemon-reload)
#   D/service.sh        runs cmd.sh through a pipe (not the console tty), writes its exit status
#                       to D/rc, syncs, and lets the serial console drain before the power-off
# The command runs in /system.slice/vmrun.service, the manager in /init.scope.
set -eu
D=${1:?usage: systemd-units.sh VMRUN_DIR}
S=$D/systemd
mkdir -p "$S/dbus.socket.d" "$S/dbus.service.d" "$D/generators"
cat >"$S/vmrun.service" <<EOT
[Unit]
Description=vmrun command
DefaultDependencies=no
Wants=dbus.socket
After=dbus.socket
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=exec
TimeoutStartSec=infinity
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
ExecStart=/bin/sh $D/service.sh
EOT
for u in dbus.socket dbus.service; do
	printf '[Unit]\nDefaultDependencies=no\n' >"$S/$u.d/vmrun.conf"
done
ln -sf /dev/null "$S/tmp.mount"
# Units that pull in sysinit.target (user@UID.service for a rootless test) would run the boot
# tmpfiles pass, which empties /tmp ("D /tmp"), the host's /tmp seen through the overlay.
for u in systemd-tmpfiles-setup.service systemd-tmpfiles-clean.service systemd-tmpfiles-clean.timer; do
	ln -sf /dev/null "$S/$u"
done
for g in /lib/systemd/system-generators/* /usr/lib/systemd/system-generators/* \
	/etc/systemd/system-generators/* /usr/local/lib/systemd/system-generators/*; do
	[ -e "$g" ] && ln -sf /dev/null "$D/generators/${g##*/}"
done
cat >"$D/service.sh" <<EOT
# through a pipe, not the console tty, as under CI
{ /bin/sh $D/cmd.sh </dev/null 2>&1; echo \$? >$D/rc; } | cat
sync
# let the serial console drain first, or its last lines are lost at power-off
perl -MPOSIX -e 'open(my \$c, ">", "/dev/console") and POSIX::tcdrain(fileno(\$c))' 2>/dev/null || sleep 1
EOT
