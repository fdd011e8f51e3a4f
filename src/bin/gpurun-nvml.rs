//! `gpurun-nvml LIBRARY`: load NVML from LIBRARY (a path or a soname), print the machine's
//! GPUs as JSON on stdout; on failure print why on stderr and exit 1. gpurun runs it when it
//! needs NVML, so that the vendor library is never loaded into the runtime itself.
//!
//! `gpurun-nvml --usage LIBRARY MINOR...`: the readings (temperature, power, memory,
//! utilisation, processes and their samples) of the GPUs /dev/nvidiaMINOR, as a JSON array.

use gpurun::gpu::{nvml_query, usage_query};

const USAGE: &str = "usage: gpurun-nvml LIBRARY | gpurun-nvml --usage LIBRARY MINOR...";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let answer = match args.as_slice() {
        [library] if library != "--usage" => nvml_query::discover(library)
            .map(|m| serde_json::to_string(&m).expect("Machine serialises")),
        [flag, library, minors @ ..] if flag == "--usage" && !minors.is_empty() => {
            let Ok(minors) = minors
                .iter()
                .map(|m| m.parse())
                .collect::<Result<Vec<u32>, _>>()
            else {
                eprintln!("gpurun-nvml: --usage: minors must be numbers\n{USAGE}");
                std::process::exit(2);
            };
            usage_query::query(library, &minors)
                .map(|r| serde_json::to_string(&r).expect("readings serialise"))
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    match answer {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
