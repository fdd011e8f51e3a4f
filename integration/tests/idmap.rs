//! Idmapped mounts (runc 1.2's `mounts[].uidMappings`/`gidMappings`, `idmap`/`ridmap`): a bind
//! mount shows its files with mapped owners, with and without a container user namespace;
//! what the kernel or the spec rules refuse fails clearly and leaves nothing.

use gpurun_integration::*;
use std::path::PathBuf;
use std::process::Command;

const USERNS_BASE: u32 = 100000;

/// A host dir with a file owned by root and one by 1000:1000.
fn source_dir(env: &Env) -> PathBuf {
    let dir = env.dir.join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("by-root"), "r").unwrap();
    std::fs::write(dir.join("by-1000"), "u").unwrap();
    std::os::unix::fs::chown(dir.join("by-1000"), Some(1000), Some(1000)).unwrap();
    dir
}

fn idmapped_bind(source: &PathBuf, options: &[&str], map: Option<(u32, u32)>) -> Value {
    let mut m = json!({"destination": "/data", "type": "bind",
                       "source": source, "options": options});
    if let Some((host, size)) = map {
        let maps = json!([{"containerID": 0, "hostID": host, "size": size}]);
        m["uidMappings"] = maps.clone();
        m["gidMappings"] = maps;
    }
    m
}

/// `uid gid name` of every file under /data, as the container sees them.
fn owners(out: &Out) -> Vec<String> {
    out.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Skips (with the reason) on kernels without idmapped mounts (before 5.12).
fn kernel_has_idmap() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    let ok = (major, minor) >= (5, 12);
    if !ok {
        skip(&format!("kernel {} has no idmapped mounts", release.trim()));
    }
    ok
}

const LIST: &str = "cd /data && stat -c '%u %g %n' by-1000 by-root";

/// Run `LIST` with `edit`; None (the reason printed) when the filesystem under the test dir
/// cannot be idmapped (e.g. tmpfs before Linux 6.3, as in the UML VM) — gpurun's own refusal.
fn list_owners(env: &Env, edit: impl FnOnce(&mut Value)) -> Option<Out> {
    env.config(|s| {
        set_args(s, &["sh", "-c", LIST]);
        edit(s);
    });
    let out = env.run(&env.id());
    if !out.ok() && out.stderr.contains("does not support idmapped mounts") {
        skip(out.stderr.trim());
        env.assert_clean();
        return None;
    }
    out.assert_ok();
    Some(out)
}

#[test]
fn an_idmapped_bind_mount_shows_mapped_owners() {
    if !require_root() || !gpurun_only() || !kernel_has_idmap() {
        return;
    }
    let env = Env::new("idmap_plain");
    let src = source_dir(&env);
    // No container user namespace: on-disk 0 and 1000 are seen as 2000 and 3000.
    let Some(out) = list_owners(&env, |s| {
        s["mounts"].as_array_mut().unwrap().push(idmapped_bind(
            &src,
            &["bind", "idmap"],
            Some((2000, 5000)),
        ));
    }) else {
        return;
    };
    assert_eq!(
        owners(&out),
        ["3000 3000 by-1000", "2000 2000 by-root"],
        "{}",
        out.describe()
    );
    // The host's view of the source is unchanged.
    let host = Command::new("stat")
        .args(["-c", "%u"])
        .arg(src.join("by-1000"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout).trim(), "1000");
    env.assert_clean();
}

#[test]
fn idmap_without_mappings_uses_the_container_user_namespace() {
    if !require_root() || !gpurun_only() || !kernel_has_idmap() {
        return;
    }
    let env = Env::new("idmap_userns");
    Command::new("chown")
        .args(["-R", &format!("{USERNS_BASE}:{USERNS_BASE}")])
        .arg(env.rootfs())
        .status()
        .unwrap();
    let src = source_dir(&env);
    let Some(out) = list_owners(&env, |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": USERNS_BASE, "size": 65536}]);
        s["linux"]["uidMappings"] = map.clone();
        s["linux"]["gidMappings"] = map;
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .push(idmapped_bind(&src, &["rbind", "idmap"], None));
    }) else {
        return;
    };
    // Host-root's files are the container root's (without the idmap: 65534, nobody).
    assert_eq!(
        owners(&out),
        ["1000 1000 by-1000", "0 0 by-root"],
        "{}",
        out.describe()
    );
    env.assert_clean();
}

#[test]
fn idmap_refusals_name_the_mount_and_leave_nothing() {
    if !require_root() || !gpurun_only() || !kernel_has_idmap() {
        return;
    }
    let env = Env::new("idmap_bad");
    let src = source_dir(&env);
    let with_mount = |m: Value| {
        env.config(|s| {
            set_args(s, &["true"]);
            s["mounts"].as_array_mut().unwrap().push(m);
        })
    };
    // Spec rules: only uid mappings; an idmapped tmpfs; `idmap` without any mappings.
    let mut half = idmapped_bind(&src, &["bind"], Some((2000, 10)));
    half.as_object_mut().unwrap().remove("gidMappings");
    with_mount(half);
    env.run(&env.id())
        .assert_err("mount /data: uidMappings and gidMappings");
    with_mount(
        json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                      "options": ["idmap"]}),
    );
    env.run(&env.id()).assert_err("bind mounts only");
    with_mount(idmapped_bind(&src, &["bind", "idmap"], None));
    env.run(&env.id()).assert_err("mount /data: idmap without");
    // The kernel's refusal: procfs cannot be idmapped.
    with_mount(idmapped_bind(
        &PathBuf::from("/proc"),
        &["rbind"],
        Some((2000, 10)),
    ));
    env.run(&env.id())
        .assert_err("does not support idmapped mounts");
    env.assert_clean();
}
