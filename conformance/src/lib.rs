//! A conformance suite for the Herald wire protocol: sessions recorded as JSON Lines, replayed
//! against any server, every server frame checked against the protocol's JSON Schema.

pub mod generalize;
pub mod har;
pub mod matcher;
pub mod polling;
pub mod profile;
pub mod record;
pub mod report;
pub mod runner;
pub mod schema;
pub mod session;
pub mod sse;

pub use runner::{run_all, run_session, Options, Outcome};
pub use session::Session;

/// The suite shipped with this crate.
pub fn default_sessions_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions")
}

/// Whether a session name passes a filter: a glob with `*` when the filter has one, a substring
/// otherwise. Several filters may be given separated by commas; any may match.
pub fn filter_matches(filter: &str, name: &str) -> bool {
    filter
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .any(|f| {
            if f.contains('*') {
                herald_protocol::glob::matches(f, name)
            } else {
                name.contains(f)
            }
        })
}

/// Summary line printed last: `N passed, M failed`.
pub fn summary(outcomes: &[Outcome]) -> String {
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    format!("{passed} passed, {} failed", outcomes.len() - passed)
}
