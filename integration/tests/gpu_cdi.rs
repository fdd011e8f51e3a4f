//! CDI (gpurun-only) on the fake GPU host: `gpurun cdi generate|list` against a golden file,
//! CDI annotations applying every kind of edit, and `gpurun hook nvidia` (hooks/) under runc.

use gpurun_integration::*;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/testdata/cdi-h100x2.json"
);

/// `cdi generate` against a golden file (the fixture's temp paths and the binary's path
/// replaced by placeholders); `UPDATE_GOLDEN=1` rewrites it, and the run still fails when
/// the committed file differed (the next run passes). `cdi list` names every device.
#[test]
fn gpu_cdi_generate_matches_golden_and_list() {
    let Some((env, host)) = gpu_env("gpu_cdi_gen", h100x2()) else {
        return;
    };
    let out_file = env.dir.join("nvidia.json");
    env.gpurun(&[
        "cdi",
        "generate",
        "--format",
        "json",
        "--output",
        out_file.to_str().unwrap(),
    ])
    .assert_ok();
    let text = std::fs::read_to_string(&out_file).unwrap();
    let bin = std::fs::canonicalize(bin()).unwrap();
    let normalised = text
        .replace(host.dir.to_str().unwrap(), "@HOST@")
        .replace(bin.to_str().unwrap(), "@GPURUN@");
    // The committed file, read before any update: the comparison is always against it.
    let golden = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    if update && normalised != golden {
        std::fs::write(GOLDEN, &normalised).unwrap();
    }
    assert_eq!(
        normalised,
        golden,
        "cdi generate differs from {GOLDEN}{}",
        if update {
            " (UPDATE_GOLDEN: rewritten; review the diff and run again)"
        } else {
            " (UPDATE_GOLDEN=1 rewrites it)"
        }
    );
    // YAML carries the same spec.
    let yaml = env.gpurun(&["cdi", "generate"]);
    yaml.assert_ok();
    assert!(
        yaml.stdout
            .starts_with("cdiVersion: 0.6.0\nkind: nvidia.com/gpu\n"),
        "{}",
        yaml.describe()
    );
    let list = env.gpurun(&["cdi", "list"]);
    let names: Vec<&str> = list.stdout.lines().collect();
    let (u0, u1) = (host.uuid(0), host.uuid(1));
    let want = [
        "nvidia.com/gpu=0".to_string(),
        format!("nvidia.com/gpu={u0}"),
        "nvidia.com/gpu=1".into(),
        format!("nvidia.com/gpu={u1}"),
        "nvidia.com/gpu=all".into(),
    ];
    assert_eq!(names, want, "{}", list.describe());
    env.assert_clean();
}

/// CDI annotations: the generated spec (devices, driver mounts, the ld-cache hook) and a
/// hand-written YAML spec with every kind of edit; a later spec dir wins; unknown devices fail.
#[test]
fn gpu_cdi_annotations_apply_every_edit() {
    let Some((env, host)) = gpu_env("gpu_cdi_apply", h100x2()) else {
        return;
    };
    let spec_file = host.cdi_dirs[1].join("nvidia.yaml");
    env.gpurun(&["cdi", "generate", "--output", spec_file.to_str().unwrap()])
        .assert_ok();
    let annotate = |names: &str| {
        let names = names.to_string();
        move |s: &mut Value| {
            s["annotations"] = json!({"cdi.k8s.io/gpu": names});
        }
    };
    let script = "ls /dev | grep '^nvidia'; echo NVD=$NVIDIA_VISIBLE_DEVICES; readlink /usr/lib/x86_64-linux-gnu/libcuda.so";
    let out = env.sh(script, annotate("nvidia.com/gpu=1"));
    let got: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        got,
        [
            "nvidia-modeset",
            "nvidia-uvm",
            "nvidia-uvm-tools",
            "nvidia0",
            "nvidiactl",
            "NVD=void",
            "libcuda.so.1"
        ],
        "{}",
        out.describe()
    );
    let out = env.sh(
        "ls /dev | grep -c '^nvidia[0-9]'",
        annotate("nvidia.com/gpu=all"),
    );
    assert_eq!(out.stdout.trim(), "2", "{}", out.describe());

    // Every edit kind, and the same device name in both dirs: /var/run/cdi's (later) wins.
    let marker = env.dir.join("cdi-hook-ran");
    let data = env.dir.join("cdi-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello"), "from cdi\n").unwrap();
    let edits = |env_value: &str| {
        format!(
            "cdiVersion: 0.6.0\nkind: example.com/dev\ndevices:\n- name: x\n  containerEdits:\n    env: [CDI_FROM={env_value}]\n    \
             deviceNodes:\n    - path: /dev/fake-gpu\n      hostPath: {null}\n    mounts:\n    - hostPath: {data}\n      containerPath: /cdi-data\n      options: [ro, rbind]\n    \
             hooks:\n    - hookName: createRuntime\n      path: /bin/sh\n      args: [sh, -c, 'cat > {marker}']\n    additionalGids: [4242]\n",
            null = "/dev/null",
            data = data.display(),
            marker = marker.display(),
        )
    };
    std::fs::write(host.cdi_dirs[0].join("example.yaml"), edits("etc")).unwrap();
    std::fs::write(host.cdi_dirs[1].join("example.yaml"), edits("run")).unwrap();
    let out = env.sh(
        "echo $CDI_FROM; cat /cdi-data/hello; ls -l /dev/fake-gpu; grep Groups /proc/self/status",
        annotate("example.com/dev=x"),
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "run", "{}", out.describe());
    assert_eq!(lines[1], "from cdi", "{}", out.describe());
    assert!(
        lines[2].starts_with('c') && lines[2].contains("1,   3"),
        "{}",
        out.describe()
    );
    assert!(lines[3].contains("4242"), "{}", out.describe());
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&marker).unwrap()).unwrap();
    // The runtime-spec lifecycle: hooks before the user's program see `created`.
    assert_eq!(state["status"], "created");

    // Unknown device, and a spec with an unknown field: create fails naming it, nothing left.
    env.config(annotate("nvidia.com/gpu=9"));
    env.run(&env.id())
        .assert_err("CDI: unresolvable device \"nvidia.com/gpu=9\"");
    std::fs::write(
        host.cdi_dirs[0].join("bad.json"),
        "{\"cdiVersion\":\"0.6.0\",\"kind\":\"a.com/b\",\"devices\":[],\"extra\":1}",
    )
    .unwrap();
    env.config(annotate("example.com/dev=x"));
    env.run(&env.id()).assert_err("bad.json");
    env.assert_clean();
}

/// `gpurun hook nvidia` as a prestart hook of another runtime (runc), the way hooks/ adopts
/// it: the container gets its GPU node, the driver files and the ld cache. On cgroup v1 the
/// hook adds the device rules itself; on v2 the device filter is runc's eBPF program, which the
/// hook cannot extend, so the node is there but refused (documented in hooks/README.md).
#[test]
fn gpu_hook_nvidia_gives_runc_containers_their_gpus() {
    let Some((env, host)) = gpu_env("gpu_hook_runc", h100x2()) else {
        return;
    };
    let runc = std::path::Path::new("/usr/sbin/runc");
    if !runc.is_file() {
        skip("runc is not installed");
        env.assert_clean();
        return;
    }
    let gpurun = std::fs::canonicalize(bin()).unwrap();
    env.config(|s| {
        with_env(&["NVIDIA_VISIBLE_DEVICES=1"])(s);
        set_args(s, &["sh", "-c", "ls /dev | grep '^nvidia'; readlink /usr/lib/x86_64-linux-gnu/libcuda.so; cat /dev/nvidia0 2>&1; true"]);
        // hooks/config-snippet.json, pointed at this build and this fake host.
        let snippet = concat!(env!("CARGO_MANIFEST_DIR"), "/../hooks/config-snippet.json");
        let snippet: Value = serde_json::from_str(&std::fs::read_to_string(snippet).unwrap()).unwrap();
        let mut hook = snippet["hooks"]["prestart"][0].clone();
        // The hooks.d file for Podman/CRI-O runs the same command at the same stage.
        let hooks_d = concat!(env!("CARGO_MANIFEST_DIR"), "/../hooks/oci-nvidia-hook.json");
        let hooks_d: Value = serde_json::from_str(&std::fs::read_to_string(hooks_d).unwrap()).unwrap();
        assert_eq!(hooks_d["version"], "1.0.0");
        assert_eq!(hooks_d["stages"], json!(["prestart"]));
        assert_eq!(hooks_d["hook"]["args"], hook["args"]);
        assert_eq!(hooks_d["hook"]["path"], hook["path"]);
        hook["path"] = json!(gpurun);
        let env = hook["env"].as_array_mut().unwrap();
        env.push(json!(format!("GPURUN_CONFIG={}", host.config.display())));
        env.push(json!(format!("MOCK_NVML_CONFIG={}", host.machine.display())));
        s["hooks"] = json!({"prestart": [hook]});
    });
    let id = env.id();
    let mut cmd = std::process::Command::new(runc);
    cmd.arg("--root")
        .arg(&env.state)
        .args(["run", "--bundle"])
        .arg(&env.bundle)
        .arg(&id);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(&"nvidia0") && lines.contains(&"nvidiactl") && !lines.contains(&"nvidia1"),
        "{all}"
    );
    assert!(lines.contains(&"libcuda.so.1"), "{all}");
    let want = if cgroup2_host() {
        "Operation not permitted"
    } else {
        "No such device or address"
    };
    assert!(stdout.contains(want), "{all}");
    env.assert_clean();
}
