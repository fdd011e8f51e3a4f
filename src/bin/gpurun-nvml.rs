//! `gpurun-nvml LIBRARY`: load NVML from LIBRARY (a path or a soname), print the machine's
//! GPUs as JSON on stdout; on failure print why on stderr and exit 1. gpurun runs it when it
//! needs NVML, so that the vendor library is never loaded into the runtime itself.

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(library), None) = (args.next(), args.next()) else {
        eprintln!("usage: gpurun-nvml LIBRARY");
        std::process::exit(2);
    };
    match gpurun::gpu::nvml_query::discover(&library) {
        Ok(machine) => {
            println!(
                "{}",
                serde_json::to_string(&machine).expect("Machine serialises")
            );
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
