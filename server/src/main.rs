//! The `herald` binary: `herald serve` runs the server.

use std::io::Write;

use clap::{Parser, Subcommand};
use herald::config::ServeArgs;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A C string pointer jemalloc reads at start-up.
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);
// SAFETY: it points at a static, immutable byte string.
unsafe impl Sync for MallocConf {}

/// jemalloc's settings (`_RJEM_MALLOC_CONF` in the environment still overrides them): freed
/// pages go back to the system within about 200 ms instead of 10 s, so what a burst took (a
/// join storm's presence frames, a backlog) does not stay resident. Returning them at once
/// (0 ms) costs enough page-level system calls to slow a join storm.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf = MallocConf(c"dirty_decay_ms:200,muzzy_decay_ms:200".as_ptr());

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "A real-time API server: WebSocket, SSE, rooms, presence, notifications"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = match args.resolve() {
                Ok(config) => config,
                Err(e) => config_error(e),
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve(config))
        }
    }
}

/// A configuration that cannot run: say why and exit with status 2, as command-line tools do
/// for usage errors.
fn config_error(e: anyhow::Error) -> ! {
    eprintln!("herald: configuration error: {e:#}");
    std::process::exit(2)
}

async fn serve(config: herald::Config) -> anyhow::Result<()> {
    let node = match herald::build(config) {
        Ok(node) => node,
        Err(e) => config_error(e),
    };
    let running = herald::start_node(node).await?;
    // The handlers are installed before the address is announced: a supervisor (or a test) that
    // signals as soon as it has read it gets a clean shutdown, not the default death.
    let signals = Signals::install();
    tracing::info!(addr = %running.addr, demo = running.node.config.demo, "herald listening");
    // Tools and tests read this line to learn the port when 0 was asked.
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{}", running.addr)?;
    out.flush()?;
    drop(out);
    signals.wait().await;
    tracing::info!("signal received, shutting down");
    running.shutdown().await;
    Ok(())
}

/// SIGTERM and SIGINT, listened for from the moment they are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).expect("installing a SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("installing a SIGINT handler"),
        }
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
