//! The real server, started in-process, against the whole suite (with `--features herald`).

#![cfg(feature = "herald")]

use std::time::Duration;

use conformance::{run_all, Options, Session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_passes_the_whole_suite() {
    let mut config = herald::Config::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.sse_ping_interval = Duration::from_millis(300);
    let running = herald::start(config).await.unwrap();
    let mut sessions = Session::load_dir(&conformance::default_sessions_dir()).unwrap();
    sessions.extend(
        Session::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sessions"))
            .unwrap(),
    );
    let outcomes = run_all(sessions, &Options::new(format!("http://{}", running.addr))).await;
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| o.render())
        .collect();
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        conformance::summary(&outcomes)
    );
    running.shutdown().await;
}
