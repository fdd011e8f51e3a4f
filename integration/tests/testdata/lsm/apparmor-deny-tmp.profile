# gpurun's integration tests (lsm_apparmor.rs, the Docker case): everything allowed except
# writes under /tmp. attach_disconnected: a container's files (after pivot_root) are not
# reachable from the host's root, and would be refused without it.
profile gpurun-test-deny-tmp flags=(attach_disconnected,mediate_deleted) {
  file,
  capability,
  network,
  mount,
  umount,
  pivot_root,
  signal,
  ptrace,
  unix,
  dbus,
  deny /tmp/** w,
}
