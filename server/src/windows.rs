//! Tumbling windows on event time, with a grace for late points: the aggregates of a data
//! stream (capability `streams`).
//!
//! Windows are `[k·size, (k+1)·size)` in event time (milliseconds). The **watermark** is the
//! latest event time seen minus the grace; a window closes, and its result is emitted, once the
//! watermark reaches its end. A point whose window has closed already is **late**: it is in no
//! window's aggregates, and the next result counts it in `late`, so nothing is dropped silently.
//! Windows close in order of their start, and only windows that received a point are emitted.
//!
//! Layer 1: pure, no I/O, imports nothing from the crate.

use std::collections::BTreeMap;

use herald_protocol::stream::{Aggregate, FieldAggregates, StreamValue, WindowResult, VALUE_FIELD};

/// One field's running aggregates.
#[derive(Debug, Clone, Copy)]
struct FieldAcc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl FieldAcc {
    fn new(x: f64) -> Self {
        FieldAcc {
            count: 1,
            sum: x,
            min: x,
            max: x,
        }
    }

    fn add(&mut self, x: f64) {
        self.count += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }
}

/// One open window.
#[derive(Debug, Clone, Default)]
struct Acc {
    count: u64,
    fields: BTreeMap<String, FieldAcc>,
}

/// The windows of one stream.
#[derive(Debug, Clone)]
pub struct Windows {
    size: i64,
    grace: i64,
    aggregates: Vec<Aggregate>,
    open: BTreeMap<i64, Acc>,
    /// The latest event time seen.
    max_seen: Option<i64>,
    /// Late points since the last emitted result.
    late: u64,
    /// Late points ever.
    late_total: u64,
}

impl Windows {
    /// Windows of `size_ms` (at least 1) with `grace_ms` of allowed lateness, computing
    /// `aggregates` per field (all five when empty).
    pub fn new(size_ms: u64, grace_ms: u64, aggregates: &[Aggregate]) -> Self {
        let aggregates = if aggregates.is_empty() {
            vec![
                Aggregate::Count,
                Aggregate::Sum,
                Aggregate::Avg,
                Aggregate::Min,
                Aggregate::Max,
            ]
        } else {
            aggregates.to_vec()
        };
        Windows {
            size: size_ms.clamp(1, i64::MAX as u64 / 4) as i64,
            grace: grace_ms.min(i64::MAX as u64 / 4) as i64,
            aggregates,
            open: BTreeMap::new(),
            max_seen: None,
            late: 0,
            late_total: 0,
        }
    }

    /// The watermark: windows ending at or before it are closed.
    fn watermark(&self) -> Option<i64> {
        self.max_seen.map(|m| m.saturating_sub(self.grace))
    }

    /// Adds a point at event time `t`; returns the results of the windows it closed, oldest
    /// first.
    pub fn add(&mut self, t: i64, value: &StreamValue) -> Vec<WindowResult> {
        let start = t.saturating_sub(t.rem_euclid(self.size));
        if self
            .watermark()
            .is_some_and(|w| start.saturating_add(self.size) <= w)
        {
            self.late += 1;
            self.late_total += 1;
            return Vec::new();
        }
        let acc = self.open.entry(start).or_default();
        acc.count += 1;
        let mut record = |name: &str, x: f64| {
            if !x.is_finite() {
                return;
            }
            match acc.fields.get_mut(name) {
                Some(f) => f.add(x),
                None => {
                    acc.fields.insert(name.to_owned(), FieldAcc::new(x));
                }
            }
        };
        match value {
            StreamValue::Number(x) => record(VALUE_FIELD, *x),
            StreamValue::Fields(map) => {
                for (name, x) in map {
                    record(name, *x);
                }
            }
        }
        self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
        let watermark = self.watermark().expect("a point was seen");
        let mut closed = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            if entry.key().saturating_add(self.size) > watermark {
                break;
            }
            let (start, acc) = entry.remove_entry();
            closed.push(self.result(start, acc));
        }
        closed
    }

    /// Closes every open window (oldest first), as if the watermark had passed them all.
    pub fn flush(&mut self) -> Vec<WindowResult> {
        let open = std::mem::take(&mut self.open);
        open.into_iter()
            .map(|(start, acc)| self.result(start, acc))
            .collect()
    }

    /// Late points ever seen.
    pub fn late_total(&self) -> u64 {
        self.late_total
    }

    /// Windows still open.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    fn result(&mut self, start: i64, acc: Acc) -> WindowResult {
        let late = std::mem::take(&mut self.late);
        let fields = acc
            .fields
            .into_iter()
            .map(|(name, f)| {
                let mut out = FieldAggregates::default();
                for aggregate in &self.aggregates {
                    match aggregate {
                        Aggregate::Count => out.count = Some(f.count),
                        Aggregate::Sum => out.sum = Some(f.sum),
                        Aggregate::Avg => out.avg = Some(f.sum / f.count as f64),
                        Aggregate::Min => out.min = Some(f.min),
                        Aggregate::Max => out.max = Some(f.max),
                    }
                }
                (name, out)
            })
            .collect();
        WindowResult {
            start,
            end: start.saturating_add(self.size),
            count: acc.count,
            late,
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn num(x: f64) -> StreamValue {
        StreamValue::Number(x)
    }

    #[test]
    fn windows_close_when_the_watermark_passes_their_end() {
        let mut w = Windows::new(1000, 500, &[]);
        assert!(w.add(100, &num(1.0)).is_empty());
        assert!(w.add(900, &num(3.0)).is_empty());
        // 1400 - 500 = 900 < 1000: the first window stays open for a late point.
        assert!(w.add(1400, &num(10.0)).is_empty());
        assert!(w.add(950, &num(2.0)).is_empty());
        let closed = w.add(1500, &num(10.0));
        assert_eq!(closed.len(), 1);
        let r = &closed[0];
        assert_eq!((r.start, r.end, r.count, r.late), (0, 1000, 3, 0));
        let v = &r.fields["value"];
        assert_eq!(
            (v.count, v.sum, v.avg, v.min, v.max),
            (Some(3), Some(6.0), Some(2.0), Some(1.0), Some(3.0))
        );
        // Now a point for [0, 1000) is late: counted in the next result, in no aggregate.
        assert!(w.add(10, &num(99.0)).is_empty());
        assert_eq!(w.late_total(), 1);
        let closed = w.add(2600, &num(1.0));
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].start, closed[0].count, closed[0].late),
            (1000, 2, 1)
        );
        assert_eq!(closed[0].fields["value"].max, Some(10.0));
    }

    #[test]
    fn object_values_aggregate_per_field_and_only_the_asked_aggregates_appear() {
        let mut w = Windows::new(10, 0, &[Aggregate::Count, Aggregate::Avg]);
        let point = |a: f64, b: Option<f64>| {
            let mut map = BTreeMap::new();
            map.insert("a".to_owned(), a);
            if let Some(b) = b {
                map.insert("b".to_owned(), b);
            }
            StreamValue::Fields(map)
        };
        w.add(1, &point(1.0, Some(5.0)));
        w.add(2, &point(3.0, None));
        let closed = w.add(10, &point(0.0, None));
        assert_eq!(closed.len(), 1);
        let a = &closed[0].fields["a"];
        assert_eq!(
            (a.count, a.avg, a.sum, a.min),
            (Some(2), Some(2.0), None, None)
        );
        assert_eq!(closed[0].fields["b"].count, Some(1));
        assert_eq!(w.flush().len(), 1);
        assert_eq!(w.open_windows(), 0);
    }

    #[test]
    fn negative_times_and_non_finite_values_do_not_break_it() {
        let mut w = Windows::new(100, 0, &[]);
        w.add(-150, &num(f64::NAN));
        let closed = w.add(0, &num(1.0));
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].start, closed[0].count), (-200, 1));
        assert!(closed[0].fields.is_empty());
        w.add(i64::MAX, &num(1.0));
        w.add(i64::MIN, &num(1.0));
    }

    /// The batch answer: every point in its window, windows in order.
    fn batch(points: &[(i64, i64)], size: i64) -> Vec<(i64, u64, i64, i64, i64)> {
        let mut by: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for &(t, v) in points {
            by.entry(t.div_euclid(size) * size).or_default().push(v);
        }
        by.into_iter()
            .map(|(s, vs)| {
                let sum: i64 = vs.iter().sum();
                let min = *vs.iter().min().unwrap();
                let max = *vs.iter().max().unwrap();
                (s, vs.len() as u64, sum, min, max)
            })
            .collect()
    }

    proptest! {
        /// Whatever the arrival order, as long as every point arrives within the grace (no
        /// later than `grace` behind the latest event time seen before it), the windows'
        /// aggregates equal a batch computation over the same points, and none is late.
        #[test]
        fn aggregates_equal_a_batch_recomputation_for_any_order_within_the_grace(
            raw in proptest::collection::vec((0i64..20_000, -1000i64..1000, 0.0f64..1.0), 1..300),
            size in 1i64..3000,
            grace in 0i64..5000,
        ) {
            // Arrival order: by event time plus a delay under the grace. A point q that arrives
            // before p has t_q + d_q <= t_p + d_p, so t_q - t_p < grace: p is never late.
            let mut arrivals: Vec<(i64, i64, i64)> = raw
                .iter()
                .map(|&(t, v, j)| (t, v, (j * grace as f64) as i64))
                .collect();
            arrivals.sort_by_key(|&(t, _, d)| t + d);
            let mut w = Windows::new(size as u64, grace as u64, &[]);
            let mut results = Vec::new();
            for &(t, v, _) in &arrivals {
                results.extend(w.add(t, &num(v as f64)));
            }
            results.extend(w.flush());
            prop_assert_eq!(w.late_total(), 0);
            let got: Vec<(i64, u64, i64, i64, i64)> = results
                .iter()
                .map(|r| {
                    let f = &r.fields["value"];
                    prop_assert_eq!(f.avg.unwrap(), f.sum.unwrap() / r.count as f64);
                    prop_assert_eq!(r.end - r.start, size);
                    Ok((r.start, r.count, f.sum.unwrap() as i64, f.min.unwrap() as i64,
                        f.max.unwrap() as i64))
                })
                .collect::<Result<_, TestCaseError>>()?;
            let points: Vec<(i64, i64)> = raw.iter().map(|&(t, v, _)| (t, v)).collect();
            prop_assert_eq!(got, batch(&points, size));
        }

        /// In any order, every point is either in exactly one window or counted late.
        #[test]
        fn every_point_is_aggregated_or_counted_late(
            points in proptest::collection::vec((0i64..10_000, -100i64..100), 1..300),
            size in 1u64..2000,
            grace in 0u64..2000,
        ) {
            let mut w = Windows::new(size, grace, &[]);
            let mut results = Vec::new();
            for &(t, v) in &points {
                results.extend(w.add(t, &num(v as f64)));
            }
            results.extend(w.flush());
            let counted: u64 = results.iter().map(|r| r.count).sum();
            let late: u64 = results.iter().map(|r| r.late).sum();
            prop_assert_eq!(counted + w.late_total(), points.len() as u64);
            prop_assert!(late <= w.late_total());
            prop_assert!(results.windows(2).all(|p| p[0].start < p[1].start));
        }
    }
}
