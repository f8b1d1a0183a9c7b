//! The anomaly detector: a value against its seasonal baseline (the same hour
//! of the week in earlier weeks, and the hours either side of it), judged by a
//! robust z-score (median and MAD, so one earlier incident in the baseline does
//! not hide the next), with a floor on the spread so a flat baseline does not
//! make every wiggle an anomaly.

/// How far `value` is from `baseline`, in robust standard deviations; `None`
/// with fewer than `min_samples` baseline values.
pub fn robust_z(value: f64, baseline: &[f64], min_samples: usize, floor: f64) -> Option<f64> {
    if baseline.len() < min_samples.max(1) {
        return None;
    }
    let median = median(baseline.to_vec());
    let mad = median_abs_deviation(baseline, median);
    // 1.4826 * MAD estimates the standard deviation of normal data.
    let spread = (1.4826 * mad).max(0.1 * median.abs()).max(floor);
    Some((value - median) / spread)
}

/// The smallest spread worth judging by, per kind of metric: a handful of
/// requests, one percentage point, 50 ms.
pub fn spread_floor(metric: &str) -> f64 {
    if metric.ends_with("_rate") || metric.ends_with("_share") {
        0.01
    } else if metric.contains("latency_p") {
        50.0
    } else {
        3.0
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn median_abs_deviation(values: &[f64], median_value: f64) -> f64 {
    median(values.iter().map(|v| (v - median_value).abs()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outlier_in_the_baseline_does_not_hide_the_next() {
        let baseline = [100.0, 104.0, 98.0, 101.0, 97.0, 5000.0];
        let z = robust_z(2000.0, &baseline, 4, 3.0).unwrap();
        assert!(z > 50.0, "{z}");
        let z = robust_z(103.0, &baseline, 4, 3.0).unwrap();
        assert!(z.abs() < 1.0, "{z}");
    }

    #[test]
    fn a_flat_baseline_has_a_floor() {
        // Zero backend 429s every week: three is noise, thirty is not.
        let baseline = [0.0; 6];
        assert!(robust_z(3.0, &baseline, 4, spread_floor("backend_429")).unwrap() <= 1.0);
        assert!(robust_z(30.0, &baseline, 4, spread_floor("backend_429")).unwrap() >= 10.0);
    }

    #[test]
    fn too_little_history_is_no_judgement() {
        assert_eq!(robust_z(1e9, &[1.0, 2.0], 4, 1.0), None);
    }
}
