//! A binary's man pages and shell completions, generated from its clap definition so that they
//! cannot drift from `--help`. Each binary answers `NAME generate-docs DIR` (hidden, handled
//! before its own argument parsing); scripts/package calls it and packs the files.
//!
//! Output, in DIR: `NAME.1` and `NAME-SUB.1` for each visible subcommand (roff, uncompressed),
//! `NAME.bash`, `_NAME` (zsh), `NAME.fish`. Nothing in them depends on the time or the machine,
//! so a package build is reproducible.

use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// The hidden subcommand's name.
pub const SUBCOMMAND: &str = "generate-docs";

/// If the arguments are `NAME generate-docs DIR`, the folder to write into.
pub fn requested(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    match args {
        [_, sub, dir] if sub == SUBCOMMAND => Some(PathBuf::from(dir)),
        _ => None,
    }
}

/// Writes the pages and completions of `cmd` into `dir` (created if missing); returns the files.
pub fn write(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd;
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut files = Vec::new();
    let mut put = |file: String, bytes: Vec<u8>| -> std::io::Result<()> {
        let path = dir.join(file);
        std::fs::write(&path, bytes)?;
        files.push(path);
        Ok(())
    };
    put(format!("{name}.1"), man(cmd.clone())?)?;
    // After build(), a subcommand's display name is `NAME-SUB`: its page's title.
    let visible = |s: &&clap::Command| !s.is_hide_set() && s.get_name() != "help";
    for sub in cmd.get_subcommands().filter(visible) {
        let full = format!("{name}-{}", sub.get_name());
        put(format!("{full}.1"), man(sub.clone())?)?;
    }
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, name.clone(), &mut out);
        put(file, out)?;
    }
    Ok(files)
}

fn man(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("1")
        .manual("joulebook")
        .render(&mut out)?;
    Ok(out)
}

/// The hidden subcommand: writes the files, prints their paths; exit status 0, or 1 with the
/// folder and the error on stderr.
pub fn run(cmd: clap::Command, dir: &Path) -> i32 {
    let name = cmd.get_name().to_string();
    match write(cmd, dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            0
        }
        Err(e) => {
            eprintln!("{name} {SUBCOMMAND}: {}: {e}", dir.display());
            1
        }
    }
}
