//! `conformance run | record | import-har`: see `conformance/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Conformance suite for the Herald wire protocol")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay every session against a running server.
    Run {
        /// The server's base URL, such as http://127.0.0.1:8080.
        #[arg(long, env = "CONFORMANCE_TARGET")]
        target: String,
        /// Run only sessions whose name contains this text (or matches this glob with `*`;
        /// several separated by commas).
        #[arg(long)]
        filter: Option<String>,
        /// Leave out sessions whose name contains this text (or matches this glob with `*`;
        /// several separated by commas). They are not counted.
        #[arg(long)]
        exclude: Option<String>,
        /// Write a JUnit XML report here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// The directory of session files.
        #[arg(long, default_value_os_t = conformance::default_sessions_dir())]
        sessions: PathBuf,
        /// Default timeout of one step, in milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
        /// How many independent sessions run at once.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// The server's capabilities, such as `recovery,offsets` (`core` or an empty list: none).
        /// Wins over what the server's welcome announces.
        #[arg(long)]
        capabilities: Option<String>,
        /// A token for the welcome probe of a server that refuses unauthenticated WebSockets
        /// (sent as `Authorization: Bearer`).
        #[arg(long)]
        probe_token: Option<String>,
        /// A file listing the sessions this server is expected to fail (one name per line, `#`
        /// comments). The run then fails when any other session fails, or a listed one passes.
        #[arg(long)]
        expected_failures: Option<PathBuf>,
        /// Carry every WebSocket actor over long polling (`/poll`) and run only the sessions
        /// that mean the same on it.
        #[arg(long)]
        polling: bool,
    },
    /// Run a recording proxy in front of a server and write what passes through as sessions.
    Record {
        /// Where the proxy listens, such as 127.0.0.1:9000.
        #[arg(long)]
        listen: String,
        /// The server's base URL.
        #[arg(long)]
        target: String,
        /// Where to write the session files.
        #[arg(long)]
        out: PathBuf,
        /// The recorded session's name.
        #[arg(long, default_value = "recorded")]
        name: String,
        /// Stop and write after this many seconds without traffic (default: run until Ctrl-C).
        #[arg(long)]
        idle_secs: Option<u64>,
    },
    /// Turn a browser HAR export into a session.
    ImportHar {
        /// The .har file.
        file: PathBuf,
        /// Where to write the session file.
        #[arg(long)]
        out: PathBuf,
        /// The session's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(real_main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            target,
            filter,
            exclude,
            junit,
            sessions,
            timeout_ms,
            parallel,
            capabilities,
            probe_token,
            expected_failures,
            polling,
        } => {
            let expected = match &expected_failures {
                Some(path) => Some(conformance::profile::ExpectedFailures::parse(
                    &std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                )),
                None => None,
            };
            let mut all = conformance::Session::load_dir(&sessions)?;
            if let Some(f) = &filter {
                all.retain(|s| conformance::filter_matches(f, s.name()));
            }
            if let Some(x) = &exclude {
                all.retain(|s| !conformance::filter_matches(x, s.name()));
            }
            if polling {
                all.retain(conformance::polling::fits);
            }
            let mut opts = conformance::Options::new(target);
            opts.step_timeout = Duration::from_millis(timeout_ms);
            opts.parallel = parallel;
            opts.verbose = true;
            opts.capabilities = capabilities
                .as_deref()
                .map(conformance::profile::Capabilities::given);
            opts.probe_token = probe_token;
            opts.polling = polling;
            let total = all.len();
            let report = conformance::profile::run_profile_with(all, &opts, |caps, apply| {
                println!("{}", caps.describe());
                for note in &caps.notes {
                    println!("note: {note}");
                }
                println!(
                    "running {apply} of {total} session(s) against {}",
                    opts.target
                );
            })
            .await?;
            if let Some(path) = junit {
                std::fs::write(
                    &path,
                    conformance::report::junit(&report.outcomes, &opts.target),
                )?;
            }
            let skipped = report.skipped_lines();
            if !skipped.is_empty() {
                println!();
                println!("skipped sessions (the server lacks a capability they need):");
                for line in skipped {
                    println!("  {line}");
                }
            }
            let failed: Vec<_> = report.outcomes.iter().filter(|o| !o.passed()).collect();
            if !failed.is_empty() {
                println!();
                println!("failed sessions:");
                for o in &failed {
                    let listed = expected.as_ref().is_some_and(|e| e.names.contains(&o.name));
                    let tag = if listed { " (expected)" } else { "" };
                    println!("  {}{tag}", o.name);
                }
            }
            println!();
            println!("by profile:");
            for line in report.capability_lines() {
                println!("  {line}");
            }
            let mut ok = !report.outcomes.is_empty();
            match &expected {
                Some(e) => match e.check(&report) {
                    Ok(line) => println!("{line}"),
                    Err(problems) => {
                        ok = false;
                        println!("the failures differ from the expected ones:");
                        for p in problems {
                            println!("  {p}");
                        }
                    }
                },
                None => ok &= failed.is_empty(),
            }
            if report.outcomes.is_empty() {
                println!("no session applies: nothing was checked");
            }
            println!("{}", report.summary());
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Record {
            listen,
            target,
            out,
            name,
            idle_secs,
        } => {
            let files = conformance::record::record(
                &listen,
                &target,
                &out,
                &name,
                idle_secs.map(Duration::from_secs),
            )
            .await?;
            for f in files {
                println!("wrote {}", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportHar { file, out, name } => {
            let path = conformance::har::import_file(&file, &out, name.as_deref())?;
            println!("wrote {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
