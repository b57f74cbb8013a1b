//! Project chores, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! - `gen-schemas`: write `schemas/*.schema.json` and `schemas/asyncapi.json` from the
//!   `herald-protocol` types, and rewrite the generated sections of `PROTOCOL.md`.
//! - `gen-schemas --check`: fail, naming the files, when the committed schemas or the generated
//!   sections of `PROTOCOL.md` are stale.
//! - `bench [ARGS...]`: run the standard benchmark (`herald-bench standard [ARGS...]`).

mod generate;
mod spec;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::{env, fs, io};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  gen-schemas            write schemas/*.schema.json and schemas/asyncapi.json, and the
                         generated sections of PROTOCOL.md
  gen-schemas --check    exit non-zero, naming the files, if they are stale
  bench [ARGS...]        cargo run --release -p herald-bench -- standard [ARGS...]
";

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    let command = args.next();
    let rest: Vec<OsString> = args.collect();
    match command.as_ref().and_then(|c| c.to_str()) {
        Some("gen-schemas") => gen_schemas(&rest),
        Some("bench") => bench(&rest),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprint!("unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root (the parent of this crate's folder).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

fn gen_schemas(args: &[OsString]) -> ExitCode {
    let mut check = false;
    for arg in args {
        match arg.to_str() {
            Some("--check") => check = true,
            _ => {
                eprint!("unexpected argument {arg:?}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let dir = workspace_root().join("schemas");
    let result = if check {
        check_schemas(&dir)
    } else {
        write_schemas(&dir)
    };
    let schemas = match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    };
    let spec = protocol_md(check);
    if schemas == ExitCode::SUCCESS {
        spec
    } else {
        schemas
    }
}

/// Rewrites (or, with `check`, compares) the generated sections of PROTOCOL.md.
fn protocol_md(check: bool) -> ExitCode {
    let path = workspace_root().join(spec::PROTOCOL_FILE);
    let current = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let fresh = match spec::rewrite(&current) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if fresh == current {
        println!("{} is up to date", spec::PROTOCOL_FILE);
        return ExitCode::SUCCESS;
    }
    if check {
        eprintln!(
            "stale generated sections in {}; run `cargo xtask gen-schemas` and commit the result",
            spec::PROTOCOL_FILE
        );
        return ExitCode::FAILURE;
    }
    match fs::write(&path, fresh) {
        Ok(()) => {
            println!("wrote   {}", spec::PROTOCOL_FILE);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// The owned files directly inside `dir` (subfolders are someone else's).
fn owned_files(dir: &Path) -> io::Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            if generate::is_owned(name) {
                found.insert(name.to_owned());
            }
        }
    }
    Ok(found)
}

fn write_schemas(dir: &Path) -> io::Result<ExitCode> {
    fs::create_dir_all(dir)?;
    let mut extra = owned_files(dir)?;
    let mut changed = 0;
    for file in generate::generate() {
        extra.remove(&file.name);
        let path = dir.join(&file.name);
        if fs::read_to_string(&path).ok().as_deref() != Some(file.contents.as_str()) {
            fs::write(&path, &file.contents)?;
            println!("wrote   schemas/{}", file.name);
            changed += 1;
        }
    }
    for name in &extra {
        fs::remove_file(dir.join(name))?;
        println!("removed schemas/{name}");
        changed += 1;
    }
    if changed == 0 {
        println!("schemas/ is up to date");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_schemas(dir: &Path) -> io::Result<ExitCode> {
    let mut extra = owned_files(dir)?;
    let mut stale = Vec::new();
    for file in generate::generate() {
        extra.remove(&file.name);
        match fs::read_to_string(dir.join(&file.name)) {
            Ok(committed) if committed == file.contents => {}
            Ok(_) => stale.push(format!("schemas/{} (differs)", file.name)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                stale.push(format!("schemas/{} (missing)", file.name))
            }
            Err(e) => stale.push(format!("schemas/{} (unreadable: {e})", file.name)),
        }
    }
    stale.extend(
        extra
            .iter()
            .map(|name| format!("schemas/{name} (not generated)")),
    );
    if stale.is_empty() {
        println!("schemas/ is up to date");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("stale generated files:");
    for line in &stale {
        eprintln!("  {line}");
    }
    eprintln!("run `cargo xtask gen-schemas` and commit the result");
    Ok(ExitCode::FAILURE)
}

fn bench(args: &[OsString]) -> ExitCode {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["run", "--release", "-p", "herald-bench", "--", "standard"])
        .args(args)
        .status();
    match status {
        Ok(status) => match status.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => {
                eprintln!("herald-bench was killed by a signal");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("error: could not run cargo: {error}");
            ExitCode::FAILURE
        }
    }
}
