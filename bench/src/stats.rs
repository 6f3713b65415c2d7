//! Statistics of measured samples: the one percentile function every benchmark uses, and
//! the summaries they print.

/// The `p`-th percentile (0–100) of `sorted` values by nearest rank: the smallest value
/// with at least `p` % of the values at or below it (`p` = 100 is the maximum). `None`
/// when there are no values.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// [`percentile`] of `f64` values, NaN when there are none.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    percentile(sorted, p).unwrap_or(f64::NAN)
}

/// The values in ascending order (NaN last).
pub fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// `p50 …  p90 …  p99 …  max …  (min …, mean …, n=…)` of sorted values, in their unit.
pub fn summary(values: &[f64]) -> String {
    format!(
        "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (min {:.1}, mean {:.1}, n={})",
        pct(values, 50.0),
        pct(values, 90.0),
        pct(values, 99.0),
        values.last().copied().unwrap_or(f64::NAN),
        values.first().copied().unwrap_or(f64::NAN),
        values.iter().sum::<f64>() / values.len().max(1) as f64,
        values.len()
    )
}

/// `min / median / max unit` of (unsorted, non-empty) values.
pub fn spread(values: Vec<f64>, unit: &str, decimals: usize) -> String {
    let values = sorted(values);
    format!(
        "{:.d$} / {:.d$} / {:.d$} {unit}",
        values[0],
        pct(&values, 50.0),
        values[values.len() - 1],
        d = decimals
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&values, 50.0), Some(5));
        assert_eq!(percentile(&values, 90.0), Some(9));
        assert_eq!(percentile(&values, 99.0), Some(10));
        assert_eq!(percentile(&values, 100.0), Some(10));
        assert_eq!(percentile(&values, 0.0), Some(1));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        assert!(pct(&[], 50.0).is_nan());
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0], "ms", 0), "1 / 2 / 3 ms");
    }
}
