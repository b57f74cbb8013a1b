//! Largest-Triangle-Three-Buckets downsampling (Steinarsson, 2013) for stream snapshots: keeps
//! a series' shape with few points. The first and last points always survive; the points
//! between are split into `threshold - 2` buckets of (nearly) equal size, and from each bucket
//! the point forming the largest triangle with the point kept before it and the mean of the
//! next bucket is kept.
//!
//! Layer 1: pure, no I/O, imports nothing from the crate.

/// Indices of the points to keep from a series of `(x, y)` (x increasing), at most
/// `threshold` of them: all of them when the series is no longer; `[last]` for a threshold of
/// 1; first and last for 2; otherwise exactly `threshold` indices, increasing, with the first
/// and the last.
pub fn lttb(points: &[(f64, f64)], threshold: usize) -> Vec<usize> {
    let n = points.len();
    if threshold >= n {
        return (0..n).collect();
    }
    match threshold {
        0 => return Vec::new(),
        1 => return vec![n - 1],
        2 => return vec![0, n - 1],
        _ => {}
    }
    let buckets = threshold - 2;
    // The points between first and last, 1..n-1, in `buckets` slices.
    let inner = (n - 2) as f64;
    let bounds = |b: usize| -> (usize, usize) {
        let start = 1 + (b as f64 * inner / buckets as f64).floor() as usize;
        let end = 1 + ((b + 1) as f64 * inner / buckets as f64).floor() as usize;
        (start, end.min(n - 1))
    };
    let mut kept = Vec::with_capacity(threshold);
    kept.push(0);
    let mut a = 0;
    for b in 0..buckets {
        let (start, end) = bounds(b);
        // The next bucket's mean (the last point for the last bucket).
        let (nx, ny) = if b + 1 < buckets {
            let (ns, ne) = bounds(b + 1);
            let len = (ne - ns).max(1) as f64;
            let (sx, sy) = points[ns..ne.max(ns + 1)]
                .iter()
                .fold((0.0, 0.0), |(sx, sy), &(x, y)| (sx + x, sy + y));
            (sx / len, sy / len)
        } else {
            points[n - 1]
        };
        let (ax, ay) = points[a];
        let mut best = start;
        let mut best_area = -1.0;
        for (i, &(x, y)) in points
            .iter()
            .enumerate()
            .take(end.max(start + 1))
            .skip(start)
        {
            let area = ((ax - nx) * (y - ay) - (ax - x) * (ny - ay)).abs();
            // A NaN area (a NaN value) never wins, so a point is still picked.
            if area > best_area {
                best_area = area;
                best = i;
            }
        }
        kept.push(best);
        a = best;
    }
    kept.push(n - 1);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_series_are_kept_whole_and_small_thresholds_keep_the_ends() {
        let series: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, (i * i) as f64)).collect();
        assert_eq!(lttb(&series, 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(lttb(&series, 5), vec![0, 1, 2, 3, 4]);
        assert_eq!(lttb(&series, 2), vec![0, 4]);
        assert_eq!(lttb(&series, 1), vec![4]);
        assert!(lttb(&series, 0).is_empty());
        assert!(lttb(&[], 3).is_empty());
    }

    #[test]
    fn a_spike_survives_downsampling() {
        let mut series: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, 1.0)).collect();
        series[537].1 = 100.0;
        let kept = lttb(&series, 20);
        assert_eq!(kept.len(), 20);
        assert!(kept.contains(&537), "{kept:?}");
    }

    proptest! {
        #[test]
        fn keeps_first_last_and_the_requested_count(
            ys in proptest::collection::vec(-1e6f64..1e6, 0..400),
            threshold in 0usize..450,
        ) {
            let series: Vec<(f64, f64)> =
                ys.iter().enumerate().map(|(i, &y)| (i as f64 * 10.0, y)).collect();
            let kept = lttb(&series, threshold);
            prop_assert_eq!(kept.len(), threshold.min(series.len()));
            prop_assert!(kept.windows(2).all(|w| w[0] < w[1]), "increasing: {:?}", kept);
            if threshold >= 2 && !series.is_empty() {
                prop_assert_eq!(kept[0], 0);
            }
            if threshold >= 1 && !series.is_empty() {
                prop_assert_eq!(*kept.last().unwrap(), series.len() - 1);
            }
        }
    }
}
