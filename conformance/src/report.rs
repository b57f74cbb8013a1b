//! JUnit XML output.

use crate::runner::Outcome;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// A JUnit XML report of the outcomes: one test suite, one test case per session.
pub fn junit(outcomes: &[Outcome], target: &str) -> String {
    let failures = outcomes.iter().filter(|o| !o.passed()).count();
    let time: f64 = outcomes.iter().map(|o| o.duration.as_secs_f64()).sum();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<testsuites tests=\"{}\" failures=\"{failures}\" time=\"{time:.3}\">\n",
        outcomes.len()
    ));
    s.push_str(&format!(
        "  <testsuite name=\"conformance\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\" hostname=\"{}\">\n",
        outcomes.len(),
        escape(target)
    ));
    for o in outcomes {
        s.push_str(&format!(
            "    <testcase classname=\"conformance\" name=\"{}\" file=\"{}\" time=\"{:.3}\"",
            escape(&o.name),
            escape(&o.file),
            o.duration.as_secs_f64()
        ));
        match &o.failure {
            None => s.push_str("/>\n"),
            Some(f) => {
                let first = f.lines().next().unwrap_or("failed");
                s.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(first),
                    escape(f)
                ));
            }
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}
