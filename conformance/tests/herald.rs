//! The real server, started in-process, against the whole suite.

use std::time::Duration;

use conformance::{run_all, Options, Session};

/// The default configuration on a free local port.
fn local() -> herald::Config {
    herald::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    }
}

/// The capabilities Herald implements without authentication: every session of the suite
/// applies to it.
fn herald_capabilities() -> String {
    herald_protocol::capability::herald_capabilities(false).join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_passes_every_profile() {
    let running = herald::start(herald::Config {
        sse_ping_interval: Duration::from_millis(300),
        ..local()
    })
    .await
    .unwrap();
    let target = format!("http://{}", running.addr);
    let mut sessions = Session::load_dir(&conformance::default_sessions_dir()).unwrap();
    sessions.extend(
        Session::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sessions"))
            .unwrap(),
    );
    let total = sessions.len();
    let mut opts = Options::new(&target);
    opts.capabilities = Some(conformance::profile::Capabilities::given(
        &herald_capabilities(),
    ));
    let report = conformance::profile::run_profile(sessions, &opts)
        .await
        .unwrap();
    let failures: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| o.render())
        .collect();
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        report.summary()
    );
    assert_eq!(report.summary(), format!("{total} passed, 0 failed"));
    for line in report.capability_lines() {
        assert!(!line.contains("the server does not have it"), "{line}");
    }

    // What Herald's welcome announces must cover what it passes.
    let announced = conformance::profile::probe(&target, None, Duration::from_secs(3))
        .await
        .unwrap();
    match announced.source {
        conformance::profile::Source::Welcome => {
            for name in herald_capabilities().split(',') {
                assert!(
                    announced.has(name),
                    "Herald passes the {name} sessions but its welcome does not announce it: {}",
                    announced.describe()
                );
            }
        }
        _ => eprintln!(
            "NOT CHECKED: Herald's welcome frame has no capabilities list yet, so a runner that \
             reads it treats Herald as core-only ({})",
            announced.describe()
        ),
    }
    running.shutdown().await;
}

/// The whole suite run through the recording proxy passes as it does directly (the proxy is
/// transparent for WebSocket, SSE and HTTP), and the one interleaved session it records replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_through_the_recording_proxy_records_a_replayable_session() {
    let running = herald::start(local()).await.unwrap();
    let proxy =
        conformance::record::Proxy::start("127.0.0.1:0", &format!("http://{}", running.addr))
            .await
            .unwrap();
    let sessions = Session::load_dir(&conformance::default_sessions_dir()).unwrap();
    let outcomes = run_all(sessions, &Options::new(format!("http://{}", proxy.addr))).await;
    for o in &outcomes {
        assert!(o.passed(), "through the proxy: {}", o.render());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recorded = proxy.finish("whole-suite");
    let text = recorded.to_jsonl();
    assert!(text.lines().count() > 300, "{text}");
    let replay = Session::parse(&text, std::path::Path::new("whole-suite.jsonl")).unwrap();
    // A recording keeps its room names, and Herald keeps a room's history for a while: replay
    // against a fresh server, as a recording made elsewhere would be.
    running.shutdown().await;
    let running = herald::start(local()).await.unwrap();
    let mut opts = Options::new(format!("http://{}", running.addr));
    opts.step_timeout = Duration::from_secs(5);
    let outcome = conformance::run_session(&replay, &opts).await;
    if !outcome.passed() {
        let kept = std::env::temp_dir().join("conformance-whole-suite.jsonl");
        std::fs::write(&kept, &text).unwrap();
        panic!(
            "{} (recording kept in {})",
            outcome.render(),
            kept.display()
        );
    }
    running.shutdown().await;
}

/// Issue 17: the sessions that mean the same on long polling pass with every WebSocket actor
/// carried over `/poll` instead (`Options::polling`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_passes_the_suite_over_long_polling() {
    let running = herald::start(herald::Config {
        sse_ping_interval: Duration::from_millis(300),
        ..local()
    })
    .await
    .unwrap();
    let target = format!("http://{}", running.addr);
    let sessions: Vec<Session> = Session::load_dir(&conformance::default_sessions_dir())
        .unwrap()
        .into_iter()
        .filter(conformance::polling::fits)
        .collect();
    let total = sessions.len();
    assert!(total >= 20, "only {total} sessions fit long polling");
    eprintln!("{total} sessions over long polling");
    let mut opts = Options::new(&target);
    opts.polling = true;
    opts.capabilities = Some(conformance::profile::Capabilities::given(
        &herald_capabilities(),
    ));
    let report = conformance::profile::run_profile(sessions, &opts)
        .await
        .unwrap();
    let failures: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| o.render())
        .collect();
    assert!(
        failures.is_empty(),
        "over long polling:\n{}\n{}",
        failures.join("\n"),
        report.summary()
    );
    running.shutdown().await;
}
