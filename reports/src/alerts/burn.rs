//! Multi-window, multi-burn-rate SLO alerts (the SRE workbook's table for a
//! 30-day SLO): the burn rate is the error ratio over the error budget
//! (`1 - objective`); an alert holds when both its long and its short window
//! burn faster than its factor.

use super::series::STEP_US;

const MINUTE_US: i64 = 60_000_000;
const HOUR_US: i64 = 60 * MINUTE_US;

/// One of the four generated alerts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnWindow {
    pub factor: f64,
    pub long_us: i64,
    pub short_us: i64,
    /// `page` or `ticket`.
    pub severity: &'static str,
    /// The label naming it, e.g. `1h/5m`.
    pub name: &'static str,
}

/// The four alerts: page at 14.4 over 1 h and 5 m or 6 over 6 h and 30 m;
/// ticket at 3 over 1 d and 2 h or 1 over 3 d and 6 h.
pub const WINDOWS: [BurnWindow; 4] = [
    BurnWindow {
        factor: 14.4,
        long_us: HOUR_US,
        short_us: 5 * MINUTE_US,
        severity: "page",
        name: "1h/5m",
    },
    BurnWindow {
        factor: 6.0,
        long_us: 6 * HOUR_US,
        short_us: 30 * MINUTE_US,
        severity: "page",
        name: "6h/30m",
    },
    BurnWindow {
        factor: 3.0,
        long_us: 24 * HOUR_US,
        short_us: 2 * HOUR_US,
        severity: "ticket",
        name: "1d/2h",
    },
    BurnWindow {
        factor: 1.0,
        long_us: 72 * HOUR_US,
        short_us: 6 * HOUR_US,
        severity: "ticket",
        name: "3d/6h",
    },
];

/// The longest span a burn-rate rule reads.
pub const LOOKBACK_US: i64 = 72 * HOUR_US;

impl BurnWindow {
    /// The short window as the rollups can measure it: whole hours, at least
    /// one (on hourly data the 5 m and 30 m windows are the hour itself).
    pub fn short_measured_us(&self) -> i64 {
        ((self.short_us + STEP_US - 1) / STEP_US).max(1) * STEP_US
    }
}

/// The burn rate of `bad` out of `total` against `objective`; `None` with no
/// traffic (a window with no requests burns nothing and proves nothing).
pub fn burn_rate(bad: i64, total: i64, objective: f64) -> Option<f64> {
    if total <= 0 {
        return None;
    }
    Some(bad as f64 / total as f64 / (1.0 - objective))
}

/// Whether both windows burn faster than the factor; the long window's rate
/// is the value reported.
pub fn holds(window: &BurnWindow, long: Option<f64>, short: Option<f64>) -> (bool, f64) {
    match (long, short) {
        (Some(l), Some(s)) => (l > window.factor && s > window.factor, l),
        (Some(l), None) => (false, l),
        _ => (false, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factors_are_the_workbooks() {
        let table: Vec<(f64, i64, i64, &str)> = WINDOWS
            .iter()
            .map(|w| {
                (
                    w.factor,
                    w.long_us / MINUTE_US,
                    w.short_us / MINUTE_US,
                    w.severity,
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                (14.4, 60, 5, "page"),
                (6.0, 360, 30, "page"),
                (3.0, 1440, 120, "ticket"),
                (1.0, 4320, 360, "ticket"),
            ]
        );
        // 14.4 over an hour spends 2% of a 30-day budget; 6 over 6 h, 5%.
        let spent = |w: &BurnWindow| w.factor * w.long_us as f64 / (30.0 * 24.0 * HOUR_US as f64);
        assert!((spent(&WINDOWS[0]) - 0.02).abs() < 1e-9);
        assert!((spent(&WINDOWS[1]) - 0.05).abs() < 1e-9);
        assert!((spent(&WINDOWS[2]) - 0.10).abs() < 1e-9);
        assert!((spent(&WINDOWS[3]) - 0.10).abs() < 1e-9);
    }

    #[test]
    fn burn_is_the_error_ratio_over_the_budget() {
        let rate = burn_rate(15, 1000, 0.999).unwrap();
        assert!((rate - 15.0).abs() < 1e-9);
        assert_eq!(burn_rate(0, 1000, 0.999), Some(0.0));
        // Zero traffic: no rate, and the alert does not hold.
        assert_eq!(burn_rate(0, 0, 0.999), None);
        assert_eq!(holds(&WINDOWS[0], None, None), (false, 0.0));
        assert_eq!(holds(&WINDOWS[0], Some(20.0), None), (false, 20.0));
    }

    #[test]
    fn both_windows_must_burn() {
        let w = &WINDOWS[0];
        assert!(holds(w, Some(15.0), Some(15.0)).0);
        // The long window still remembers a burst the short one has left.
        assert!(!holds(w, Some(15.0), Some(2.0)).0);
        assert!(!holds(w, Some(2.0), Some(50.0)).0);
        assert_eq!(w.short_measured_us(), STEP_US);
        assert_eq!(WINDOWS[2].short_measured_us(), 2 * STEP_US);
    }
}
