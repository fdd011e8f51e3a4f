# Sourced by integration/engines/docker.sh (DOCKER_ONLY=this file) for lsm_apparmor.rs, on a host
# with AppArmor and the gpurun-test-deny-tmp profile (apparmor-deny-tmp.profile) loaded: $D is
# the client of its private dockerd, $IMG the imported busybox image.
say "AppArmor: --security-opt apparmor=PROFILE, docker-default"
P=gpurun-test-deny-tmp
PROBE='cat /proc/self/attr/current; touch /tmp/x 2>/dev/null && echo wrote || echo denied'
check "apparmor=$P: confined, no writes under /tmp" expect_out "$P (enforce)
denied" $D run --rm --security-opt apparmor=$P $IMG sh -c "$PROBE"
check "apparmor=unconfined: writes" expect_out "unconfined
wrote" $D run --rm --security-opt apparmor=unconfined $IMG sh -c "$PROBE"
# dockerd loaded docker-default (apparmor_parser) at start: every container gets it by default
check "no option: docker-default" expect_out "docker-default (enforce)
wrote" $D run --rm $IMG sh -c "$PROBE"
check "run -d apparmor=$P" bash -c "$D run -d --name aa --security-opt apparmor=$P $IMG sleep 300 >/dev/null"
check "docker exec: confined too" expect_out "$P (enforce)
denied" $D exec aa sh -c "$PROBE"
check "rm -f" bash -c "$D rm -f aa >/dev/null"
