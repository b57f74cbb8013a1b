//! Matching what a server sent against what a session expects.
//!
//! An expectation is plain JSON compared exactly, except for these matchers:
//!
//! | pattern | matches |
//! |---|---|
//! | `"$any"` | any value |
//! | `"$string"` | any string |
//! | `"$number"` | any number |
//! | `"$timestamp"` | an RFC 3339 date-time string |
//! | `"$capture:NAME"` | any value, bound to `NAME`; if `NAME` is bound already, only that value |
//! | `"${NAME}"` inside a string | the value of `NAME`, substituted before comparing |
//! | `"$$..."` | the literal string starting with one `$` |
//! | `{"$unordered": [p, ...]}` | an array with exactly these members, in any order |
//! | `{"$one_of": [p, ...]}` | a value matching at least one of the patterns |
//! | `{"$regex": "RE"}` | a string matching the regular expression |
//! | `{"$not": p}` | a value that does not match `p` |
//! | `"key": {"$optional": p}` | in an object only: the key may be absent; when present its value matches `p` |
//!
//! Objects must have exactly the keys of the pattern (less the absent `$optional` ones); arrays the
//! same length and order.

use std::collections::BTreeMap;

use serde_json::Value;

/// Variables captured during a session (and the built-in `run` and `session`).
#[derive(Debug, Clone, Default)]
pub struct Vars(pub BTreeMap<String, Value>);

impl Vars {
    /// Sets a variable.
    pub fn set(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_owned(), value);
    }

    /// Replaces every `${NAME}` in `text`. A string that is exactly `${NAME}` may also stand for
    /// a non-string value; see [`Vars::substitute`].
    pub fn interpolate(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
            let name = &after[..end];
            match self.0.get(name) {
                Some(Value::String(s)) => out.push_str(s),
                Some(other) => out.push_str(&other.to_string()),
                None => return Err(format!("variable `{name}` is not set (in {text:?})")),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A copy of `value` with `${NAME}` replaced in every string (keys included). A string that
    /// is exactly `${NAME}` becomes the variable's value, whatever its type.
    pub fn substitute(&self, value: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => {
                if let Some(name) = whole_var(s) {
                    if let Some(v) = self.0.get(name) {
                        return Ok(v.clone());
                    }
                }
                Value::String(self.interpolate(s)?)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.substitute(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    out.insert(self.interpolate(k)?, self.substitute(v)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
}

fn whole_var(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains('}') && !inner.contains("${")).then_some(inner)
}

/// One place where the actual value differs from the pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// A JSON path such as `$.users[1].name`.
    pub path: String,
    /// What was wrong there.
    pub reason: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {}: {}", self.path, self.reason)
    }
}

/// Matches `actual` against `pattern`. On success the captures are added to `vars`; on failure
/// `vars` is left as it was and every mismatch found is returned.
pub fn matches(pattern: &Value, actual: &Value, vars: &mut Vars) -> Result<(), Vec<Mismatch>> {
    let mut scratch = vars.clone();
    let mut errors = Vec::new();
    match_at(pattern, actual, &mut scratch, "$", &mut errors);
    if errors.is_empty() {
        *vars = scratch;
        Ok(())
    } else {
        Err(errors)
    }
}

/// Whether `actual` matches `pattern`, without keeping captures.
pub fn is_match(pattern: &Value, actual: &Value, vars: &Vars) -> bool {
    let mut scratch = vars.clone();
    matches(pattern, actual, &mut scratch).is_ok()
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn match_at(pattern: &Value, actual: &Value, vars: &mut Vars, path: &str, out: &mut Vec<Mismatch>) {
    let mut fail = |reason: String| {
        out.push(Mismatch {
            path: path.to_owned(),
            reason,
        })
    };
    match pattern {
        Value::String(p) => match_string(p, actual, vars, path, out),
        Value::Object(map) if map.len() == 1 && map.keys().next().unwrap().starts_with('$') => {
            let (key, arg) = map.iter().next().unwrap();
            match key.as_str() {
                "$unordered" => match_unordered(arg, actual, vars, path, out),
                "$one_of" => {
                    let Some(alternatives) = arg.as_array() else {
                        fail("`$one_of` needs an array of patterns".into());
                        return;
                    };
                    for alt in alternatives {
                        let mut scratch = vars.clone();
                        let mut errs = Vec::new();
                        match_at(alt, actual, &mut scratch, path, &mut errs);
                        if errs.is_empty() {
                            *vars = scratch;
                            return;
                        }
                    }
                    fail(format!(
                        "expected one of {}, got {}",
                        short(arg),
                        short(actual)
                    ));
                }
                "$not" => {
                    let mut scratch = vars.clone();
                    let mut errs = Vec::new();
                    match_at(arg, actual, &mut scratch, path, &mut errs);
                    if errs.is_empty() {
                        fail(format!(
                            "expected anything but {}, got {}",
                            short(arg),
                            short(actual)
                        ));
                    }
                }
                "$regex" => {
                    let Some(re) = arg.as_str() else {
                        fail("`$regex` needs a string".into());
                        return;
                    };
                    let re = match vars.interpolate(re).map(|r| regex::Regex::new(&r)) {
                        Ok(Ok(re)) => re,
                        Ok(Err(e)) => return fail(format!("bad regular expression: {e}")),
                        Err(e) => return fail(e),
                    };
                    match actual.as_str() {
                        Some(s) if re.is_match(s) => {}
                        _ => fail(format!(
                            "expected a string matching /{}/, got {}",
                            re.as_str(),
                            short(actual)
                        )),
                    }
                }
                "$optional" => fail(
                    "`$optional` stands only for the value of an object's field, as in \
                     {\"offset\": {\"$optional\": \"$number\"}}"
                        .into(),
                ),
                other => fail(format!("unknown matcher `{other}`")),
            }
        }
        Value::Object(pmap) => {
            let Some(amap) = actual.as_object() else {
                fail(format!("expected an object, got {}", short(actual)));
                return;
            };
            for (k, pv) in pmap {
                let key = vars.interpolate(k).unwrap_or_else(|_| k.clone());
                let child = format!("{path}.{key}");
                let (pv, optional) = match optional_inner(pv) {
                    Some(inner) => (inner, true),
                    None => (pv, false),
                };
                match amap.get(&key) {
                    Some(av) => match_at(pv, av, vars, &child, out),
                    None if optional => {}
                    None => out.push(Mismatch {
                        path: child,
                        reason: format!("missing (expected {})", short(pv)),
                    }),
                }
            }
            for (k, av) in amap {
                let expected = pmap
                    .keys()
                    .any(|pk| vars.interpolate(pk).unwrap_or_else(|_| pk.clone()) == *k);
                if !expected {
                    out.push(Mismatch {
                        path: format!("{path}.{k}"),
                        reason: format!("unexpected field (got {})", short(av)),
                    });
                }
            }
        }
        Value::Array(items) => {
            let Some(actual_items) = actual.as_array() else {
                fail(format!("expected an array, got {}", short(actual)));
                return;
            };
            if items.len() != actual_items.len() {
                fail(format!(
                    "expected {} element(s), got {}: {}",
                    items.len(),
                    actual_items.len(),
                    short(actual)
                ));
                return;
            }
            for (i, (p, a)) in items.iter().zip(actual_items).enumerate() {
                match_at(p, a, vars, &format!("{path}[{i}]"), out);
            }
        }
        Value::Number(n) => {
            let same = match (n.as_f64(), actual.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            };
            if !same {
                fail(format!("expected {n}, got {}", short(actual)));
            }
        }
        other => {
            if other != actual {
                fail(format!("expected {}, got {}", short(other), short(actual)));
            }
        }
    }
}

/// The pattern inside `{"$optional": p}`.
fn optional_inner(pattern: &Value) -> Option<&Value> {
    match pattern.as_object() {
        Some(map) if map.len() == 1 => map.get("$optional"),
        _ => None,
    }
}

fn match_string(p: &str, actual: &Value, vars: &mut Vars, path: &str, out: &mut Vec<Mismatch>) {
    let mut fail = |reason: String| {
        out.push(Mismatch {
            path: path.to_owned(),
            reason,
        })
    };
    if let Some(literal) = p.strip_prefix("$$") {
        let expected = format!("${literal}");
        if actual.as_str() != Some(expected.as_str()) {
            fail(format!("expected {expected:?}, got {}", short(actual)));
        }
        return;
    }
    match p {
        "$any" => return,
        "$string" => {
            if !actual.is_string() {
                fail(format!("expected any string, got {}", kind(actual)));
            }
            return;
        }
        "$number" => {
            if !actual.is_number() {
                fail(format!("expected any number, got {}", short(actual)));
            }
            return;
        }
        "$timestamp" => {
            match actual.as_str() {
                Some(s) if is_rfc3339(s) => {}
                _ => fail(format!(
                    "expected an RFC 3339 timestamp, got {}",
                    short(actual)
                )),
            }
            return;
        }
        _ => {}
    }
    if let Some(name) = p.strip_prefix("$capture:") {
        match vars.0.get(name) {
            Some(bound) if bound != actual => fail(format!(
                "expected {} (captured earlier as `{name}`), got {}",
                short(bound),
                short(actual)
            )),
            Some(_) => {}
            None => vars.set(name, actual.clone()),
        }
        return;
    }
    if let Some(name) = whole_var(p) {
        match vars.0.get(name) {
            Some(v) if v == actual => {}
            Some(v) => fail(format!(
                "expected {} (the value of `{name}`), got {}",
                short(v),
                short(actual)
            )),
            None => fail(format!("variable `{name}` is not set")),
        }
        return;
    }
    match vars.interpolate(p) {
        Ok(expected) => {
            if actual.as_str() != Some(expected.as_str()) {
                fail(format!("expected {expected:?}, got {}", short(actual)));
            }
        }
        Err(e) => fail(e),
    }
}

fn match_unordered(
    arg: &Value,
    actual: &Value,
    vars: &mut Vars,
    path: &str,
    out: &mut Vec<Mismatch>,
) {
    let Some(patterns) = arg.as_array() else {
        out.push(Mismatch {
            path: path.to_owned(),
            reason: "`$unordered` needs an array of patterns".into(),
        });
        return;
    };
    let Some(items) = actual.as_array() else {
        out.push(Mismatch {
            path: path.to_owned(),
            reason: format!("expected an array (any order), got {}", short(actual)),
        });
        return;
    };
    if patterns.len() != items.len() {
        out.push(Mismatch {
            path: path.to_owned(),
            reason: format!(
                "expected {} member(s) in any order: {}, got {}: {}",
                patterns.len(),
                short(arg),
                items.len(),
                short(actual)
            ),
        });
        return;
    }
    let mut used = vec![false; items.len()];
    if !assign(patterns, items, 0, &mut used, vars) {
        out.push(Mismatch {
            path: path.to_owned(),
            reason: format!(
                "expected the members {} in any order, got {}",
                short(arg),
                short(actual)
            ),
        });
    }
}

/// Backtracking assignment of patterns to distinct items (the arrays are small).
fn assign(
    patterns: &[Value],
    items: &[Value],
    i: usize,
    used: &mut [bool],
    vars: &mut Vars,
) -> bool {
    if i == patterns.len() {
        return true;
    }
    for j in 0..items.len() {
        if used[j] {
            continue;
        }
        let mut scratch = vars.clone();
        let mut errs = Vec::new();
        match_at(&patterns[i], &items[j], &mut scratch, "$", &mut errs);
        if errs.is_empty() {
            used[j] = true;
            if assign(patterns, items, i + 1, used, &mut scratch) {
                *vars = scratch;
                return true;
            }
            used[j] = false;
        }
    }
    false
}

/// Whether `s` is an RFC 3339 date-time (`2024-01-31T12:00:00.123Z`, `...+02:00`).
pub fn is_rfc3339(s: &str) -> bool {
    parse_rfc3339(s).is_some()
}

/// Parses an RFC 3339 date-time into seconds since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month[(month - 1) as usize] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut fraction = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if rb[0] == b'-' { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil (proleptic Gregorian).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs as f64 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_and_matchers() {
        let mut vars = Vars::default();
        let pattern = json!({"type":"welcome","clientId":"$capture:me"});
        matches(
            &pattern,
            &json!({"type":"welcome","clientId":"abc"}),
            &mut vars,
        )
        .unwrap();
        assert_eq!(vars.0["me"], json!("abc"));
        let again = json!({"id":"${me}","at":"$timestamp","n":"$number"});
        matches(
            &again,
            &json!({"id":"abc","at":"2024-02-29T10:00:00.5+01:00","n":3}),
            &mut vars,
        )
        .unwrap();
        let errs = matches(
            &again,
            &json!({"id":"x","at":"yesterday","n":"3","z":1}),
            &mut vars,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
    }

    #[test]
    fn unordered_and_one_of() {
        let mut vars = Vars::default();
        let p = json!({"$unordered":["a",{"id":"b","name":"$string"}]});
        matches(&p, &json!([{"id":"b","name":"B"},"a"]), &mut vars).unwrap();
        assert!(matches(&p, &json!(["a", "a"]), &mut vars).is_err());
        assert!(is_match(&json!({"$one_of":[200,204]}), &json!(204), &vars));
        assert!(is_match(
            &json!({"$regex":"^text/event-stream"}),
            &json!("text/event-stream; charset=utf-8"),
            &vars
        ));
        assert!(is_match(&json!("$$literal"), &json!("$literal"), &vars));
    }

    #[test]
    fn optional_fields() {
        let mut vars = Vars::default();
        let p = json!({"type":"chat","offset":{"$optional":"$number"},"room":{"$optional":"r"}});
        // Absent: fine.
        matches(&p, &json!({"type":"chat"}), &mut vars).unwrap();
        // Present: must match.
        matches(&p, &json!({"type":"chat","offset":3,"room":"r"}), &mut vars).unwrap();
        let errs = matches(
            &p,
            &json!({"type":"chat","offset":"3","room":"s"}),
            &mut vars,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].path, "$.offset");
        // A field the pattern does not name is still unexpected.
        assert!(matches(&p, &json!({"type":"chat","epoch":"e"}), &mut vars).is_err());
        // Captures inside an optional field bind only when the field is there.
        let c = json!({"epoch":{"$optional":"$capture:e"}});
        matches(&c, &json!({}), &mut vars).unwrap();
        assert!(!vars.0.contains_key("e"));
        matches(&c, &json!({"epoch":"x1"}), &mut vars).unwrap();
        assert_eq!(vars.0["e"], json!("x1"));
        // Outside an object's field it is a mistake in the session, said plainly.
        let errs = matches(&json!({"$optional":1}), &json!(1), &mut vars).unwrap_err();
        assert!(errs[0].reason.contains("object's field"), "{errs:?}");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("1970-01-02T01:00:00+01:00"), Some(86_400.0));
        assert!(!is_rfc3339("2023-02-29T00:00:00Z"));
        assert!(!is_rfc3339("2023-01-01 00:00"));
    }
}
