//! CUDA MPS sharing when things go wrong: a create that fails after taking its lease gives it
//! back (and stops the daemon it started), two creates racing for one GPU's last share get it
//! once, and a pipe dir naming a GPU this machine does not have is refused.
//! gpurun-only: runc has no GPU support (gpu_env skips under runc and without root).

use std::process::{Command, Stdio};

use gpurun_integration::mps::*;
use gpurun_integration::*;

#[test]
fn gpu_mps_create_failing_after_its_lease_gives_it_back() {
    let Some((env, host)) = gpu_env("gpu_mps_fail", h100x2()) else {
        return;
    };
    let mps = Mps::new(&env, &host);
    let u0 = host.uuid(0);
    env.config(|s| {
        set_args(s, &["true"]);
        with(&["NVIDIA_VISIBLE_DEVICES=0"], &[(SHARE, "50")])(s);
        // createRuntime hooks run after the lease is taken and the daemon started.
        s["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    });
    let id = env.id();
    env.create(&id).assert_err("createRuntime");
    assert!(!env.state.join(&id).exists(), "state dir left");
    assert_eq!(mps.starts(&u0), 1, "{}", mps.log(&u0));
    assert_eq!(mps.leases(&u0), 0, "lease left");
    assert!(mps.wait_gone(&u0), "daemon left: {}", mps.log(&u0));
    env.assert_clean();
}

#[test]
fn gpu_mps_racing_creates_get_the_last_share_once() {
    let Some((env, host)) = gpu_env("gpu_mps_race", h100x2()) else {
        return;
    };
    let mps = Mps::new(&env, &host);
    let u0 = host.uuid(0);
    env.config(|s| {
        set_args(s, &["sleep", "3600"]);
        with(&["NVIDIA_VISIBLE_DEVICES=0"], &[(SHARE, "60")])(s);
    });
    let ids = [env.id(), env.id()];
    // stderr to files: a winner's init keeps what it inherits until `start`
    let err_of = |id: &str| env.dir.join(format!("{id}.err"));
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            let err = std::fs::File::create(err_of(id)).unwrap();
            Command::new(bin())
                .args(["--root", env.state.to_str().unwrap(), "create"])
                .args(["--bundle", env.bundle.to_str().unwrap(), id])
                .envs(env.extra_env.borrow().iter().map(|(k, v)| (k, v)))
                .env("GPURUN_IT", &env.marker)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .unwrap()
        })
        .collect();
    let statuses: Vec<_> = children
        .into_iter()
        .map(|mut c| c.wait().unwrap())
        .collect();
    let won: Vec<&String> = ids
        .iter()
        .zip(&statuses)
        .filter(|(_, st)| st.success())
        .map(|(id, _)| id)
        .collect();
    let errors: Vec<String> = ids
        .iter()
        .map(|id| std::fs::read_to_string(err_of(id)).unwrap_or_default())
        .collect();
    assert_eq!(won.len(), 1, "60% + 60% of one GPU: {errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("shares would total 120% (> 100%)")),
        "{errors:?}"
    );
    assert_eq!((mps.starts(&u0), mps.leases(&u0)), (1, 1));
    env.gpurun(&["delete", "--force", won[0]]).assert_ok();
    assert!(mps.wait_gone(&u0));
    env.assert_clean();
}

#[test]
fn gpu_mps_pipe_dir_of_an_unknown_gpu_is_refused() {
    let Some((env, host)) = gpu_env("gpu_mps_unknown", h100x2()) else {
        return;
    };
    let mps = Mps::new(&env, &host);
    let pipe = format!(
        "CUDA_MPS_PIPE_DIRECTORY={}",
        mps.root.join("GPU-not-here/pipe").display()
    );
    refused(
        &env,
        &mps,
        "GPU-not-here",
        with(&[&pipe], &[(SHARE, "10")]),
        "names GPU \"GPU-not-here\", which this machine does not have",
    );
    env.assert_clean();
}
