//! Server-rendered SVG charts for the web UI.
//!
//! Charts are drawn on the server as inline SVG rather than by a JavaScript library: the UI
//! must work offline and air-gapped, it ships no external assets (no scripts, fonts or styles
//! to host or pin), and a chart that is plain text can be checked in ordinary unit tests.
//! Every chart also carries the numbers behind it as a [`Table`], which templates render as
//! the text alternative for screen readers and for anyone who wants exact figures.

use std::fmt::Write as _;

use crate::xml::escape;

/// Okabe-Ito (minus black, which reads as an axis) plus three of Paul Tol's colours:
/// distinguishable under the common colour-vision deficiencies.
pub const PALETTE: [&str; 10] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#117733", "#CC79A7", "#8C6D00", "#332288",
    "#882255", "#999999",
];

const WIDTH: f64 = 760.0;
const LEFT: f64 = 80.0; // room for tick labels such as "$12,500.00"
const PLOT_W: f64 = WIDTH - LEFT - 16.0;
const PLOT_H: f64 = 200.0; // fixed: a legend that wraps makes the SVG taller instead
const BOTTOM: f64 = 28.0;
const CHAR_W: f64 = 6.5; // rough advance of a character, to keep labels apart
const MAX_X_LABELS: usize = 8;
const MAX_POINT_TITLES: usize = 200; // beyond this, a title per point bloats the page
const GRIDLINES: u32 = 5;

/// One named series of values, one per category / x position. NaN = no value (gap).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

impl Series {
    /// A series shorter than its categories has gaps at the end.
    fn at(&self, i: usize) -> f64 {
        self.values.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// How values are printed in axis ticks, tooltips and the table. `Money`: dollars, "$1,234.56";
/// `Percent`: fractions 0..1, "12.3%"; `Millis`: "850 ms", or "1.25 s" from a second up;
/// `Count`: "12,345".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Money,
    Percent,
    Millis,
    Count,
}

/// A rendered chart and the numbers behind it.
#[derive(Debug, Clone)]
pub struct Chart {
    pub svg: String,
    pub table: Table,
}

/// The numbers behind a chart, for a `<table>` (text alternative): header row then rows, all
/// preformatted strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Writing to a `String` cannot fail, so the `fmt::Result` is dropped.
macro_rules! put {
    ($dst:expr, $($arg:tt)*) => {{
        let _ = write!($dst, $($arg)*);
    }};
}

/// Formats a value for display; non-finite values (gaps) print as "–".
pub fn format_value(value: f64, unit: Unit) -> String {
    // Rounding to integers first means tiny negatives never print as "-0".
    let sign = |n: i64| if n < 0 { "-" } else { "" };
    match unit {
        _ if !value.is_finite() => "–".to_owned(),
        Unit::Money => {
            let cents = (value * 100.0).round() as i64;
            let abs = cents.unsigned_abs();
            format!("{}${}.{:02}", sign(cents), thousands(abs / 100), abs % 100)
        }
        Unit::Percent => {
            let tenths = (value * 1000.0).round() as i64;
            let abs = tenths.unsigned_abs();
            format!("{}{}.{}%", sign(tenths), abs / 10, abs % 10)
        }
        Unit::Millis if value.round().abs() >= 1000.0 => format!("{:.2} s", value / 1000.0),
        Unit::Millis => format!("{} ms", value.round() as i64),
        Unit::Count => {
            let n = value.round() as i64;
            format!("{}{}", sign(n), thousands(n.unsigned_abs()))
        }
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Stacked vertical bars: one bar per category (e.g. a day "2026-10-01"), one stacked segment
/// per series (e.g. a model). Only positive values stack; "Total" sums all finite values.
pub fn stacked_bars(title: &str, categories: &[String], series: &[Series], unit: Unit) -> Chart {
    let tallest = (0..categories.len())
        .map(|i| stack_and_total(series, i).0)
        .fold(0.0, f64::max);
    let mut canvas = Canvas::new("bars", title, series);
    if canvas.y_axis(tallest, unit) {
        let slot = PLOT_W / categories.len() as f64;
        let width = slot * 0.7;
        for (i, category) in categories.iter().enumerate() {
            let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
            let mut base = 0.0;
            for (k, s) in series.iter().enumerate().filter(|(_, s)| s.at(i) > 0.0) {
                let v = s.at(i);
                let (y, height) = (canvas.y(base + v), canvas.y(base) - canvas.y(base + v));
                let (fill, tip) = (colour(k), tooltip(&s.name, category, v, unit));
                put!(
                    canvas.svg,
                    r#"<rect class="seg" x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{height:.1}" fill="{fill}"><title>{tip}</title></rect>"#
                );
                base += v;
            }
        }
        canvas.x_labels(categories, |i| LEFT + slot * (i as f64 + 0.5));
    }
    let mut table = table("Category", categories, series, unit);
    if !table.rows.is_empty() {
        table.headers.push("Total".to_owned());
        for (i, row) in table.rows.iter_mut().enumerate() {
            row.push(format_value(stack_and_total(series, i).1, unit));
        }
    }
    let svg = canvas.finish();
    Chart { svg, table }
}

/// Lines over x positions (e.g. hours "2026-10-14T10:00Z"), one polyline per series; NaN breaks
/// a line. `marks`: ranges of x indices [from, to) to shade as a highlighted band (e.g. an alert
/// episode), with a label. Negative values are drawn on the zero line.
pub fn lines(
    title: &str,
    x_labels: &[String],
    series: &[Series],
    unit: Unit,
    marks: &[(usize, usize, String)],
) -> Chart {
    let n = x_labels.len();
    let values = series.iter().flat_map(|s| s.values.iter().take(n).copied());
    let highest = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    let mut canvas = Canvas::new("lines", title, series);
    if canvas.y_axis(highest, unit) {
        // A single point sits mid-plot, and its "step" spans the plot so a mark covers it.
        let step = PLOT_W / (n.max(2) - 1) as f64;
        let start = if n > 1 { LEFT } else { LEFT + PLOT_W / 2.0 };
        let x_of = |i: usize| start + step * i as f64;
        // Bands first, so the lines are drawn over them.
        for (from, to, label) in marks.iter().filter(|(from, to, _)| from < to && *from < n) {
            // Half a step either side, so a one-point episode is still a visible band.
            let x0 = (x_of(*from) - step / 2.0).max(LEFT);
            let width = (x_of(*to.min(&n) - 1) + step / 2.0).min(LEFT + PLOT_W) - x0;
            let (y, label_x, label_y) = (canvas.top, x0 + 3.0, canvas.top + 11.0);
            put!(
                canvas.svg,
                r##"<rect class="mark" x="{x0:.1}" y="{y:.1}" width="{width:.1}" height="{PLOT_H:.1}" fill="#CC0000" fill-opacity="0.1"/><text class="mark-label" x="{label_x:.1}" y="{label_y:.1}" font-size="10">{}</text>"##,
                escape(label)
            );
        }
        for (k, s) in series.iter().enumerate() {
            canvas.svg.push_str(r#"<g class="series">"#);
            let per_point = n <= MAX_POINT_TITLES;
            if !per_point {
                put!(canvas.svg, "<title>{}</title>", escape(&s.name));
            }
            let (mut run, mut dots) = (Vec::new(), String::new());
            for (i, label) in x_labels.iter().enumerate() {
                let v = s.at(i);
                if !v.is_finite() {
                    draw_run(&mut canvas.svg, &run, colour(k));
                    run.clear();
                    continue;
                }
                let (x, y) = (x_of(i), canvas.y(v));
                run.push((x, y));
                if per_point {
                    let (fill, tip) = (colour(k), tooltip(&s.name, label, v, unit));
                    put!(
                        dots,
                        r#"<circle class="pt" cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{fill}"><title>{tip}</title></circle>"#
                    );
                }
            }
            draw_run(&mut canvas.svg, &run, colour(k));
            put!(canvas.svg, "{dots}</g>");
        }
        canvas.x_labels(x_labels, x_of);
    }
    let table = table("Time", x_labels, series, unit);
    let svg = canvas.finish();
    Chart { svg, table }
}

/// One element per contiguous run, not per point, keeps a month of hours small.
fn draw_run(out: &mut String, run: &[(f64, f64)], colour: &str) {
    match run {
        [] => {}
        // An isolated value between gaps has no line to sit on; show it as a dot.
        [(x, y)] => put!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="{colour}"/>"#
        ),
        _ => {
            let points: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            put!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                points.join(" ")
            );
        }
    }
}

/// The SVG being built, with the vertical scale shared by both chart kinds.
#[derive(Debug)]
struct Canvas {
    svg: String,
    top: f64, // of the plot area, below the legend
    y_max: f64,
}

impl Canvas {
    fn new(kind: &str, title: &str, series: &[Series]) -> Self {
        // Lay the legend out first: the rows it wraps to decide the SVG's height.
        let (mut legend, mut x, mut y) = (String::new(), LEFT, 14.0);
        for (k, s) in series.iter().enumerate() {
            let width = 30.0 + CHAR_W * s.name.chars().count() as f64;
            if x > LEFT && x + width > LEFT + PLOT_W {
                (x, y) = (LEFT, y + 16.0);
            }
            let (key_y, text_x, fill, name) = (y - 9.0, x + 14.0, colour(k), escape(&s.name));
            put!(
                legend,
                r#"<rect class="key" x="{x:.1}" y="{key_y:.1}" width="10" height="10" fill="{fill}"/><text x="{text_x:.1}" y="{y:.1}">{name}</text>"#
            );
            x += width;
        }
        let (top, id, title) = (y + 14.0, chart_id(kind, title), escape(title));
        let height = top + PLOT_H + BOTTOM;
        let mut svg = String::with_capacity(8192);
        put!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:.0} {height:.0}" width="100%" role="img" aria-labelledby="{id}" font-family="system-ui, sans-serif" font-size="11" fill="currentColor"><title id="{id}">{title}</title>{legend}"#
        );
        let y_max = 1.0;
        Canvas { svg, top, y_max }
    }

    fn y(&self, value: f64) -> f64 {
        self.top + PLOT_H - PLOT_H * (value.max(0.0) / self.y_max).min(1.0)
    }

    /// Draws gridlines and tick labels up to a nice maximum above `highest` and returns true;
    /// or, when there is nothing to draw, a "No data" note and returns false.
    fn y_axis(&mut self, highest: f64, unit: Unit) -> bool {
        let (right, bottom) = (LEFT + PLOT_W, self.top + PLOT_H);
        if !(highest.is_finite() && highest > 0.0) {
            let (x, y) = (LEFT + PLOT_W / 2.0, self.top + PLOT_H / 2.0);
            put!(
                self.svg,
                r#"<line class="gridline" x1="{LEFT:.1}" y1="{bottom:.1}" x2="{right:.1}" y2="{bottom:.1}" stroke="currentColor" stroke-opacity="0.6"/><text class="empty" x="{x:.1}" y="{y:.1}" text-anchor="middle">No data</text>"#
            );
            return false;
        }
        // The smallest top at which the gridlines still get distinct labels at `unit`'s precision.
        let floor = match unit {
            Unit::Money => 0.05,
            Unit::Percent => 0.005,
            Unit::Millis | Unit::Count => 5.0,
        };
        self.y_max = nice_max(highest.max(floor));
        for k in 0..=GRIDLINES {
            let value = self.y_max * f64::from(k) / f64::from(GRIDLINES);
            let (y, label_x, label_y) = (self.y(value), LEFT - 6.0, self.y(value) + 3.5);
            let (opacity, label) = (if k == 0 { 0.6 } else { 0.15 }, format_value(value, unit));
            put!(
                self.svg,
                r#"<line class="gridline" x1="{LEFT:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="currentColor" stroke-opacity="{opacity}"/><text class="y" x="{label_x:.1}" y="{label_y:.1}" text-anchor="end" font-size="10">{}</text>"#,
                escape(&label)
            );
        }
        true
    }

    /// At most `MAX_X_LABELS`, evenly strided, never overlapping: the stride allows for the
    /// widest label, and a label still colliding after being kept inside the SVG is skipped.
    fn x_labels(&mut self, labels: &[String], x_of: impl Fn(usize) -> f64) {
        let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64 * CHAR_W;
        let fit = ((widest + 8.0) / (x_of(1) - x_of(0)).max(0.01)).ceil() as usize;
        let stride = labels.len().div_ceil(MAX_X_LABELS).max(fit).max(1);
        let (y, mut prev_right) = (self.top + PLOT_H + 16.0, f64::NEG_INFINITY);
        for (i, label) in labels.iter().enumerate().step_by(stride) {
            let half = (label.chars().count() as f64 * CHAR_W / 2.0).min(WIDTH / 2.0);
            let x = x_of(i).clamp(half, WIDTH - half);
            if x - half >= prev_right + 8.0 {
                prev_right = x + half;
                let label = escape(label);
                put!(
                    self.svg,
                    r#"<text class="x" x="{x:.1}" y="{y:.1}" text-anchor="middle" font-size="10">{label}</text>"#
                );
            }
        }
    }

    fn finish(self) -> String {
        self.svg + "</svg>"
    }
}

/// Smallest 1, 2, 2.5 or 5 × 10^k at or above `max`, so ticks at fifths are round numbers.
fn nice_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powi(max.log10().floor() as i32);
    // The tolerance keeps float noise from pushing an exact 2.0 up to 2.5.
    let fraction = max / magnitude * (1.0 - 1e-9);
    let step = [1.0, 2.0, 2.5, 5.0].into_iter().find(|s| fraction <= *s);
    step.unwrap_or(10.0) * magnitude
}

/// Height of the stack (positive values only) and total of all finite values at index `i`.
fn stack_and_total(series: &[Series], i: usize) -> (f64, f64) {
    let finite = series.iter().map(|s| s.at(i)).filter(|v| v.is_finite());
    finite.fold((0.0, 0.0), |(stack, sum), v| (stack + v.max(0.0), sum + v))
}

/// The text alternative: a column per series, a row per label; empty when there is no input.
fn table(first: &str, labels: &[String], series: &[Series], unit: Unit) -> Table {
    if labels.is_empty() || series.is_empty() {
        return Table::default();
    }
    let mut headers = vec![first.to_owned()];
    headers.extend(series.iter().map(|s| s.name.clone()));
    let row = |(i, label): (usize, &String)| {
        let values = series.iter().map(|s| format_value(s.at(i), unit));
        std::iter::once(label.clone()).chain(values).collect()
    };
    let rows = labels.iter().enumerate().map(row).collect();
    Table { headers, rows }
}

fn colour(k: usize) -> &'static str {
    PALETTE[k % PALETTE.len()]
}

fn tooltip(name: &str, category: &str, value: f64, unit: Unit) -> String {
    let value = format_value(value, unit);
    escape(&format!("{name} · {category}: {value}"))
}

/// Several charts can share a page and `aria-labelledby` needs unique ids; FNV-1a is tiny
/// and, unlike `DefaultHasher`, stable across runs and builds.
fn chart_id(kind: &str, title: &str) -> String {
    let fnv = |hash: u32, byte: u8| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    let bytes = kind.bytes().chain([0]).chain(title.bytes());
    format!("chart-{:08x}", bytes.fold(0x811c_9dc5, fnv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, values: &[f64]) -> Series {
        let (name, values) = (name.to_owned(), values.to_vec());
        Series { name, values }
    }

    fn hours(n: usize) -> Vec<String> {
        let hour = |i: usize| format!("2026-10-{:02}T{:02}:00Z", 1 + i / 24, i % 24);
        (0..n).map(hour).collect()
    }

    #[test]
    fn formats_values() {
        assert_eq!(format_value(1234.5, Unit::Money), "$1,234.50");
        assert_eq!(format_value(1_234_567.891, Unit::Money), "$1,234,567.89");
        assert_eq!(format_value(-42.1, Unit::Money), "-$42.10");
        assert_eq!(format_value(-0.001, Unit::Money), "$0.00");
        assert_eq!(format_value(0.123, Unit::Percent), "12.3%");
        assert_eq!(format_value(850.0, Unit::Millis), "850 ms");
        assert_eq!(format_value(1250.0, Unit::Millis), "1.25 s");
        assert_eq!(format_value(12_345.0, Unit::Count), "12,345");
        assert_eq!(format_value(999.0, Unit::Count), "999");
        assert_eq!(format_value(f64::NAN, Unit::Count), "–");
    }

    #[test]
    fn stacked_bars_draw_non_zero_segments_and_total_them() {
        let days = ["2026-10-01".to_owned(), "2026-10-02".to_owned()];
        let series = [s("a", &[1.0, 0.0]), s("b", &[2.0, 3.0])];
        let chart = stacked_bars("Spend", &days, &series, Unit::Count);
        assert_eq!(chart.svg.matches(r#"<rect class="seg""#).count(), 3);
        assert!(chart.svg.contains("<title>b · 2026-10-02: 3</title>"));
        assert_eq!(chart.table.headers, ["Category", "a", "b", "Total"]);
        assert_eq!(chart.table.rows[0], ["2026-10-01", "1", "2", "3"]);
        assert_eq!(chart.table.rows[1], ["2026-10-02", "0", "3", "3"]);
    }

    #[test]
    fn escapes_text() {
        let chart = stacked_bars("A & B", &["x".to_owned()], &[s("<&>", &[1.0])], Unit::Money);
        assert!(chart.svg.contains("&lt;&amp;&gt;") && !chart.svg.contains("<&>"));
        assert!(chart.svg.contains(">A &amp; B</title>"));
        assert_eq!(escape(r#"'"'"#), "&apos;&quot;&apos;");
    }

    #[test]
    fn empty_and_zero_input_say_no_data() {
        let empty = stacked_bars("Empty", &[], &[], Unit::Money);
        assert!(empty.svg.contains("No data") && empty.svg.ends_with("</svg>"));
        assert_eq!(empty.table, Table::default());
        let zeros = stacked_bars("Zero", &["x".to_owned()], &[s("a", &[0.0])], Unit::Money);
        assert!(zeros.svg.contains("No data") && zeros.svg.starts_with("<svg "));
        assert_eq!(zeros.table.rows[0], ["x", "$0.00", "$0.00"]);
        let marks = [(0, 3, "alert".to_owned())];
        let none = lines("None", &[], &[], Unit::Millis, &marks);
        assert!(none.svg.contains("No data") && !none.svg.contains("NaN"));
        let nan = [s("a", &[f64::NAN])];
        let gaps = lines("Gaps", &hours(2), &nan, Unit::Percent, &[]);
        assert!(gaps.svg.contains("No data"));
        assert_eq!(gaps.table.rows[1], ["2026-10-01T01:00Z", "–"]);
    }

    #[test]
    fn lines_break_at_nan() {
        let series = [s("gw", &[1.0, 2.0, f64::NAN, 3.0, 4.0])];
        let chart = lines("p95", &hours(5), &series, Unit::Millis, &[]);
        assert_eq!(chart.svg.matches("<polyline").count(), 2);
        assert_eq!(chart.svg.matches(r#"<circle class="pt""#).count(), 4);
        assert_eq!(chart.table.headers, ["Time", "gw"]);
        assert_eq!(chart.table.rows[2], ["2026-10-01T02:00Z", "–"]);
    }

    #[test]
    fn many_points_give_one_title_per_series() {
        let values: Vec<f64> = (0..744).map(|i| f64::from(i % 50)).collect();
        let series = [s("a", &values), s("b", &values)];
        let marks = [(100, 130, "alert".to_owned())];
        let chart = lines("Month", &hours(744), &series, Unit::Count, &marks);
        // The chart's own title plus one per series.
        assert_eq!(chart.svg.matches("<title").count(), 3);
        assert_eq!(chart.svg.matches("<polyline").count(), 2);
        assert_eq!(chart.svg.matches(r#"<rect class="mark""#).count(), 1);
        assert!(chart.svg.contains(">alert</text>"));
        assert!(chart.svg.matches(r#"class="x""#).count() <= MAX_X_LABELS);
    }

    #[test]
    fn nice_maximum() {
        let cases = [
            (0.37, 0.5),
            (1234.0, 2000.0),
            (2.0, 2.0),
            (2.2, 2.5),
            (0.0, 1.0),
        ];
        for (max, nice) in cases {
            assert!((nice_max(max) - nice).abs() < 1e-9, "{max} -> {nice}");
        }
        assert_ne!(chart_id("bars", "Spend"), chart_id("bars", "Tokens"));
    }
}
