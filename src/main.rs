use clap::Parser;

use gpurun::cli::Cli;
use gpurun::logging::Logger;

fn main() {
    // Docker's `--gpus` hook, when gpurun is installed under its name (see gpu/toolkit.rs).
    if gpurun::gpu::toolkit::invoked_as_hook() {
        std::process::exit(gpurun::gpu::toolkit::main());
    }
    let cli = Cli::parse();
    if cli.version {
        print!("{}", gpurun::commands::version_text());
        return;
    }
    let logger = gpurun::logging::install(Logger {
        file: cli.log.clone(),
        format: cli.log_format,
        debug: cli.debug,
    });
    let code = match gpurun::commands::dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            logger.error(&e.to_string());
            1
        }
    };
    std::process::exit(code);
}
