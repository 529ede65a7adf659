fn main() {
    // `joulebook-report generate-docs DIR` (hidden, for scripts/package): man pages, completions.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(dir) = joulebook_common::clidocs::requested(&args) {
        let cmd = <joulebook_reporter::cli::Cli as clap::CommandFactory>::command();
        std::process::exit(joulebook_common::clidocs::run(cmd, &dir));
    }
    std::process::exit(joulebook_reporter::cli::main());
}
