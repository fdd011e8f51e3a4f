//! Heredocs as BuildKit runs them: several in one RUN, one anywhere on the line, `<<-` tab
//! stripping, a `#!` script, quoted delimiters, and `COPY` with several heredoc sources.

mod common;
use common::*;

#[test]
fn run_and_copy_heredocs() {
    if !require_root() {
        return;
    }
    let env = Env::new("build-heredoc");
    let cache = env.dir.join("cache");
    let df = format!(
        "FROM dir:{}\n\
         ARG WHO=world\n\
         RUN <<A cat > /a && <<-'B' cat > /b\n\
         a says $WHO\n\
         A\n\
         \tb keeps $WHO literal\n\
         \tB\n\
         RUN sh -e <<EOF\n\
         echo $((6 * 7)) > /sum\n\
         EOF\n\
         RUN <<EOF\n\
         #!/bin/sh -e\n\
         echo \"script $0\" > /script\n\
         EOF\n\
         COPY <<one <<\"two\" /etc/multi/\n\
         first $WHO\n\
         one\n\
         second $WHO\n\
         two\n\
         RUN echo after > /after\n\
         CMD cat /a /b /sum /script /etc/multi/one /etc/multi/two /after\n",
        env.rootfs().display()
    );
    let ctx = context(&env.dir.join("ctx"), &df, &[]);
    let out = env.dir.join("b");
    let b = build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    );
    b.ok();
    assert!(
        b.stdout.contains("[7/8] RUN echo after"),
        "heredoc bodies are not instructions:\n{}",
        b.stdout
    );
    let run = run_bundle(&env, &out);
    run.assert_ok();
    assert_eq!(
        run.stdout,
        "a says world\nb keeps $WHO literal\n42\nscript /dev/pipes/EOF\n\
         first world\nsecond $WHO\nafter\n"
    );
    assert!(
        !out.join("rootfs/dev/pipes").exists(),
        "the script mount leaves nothing in the image"
    );
    // A changed heredoc body is a changed step.
    std::fs::write(ctx.join("Dockerfile"), df.replace("6 * 7", "6 * 8")).unwrap();
    let b = build(
        &cache,
        &["--bundle", out.to_str().unwrap(), ctx.to_str().unwrap()],
    );
    b.ok();
    assert_eq!((b.cached(), b.executed()), (1, 4), "{}", b.stdout);
    assert_build_clean(&cache);
    env.assert_clean();
}
