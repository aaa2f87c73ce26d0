//! The chart of an `ecbench` run: one SVG file with, under the title, the throughput over time
//! (MiB/s, and a smaller IOPS panel below it) and the completion latency by percentile, one
//! line per measured pass (the engine's, and the raw devices' with `--compare-raw`) and
//! direction that completed any operation.
//!
//! The text is left to the SVG viewer's fonts: nothing here reads a font file.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One measured pass to draw: the engine's, or the raw devices' with --compare-raw.
pub struct ChartSeries<'a> {
    /// Legend name, e.g. "engine" or "raw".
    pub label: &'a str,
    /// Length of one sample interval.
    pub tick: Duration,
    /// Per interval, per direction (index 0 = read, 1 = write): (bytes, operations) completed in it.
    pub samples: &'a [[(u64, u64); 2]],
    /// Completion latency in nanoseconds, per direction (0 = read, 1 = write).
    pub hists: [&'a hdrhistogram::Histogram<u64>; 2],
}

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 1000;
/// Heights of the throughput and the IOPS panels; the latency panel has the rest.
const THROUGHPUT_HEIGHT: i32 = 330;
const IOPS_HEIGHT: i32 = 200;
/// Height of the row under the title that names the lines over time.
const LEGEND_HEIGHT: i32 = 30;
/// Font sizes as given to the chart library, which draws text at about 0.8 of them.
const CAPTION_FONT: f64 = 22.0;
const LABEL_FONT: f64 = 16.0;
const LEGEND_FONT: f64 = 18.0;
const DIRECTIONS: [&str; 2] = ["read", "write"];
const MIB: f64 = (1u64 << 20) as f64;
/// The latency curve's right end, in nines: 99.99%.
const NINES: f64 = 4.0;
/// Points computed along each latency curve (before the flat runs are thinned out).
const CURVE_STEPS: usize = 400;
/// Per series, the colours of its read and its write lines; past the last pair they repeat.
const PALETTE: [[RGBColor; 2]; 4] = [
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40)],
    [RGBColor(23, 190, 207), RGBColor(255, 127, 14)],
    [RGBColor(44, 160, 44), RGBColor(148, 103, 189)],
    [RGBColor(140, 86, 75), RGBColor(227, 119, 194)],
];
const FONT: &str = "sans-serif";

/// One series and direction over time.
struct RateLine {
    name: String,
    color: RGBColor,
    /// (seconds, MiB/s).
    mib_s: Vec<(f64, f64)>,
    /// (seconds, operations per second).
    iops: Vec<(f64, f64)>,
}

/// One series and direction by percentile.
struct LatencyCurve {
    name: String,
    color: RGBColor,
    /// (nines, nanoseconds, at least 1 so that the log scale can show it).
    points: Vec<(f64, f64)>,
}

/// Writes one SVG to `path`: the title, a row naming the lines, then the throughput over time
/// (MiB/s against seconds) and below it, smaller, the IOPS, one line per series and direction
/// that has operations; at the bottom the completion latency by percentile, one curve per series
/// and direction with operations, so that engine and raw appear side by side. The percentile
/// runs from 0 to 99.99 on a "nines" scale, -log10(1 - p/100), with ticks at 50, 90, 99, 99.9
/// and 99.99; the latency is on a log scale labelled in ns, µs, ms or s.
///
/// The file is only written once the whole chart is drawn, so on an error nothing is written.
/// An error names `path`: when no series has any operation, or the file cannot be written.
pub fn write_svg(path: &Path, title: &str, series: &[ChartSeries]) -> Result<()> {
    let mut rates = Vec::new();
    let mut curves = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let label = printable(s.label);
        for (d, direction) in DIRECTIONS.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()][d];
            let name = if label.is_empty() {
                (*direction).to_owned()
            } else {
                format!("{label} {direction}")
            };
            if let Some(line) = rate_line(s, d, name.clone(), color) {
                rates.push(line);
            }
            if let Some(points) = percentile_curve(s.hists[d]) {
                let h = s.hists[d];
                let name = format!(
                    "{name}: p50 {}, p99 {}, max {}",
                    format_ns(h.value_at_quantile(0.5) as f64),
                    format_ns(h.value_at_quantile(0.99) as f64),
                    format_ns(h.max() as f64),
                );
                curves.push(LatencyCurve {
                    name,
                    color,
                    points,
                });
            }
        }
    }
    if rates.is_empty() && curves.is_empty() {
        bail!(
            "no chart written to {}: no series has any completed operation",
            path.display()
        );
    }

    let mut svg = String::new();
    draw(&mut svg, &printable(title), &rates, &curves)
        .with_context(|| format!("drawing the chart for {}", path.display()))?;
    std::fs::write(path, svg)
        .with_context(|| format!("cannot write the chart to {}", path.display()))
}

/// Draws the whole chart into `svg`.
fn draw(svg: &mut String, title: &str, rates: &[RateLine], curves: &[LatencyCurve]) -> Result<()> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(title, (FONT, 32))?;
    let (legend, body) = body.split_vertically(LEGEND_HEIGHT);
    let (throughput, rest) = body.split_vertically(THROUGHPUT_HEIGHT);
    let (iops, latency) = rest.split_vertically(IOPS_HEIGHT);

    draw_legend(&legend, rates)?;
    let end = rates
        .iter()
        .flat_map(|l| l.mib_s.last())
        .map(|p| p.0)
        .fold(0.0, f64::max);
    let seconds = 0.0..if end > 0.0 { end } else { 1.0 };
    draw_rates(
        &throughput,
        "Throughput",
        "MiB/s",
        format_number,
        seconds.clone(),
        rates.iter().map(|l| (l, &l.mib_s[..])),
        8,
    )?;
    draw_rates(
        &iops,
        "Operations",
        "IOPS",
        format_count,
        seconds,
        rates.iter().map(|l| (l, &l.iops[..])),
        4,
    )?;
    draw_latency(&latency, curves)?;
    root.present()?;
    Ok(())
}

/// The legend of both panels over time, in one row under the title, so that it hides no line.
fn draw_legend(area: &DrawingArea<SVGBackend, Shift>, rates: &[RateLine]) -> Result<()> {
    const SWATCH: i32 = 24;
    const GAP: i32 = 28;
    let style =
        TextStyle::from((FONT, LEGEND_FONT).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let widths: Vec<i32> = rates
        .iter()
        .map(|l| {
            area.estimate_text_size(&l.name, &style)
                .map(|(w, _)| w as i32)
        })
        .collect::<Result<_, _>>()?;
    let total: i32 =
        widths.iter().map(|w| SWATCH + 6 + w).sum::<i32>() + GAP * (widths.len() as i32 - 1).max(0);
    let (w, h) = area.dim_in_pixel();
    let (mut x, y) = (((w as i32 - total) / 2).max(10), h as i32 / 2);
    for (line, width) in rates.iter().zip(widths) {
        area.draw(&PathElement::new(
            [(x, y), (x + SWATCH, y)],
            line.color.stroke_width(3),
        ))?;
        area.draw_text(&line.name, &style, (x + SWATCH + 6, y))?;
        x += SWATCH + 6 + width + GAP;
    }
    Ok(())
}

/// One panel of values over time: a line per series and direction.
fn draw_rates<'l>(
    area: &DrawingArea<SVGBackend, Shift>,
    caption: &str,
    unit: &str,
    format_y: fn(f64) -> String,
    seconds: Range<f64>,
    lines: impl Iterator<Item = (&'l RateLine, &'l [(f64, f64)])> + Clone,
    y_labels: usize,
) -> Result<()> {
    let top = lines
        .clone()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, CAPTION_FONT))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(seconds, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(unit)
        .label_style((FONT, LABEL_FONT))
        .axis_desc_style((FONT, LABEL_FONT))
        .x_label_formatter(&|v| format_number(*v))
        .y_label_formatter(&|v| format_y(*v))
        .y_labels(y_labels)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let mut any = false;
    for (line, points) in lines {
        any = true;
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            line.color.stroke_width(2),
        ))?;
    }
    if !any {
        note(area, "no samples")?;
    }
    Ok(())
}

/// The latency panel: a percentile curve per series and direction, nines across, log latency up.
/// The legend goes to the lower right, which curves that never fall leave empty.
fn draw_latency(area: &DrawingArea<SVGBackend, Shift>, curves: &[LatencyCurve]) -> Result<()> {
    let (low, high) = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (low, high) = decade_bounds(low, high);
    let (bold, light) = log_ticks(low, high);
    // Labelled at 0, 50, 90, 99, 99.9 and 99.99; light lines at 75, 95, 99.5, 99.95.
    let x_bold = vec![0.0, 2f64.log10(), 1.0, 2.0, 3.0, 4.0];
    let x_light = vec![
        4f64.log10(),
        1.0 + 2f64.log10(),
        2.0 + 2f64.log10(),
        3.0 + 2f64.log10(),
    ];
    let mut chart = ChartBuilder::on(area)
        .caption("Completion latency by percentile", (FONT, CAPTION_FONT))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(
            Ticked {
                inner: RangedCoordf64::from(0.0..NINES),
                bold: x_bold,
                light: x_light,
            },
            Ticked {
                inner: LogCoord::from((low..high).log_scale()),
                bold,
                light,
            },
        )?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency")
        .label_style((FONT, LABEL_FONT))
        .axis_desc_style((FONT, LABEL_FONT))
        .x_label_formatter(&|v| format_percentile(*v))
        .y_label_formatter(&|v| format_ns(*v))
        .draw()?;
    for curve in curves {
        let color = curve.color;
        chart
            .draw_series(LineSeries::new(
                curve.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(curve.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if curves.is_empty() {
        note(area, "no latencies recorded")?;
    } else {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, LEGEND_FONT))
            .draw()?;
    }
    Ok(())
}

/// An axis with the tick marks given: `bold` labelled, `light` as lighter grid lines.
struct Ticked<R> {
    inner: R,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn axis_pixel_range(&self, limit: (i32, i32)) -> Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

/// A grey remark in the middle of a panel that has nothing to draw.
fn note(area: &DrawingArea<SVGBackend, Shift>, text: &str) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let grey = BLACK.mix(0.5);
    let style = TextStyle::from((FONT, LEGEND_FONT).into_font())
        .color(&grey)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw_text(text, &style, (w as i32 / 2, h as i32 / 2))?;
    Ok(())
}

/// The MiB/s and IOPS of one series and direction, a point in the middle of each interval;
/// a single interval is drawn as a flat line across it. None when the direction has no operation
/// or the interval length is zero.
fn rate_line(s: &ChartSeries, direction: usize, name: String, color: RGBColor) -> Option<RateLine> {
    let secs = s.tick.as_secs_f64();
    if secs <= 0.0 || !s.samples.iter().any(|x| x[direction].1 > 0) {
        return None;
    }
    let point = |i: usize, (bytes, ops): (u64, u64)| {
        let at = (i as f64 + 0.5) * secs;
        ((at, bytes as f64 / secs / MIB), (at, ops as f64 / secs))
    };
    let (mut mib_s, mut iops): (Vec<_>, Vec<_>) = s
        .samples
        .iter()
        .enumerate()
        .map(|(i, x)| point(i, x[direction]))
        .unzip();
    if let ([(_, m)], [(_, o)]) = (&mib_s[..], &iops[..]) {
        let (m, o) = (*m, *o);
        mib_s = vec![(0.0, m), (secs, m)];
        iops = vec![(0.0, o), (secs, o)];
    } else {
        // The last interval ends the time axis.
        let end = s.samples.len() as f64 * secs;
        if let (Some(m), Some(o)) = (mib_s.last().copied(), iops.last().copied()) {
            mib_s.push((end, m.1));
            iops.push((end, o.1));
        }
    }
    Some(RateLine {
        name,
        color,
        mib_s,
        iops,
    })
}

/// The latency at each point of the nines scale from 0 to 99.99%, the points of flat runs left
/// out. None for an empty histogram.
fn percentile_curve(h: &hdrhistogram::Histogram<u64>) -> Option<Vec<(f64, f64)>> {
    if h.is_empty() {
        return None;
    }
    let all: Vec<(f64, f64)> = (0..=CURVE_STEPS)
        .map(|i| {
            let nines = NINES * i as f64 / CURVE_STEPS as f64;
            let quantile = 1.0 - 10f64.powf(-nines);
            (nines, h.value_at_quantile(quantile).max(1) as f64)
        })
        .collect();
    let kept = all
        .iter()
        .enumerate()
        .filter(|&(i, p)| {
            i == 0 || i + 1 == all.len() || all[i - 1].1 != p.1 || all[i + 1].1 != p.1
        })
        .map(|(_, p)| *p)
        .collect();
    Some(kept)
}

/// The powers of ten around `low..=high` (at least a decade apart); 1 ns to 1 µs when there is
/// nothing to show.
fn decade_bounds(low: f64, high: f64) -> (f64, f64) {
    if !(low.is_finite() && high.is_finite() && low > 0.0 && high >= low) {
        return (1.0, 1e3);
    }
    let low = 10f64.powf(low.log10().floor());
    let high = 10f64.powf(high.log10().ceil()).max(low * 10.0);
    (low, high)
}

/// Labelled and unlabelled latency ticks between two powers of ten: with up to two decades,
/// labels at 1, 2 and 5 of each; up to eight, labels at each decade and lines at 2 and 5; past
/// that, labels at every few decades and lines at the others.
fn log_ticks(low: f64, high: f64) -> (Vec<f64>, Vec<f64>) {
    let decades = (high / low).log10().round().max(1.0) as i32;
    let step = (decades + 7) / 8;
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    for k in 0..=decades {
        let v = low * 10f64.powi(k);
        if k % step == 0 {
            bold.push(v);
        } else {
            light.push(v);
        }
        if k < decades && step == 1 {
            let to = if decades <= 2 { &mut bold } else { &mut light };
            to.extend([2.0 * v, 5.0 * v]);
        }
    }
    (bold, light)
}

/// A percentile from its place on the nines scale: 1 is 90, 2 is 99.
fn format_percentile(nines: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-nines));
    let s = format!("{p:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Nanoseconds in the unit that keeps the number small: 950 ns, 12 µs, 1.5 ms, 2 s.
fn format_ns(ns: f64) -> String {
    let (div, unit) = if ns >= 1e9 {
        (1e9, "s")
    } else if ns >= 1e6 {
        (1e6, "ms")
    } else if ns >= 1e3 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    };
    format!("{} {unit}", format_number(ns / div))
}

/// A number with about three significant digits, no trailing zeros.
fn format_number(v: f64) -> String {
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// An operation rate, shortened with k and M.
fn format_count(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{}M", format_number(v / 1e6))
    } else if v.abs() >= 1e3 {
        format!("{}k", format_number(v / 1e3))
    } else {
        format_number(v)
    }
}

/// `s` with control characters (not allowed in XML text) as spaces.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    fn hist(base: u64, count: u64) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for i in 0..count {
            // A body near `base` and a tail up to about 50 times it.
            let f = i as f64 / count as f64;
            h.record((base as f64 * (1.0 + 49.0 * f.powi(12))) as u64)
                .unwrap();
        }
        h
    }

    fn samples(n: usize, read: u64, write: u64) -> Vec<[(u64, u64); 2]> {
        (0..n as u64)
            .map(|i| {
                let wobble = 1.0 + 0.1 * ((i % 7) as f64 - 3.0) / 3.0;
                let r = (read as f64 * wobble) as u64;
                let w = (write as f64 * wobble) as u64;
                [(r * 4096, r), (w * 65536, w)]
            })
            .collect()
    }

    /// The document's root name, the number of line elements and the texts.
    fn parse(path: &Path) -> (String, usize, Vec<String>) {
        let text = std::fs::read_to_string(path).unwrap();
        let doc = roxmltree::Document::parse(&text).expect("valid XML");
        let root = doc.root_element().tag_name().name().to_owned();
        let lines = doc
            .descendants()
            .filter(|n| matches!(n.tag_name().name(), "path" | "polyline"))
            .count();
        let texts = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "text")
            .map(|n| n.text().unwrap_or("").trim().to_owned())
            .collect();
        (root, lines, texts)
    }

    fn has(texts: &[String], what: &str) -> bool {
        texts.iter().any(|t| t.contains(what))
    }

    #[test]
    fn one_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.svg");
        let (r, w) = (hist(80_000, 10_000), Histogram::new(3).unwrap());
        let s = samples(30, 20_000, 0);
        let series = [ChartSeries {
            label: "engine",
            tick: Duration::from_secs(1),
            samples: &s,
            hists: [&r, &w],
        }];
        write_svg(&path, "randread 4k", &series).unwrap();
        let (root, lines, texts) = parse(&path);
        assert_eq!(root, "svg");
        // Throughput, IOPS, latency, and the legends' samples.
        assert!(lines >= 3, "{lines} lines");
        assert!(has(&texts, "randread 4k"));
        assert!(has(&texts, "engine read"));
        assert!(!has(&texts, "engine write"));
        for tick in ["50", "90", "99", "99.9", "99.99"] {
            assert!(texts.iter().any(|t| t == tick), "no tick {tick}");
        }
        assert!(has(&texts, "µs") || has(&texts, "ms"));
    }

    #[test]
    fn two_series_both_directions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.svg");
        let (er, ew) = (hist(90_000, 5_000), hist(400_000, 3_000));
        let (rr, rw) = (hist(60_000, 5_000), hist(250_000, 3_000));
        let (es, rs) = (samples(20, 15_000, 2_000), samples(20, 22_000, 3_000));
        let series = [
            ChartSeries {
                label: "engine",
                tick: Duration::from_secs(1),
                samples: &es,
                hists: [&er, &ew],
            },
            ChartSeries {
                label: "raw",
                tick: Duration::from_secs(1),
                samples: &rs,
                hists: [&rr, &rw],
            },
        ];
        write_svg(&path, "mixed 70/30 <engine & raw>", &series).unwrap();
        let (root, lines, texts) = parse(&path);
        assert_eq!(root, "svg");
        assert!(lines >= 12, "{lines} lines");
        assert!(has(&texts, "mixed 70/30 <engine & raw>"));
        for label in ["engine read", "engine write", "raw read", "raw write"] {
            assert!(has(&texts, label), "no legend {label}");
        }
    }

    #[test]
    fn nothing_to_draw_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        let e = write_svg(&path, "t", &[]).unwrap_err();
        assert!(e.to_string().contains("empty.svg"), "{e}");
        let empty = Histogram::new(3).unwrap();
        let idle = [[(0, 0); 2]; 5];
        for samples in [&[][..], &idle[..]] {
            let series = [ChartSeries {
                label: "engine",
                tick: Duration::from_secs(1),
                samples,
                hists: [&empty, &empty],
            }];
            let e = write_svg(&path, "t", &series).unwrap_err();
            assert!(e.to_string().contains("empty.svg"), "{e}");
        }
        assert!(!path.exists());
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("chart.svg");
        let r = hist(1_000, 100);
        let s = samples(3, 10, 10);
        let series = [ChartSeries {
            label: "engine",
            tick: Duration::from_secs(1),
            samples: &s,
            hists: [&r, &r],
        }];
        let e = write_svg(&path, "t", &series).unwrap_err();
        assert!(format!("{e:#}").contains("missing/chart.svg"), "{e:#}");
    }

    #[test]
    fn odd_inputs_draw() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.svg");
        let empty = Histogram::new(3).unwrap();
        let mut zeros = Histogram::new(3).unwrap();
        zeros.record_n(0, 1_000).unwrap();
        let mut huge = Histogram::new(3).unwrap();
        huge.record(u64::MAX / 2).unwrap();
        huge.record(1).unwrap();
        let one = vec![[(4096, 1), (0, 0)]];
        let big = vec![[(u64::MAX, u64::MAX), (u64::MAX, 1)]; 3];
        let cases: Vec<Vec<ChartSeries>> = vec![
            // A single sample, no latencies.
            vec![ChartSeries {
                label: "engine",
                tick: Duration::from_millis(200),
                samples: &one,
                hists: [&empty, &empty],
            }],
            // Latencies of zero, no samples.
            vec![ChartSeries {
                label: "engine",
                tick: Duration::from_secs(1),
                samples: &[],
                hists: [&zeros, &empty],
            }],
            // Huge figures, a zero interval length, an empty label.
            vec![
                ChartSeries {
                    label: "",
                    tick: Duration::from_nanos(1),
                    samples: &big,
                    hists: [&huge, &huge],
                },
                ChartSeries {
                    label: "raw\u{1}",
                    tick: Duration::ZERO,
                    samples: &big,
                    hists: [&zeros, &huge],
                },
            ],
        ];
        for series in &cases {
            write_svg(&path, "odd\u{7}", series).unwrap();
            let (root, _, texts) = parse(&path);
            assert_eq!(root, "svg");
            assert!(has(&texts, "odd"));
        }
    }

    #[test]
    fn labels() {
        assert_eq!(format_percentile(0.0), "0");
        assert_eq!(format_percentile(2f64.log10()), "50");
        assert_eq!(format_percentile(3.0), "99.9");
        assert_eq!(format_percentile(4.0), "99.99");
        assert_eq!(format_ns(950.0), "950 ns");
        assert_eq!(format_ns(12_000.0), "12 µs");
        assert_eq!(format_ns(1_500_000.0), "1.5 ms");
        assert_eq!(format_ns(2e9), "2 s");
        assert_eq!(format_count(12_500.0), "12.5k");
        assert_eq!(decade_bounds(80.0, 80.0), (10.0, 100.0));
        assert_eq!(decade_bounds(1.0, 1.0), (1.0, 10.0));
        let (bold, _) = log_ticks(1e3, 1e5);
        assert_eq!(bold, [1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5]);
    }

    /// Writes an example chart to the temporary directory, to look at by hand.
    #[test]
    #[ignore]
    fn sample_chart() {
        let path = std::env::temp_dir().join("chart-sample.svg");
        let (er, ew) = (hist(90_000, 50_000), hist(400_000, 20_000));
        let (rr, rw) = (hist(60_000, 50_000), hist(250_000, 20_000));
        let (es, rs) = (samples(60, 15_000, 2_000), samples(60, 22_000, 3_000));
        let series = [
            ChartSeries {
                label: "engine",
                tick: Duration::from_secs(1),
                samples: &es,
                hists: [&er, &ew],
            },
            ChartSeries {
                label: "raw",
                tick: Duration::from_secs(1),
                samples: &rs,
                hists: [&rr, &rw],
            },
        ];
        write_svg(&path, "ecbench randrw 4k/64k, 70% reads", &series).unwrap();
        println!("{}", path.display());
    }
}
