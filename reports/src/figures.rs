//! The report's figures, drawn with plotters. Each figure is one function over a generic
//! drawing area; [`render`] returns it as PNG and SVG bytes (computing and rendering stay
//! apart: the data comes in plain structs). Text uses the embedded DejaVu Sans, colours the
//! Okabe–Ito palette (colour-blind safe).

use plotters::coord::Shift;
use plotters::prelude::*;

/// Okabe–Ito colours, grey, then three of Tol's muted colours (wine, teal, olive), so that
/// a sweep of up to 12 selectors gets 12 distinct colours.
pub const PALETTE: [RGBColor; 12] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
    RGBColor(128, 128, 128),
    RGBColor(136, 34, 85),
    RGBColor(68, 170, 153),
    RGBColor(153, 153, 51),
];

/// Colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A legend entry: an 18-pixel stroke in `style`.
fn legend_line(style: impl Into<ShapeStyle>) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    let style: ShapeStyle = style.into();
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style)
}

static FONT: std::sync::Once = std::sync::Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font("sans-serif", style, bytes);
        }
    });
}

type DrawResult = Result<(), String>;

fn e<E: std::fmt::Debug>(x: E) -> String {
    format!("{x:?}")
}

/// A figure as both files.
pub struct Rendered {
    /// PNG bytes.
    pub png: Vec<u8>,
    /// SVG text.
    pub svg: String,
}

/// A figure's data: what the report draws.
#[derive(Clone, Debug, PartialEq)]
pub enum Figure {
    /// Figure 1 (see [`headline`]).
    Headline(Vec<Series>),
    /// Figure 2 (see [`pareto_grid`]).
    Pareto(Vec<ParetoPanel>),
    /// Figure 3 (see [`timeline`]).
    Timeline {
        /// Deadline, ms.
        deadline_ms: f64,
        /// (time s, CPU load).
        load: Vec<(f64, f64)>,
        /// (time s, severity / 5).
        severity: Vec<(f64, f64)>,
        /// One per selector.
        panels: Vec<TimelinePanel>,
    },
    /// Figure 4 (see [`latency_cdf`]).
    Cdf {
        /// Deadline, ms.
        deadline_ms: f64,
        /// One CDF per selector.
        series: Vec<Series>,
    },
    /// Figure 5 (see [`predicted_vs_measured`]).
    Predicted {
        /// Per variant: (measured, predicted) top-1 %.
        accuracy: Vec<Series>,
        /// Per variant: (measured, predicted) latency ms.
        latency: Vec<Series>,
    },
}

fn draw_any<DB: DrawingBackend>(f: &Figure, a: &DrawingArea<DB, Shift>) -> DrawResult {
    match f {
        Figure::Headline(s) => headline(a, s),
        Figure::Pareto(p) => pareto_grid(a, p),
        Figure::Timeline {
            deadline_ms,
            load,
            severity,
            panels,
        } => timeline(a, *deadline_ms, load, severity, panels),
        Figure::Cdf {
            deadline_ms,
            series,
        } => latency_cdf(a, *deadline_ms, series),
        Figure::Predicted { accuracy, latency } => predicted_vs_measured(a, accuracy, latency),
    }
}

/// Draws `figure` at `size` pixels into a PNG and an SVG.
pub fn render(figure: &Figure, size: (u32, u32)) -> Result<Rendered, String> {
    register_font();
    let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        draw_any(figure, &root)?;
        root.present().map_err(e)?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        draw_any(figure, &root)?;
        root.present().map_err(e)?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, size.0, size.1, image::ExtendedColorType::Rgb8)
        .map_err(e)?;
    Ok(Rendered { png, svg })
}

use image::ImageEncoder;

/// A named series of (x, y) points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

fn bounds(series: &[Series]) -> (f64, f64, f64, f64) {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    let pad = |a: f64, b: f64| {
        if b - a < 1e-9 {
            (a - 0.5, b + 0.5)
        } else {
            (a, b)
        }
    };
    let (x0, x1) = pad(x0, x1);
    let (y0, y1) = pad(y0, y1);
    (x0, x1, y0, y1)
}

/// Figure 1: top-1 within deadline against the deadline, one line per selector.
pub fn headline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> DrawResult {
    let (x0, x1, _, _) = bounds(series);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Top-1 within deadline vs deadline",
            ("sans-serif", 22).into_font(),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x0 * 0.8..x1 * 1.25)
                .log_scale()
                .with_key_points(series.first().map_or(vec![], |s| {
                    s.points.iter().map(|p| p.0).collect::<Vec<f64>>()
                })),
            0.0..100.0,
        )
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("deadline (ms, log scale)")
        .y_desc("frames correct within deadline (%)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(s.points.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(&s.name)
            .legend(legend_line(c.stroke_width(2)));
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// One panel of figure 2: every candidate's (latency, top-1) under one condition.
#[derive(Clone, Debug, PartialEq)]
pub struct ParetoPanel {
    /// Panel title (`fog@3, load 1.0`).
    pub title: String,
    /// (mean latency ms, top-1 %) per candidate.
    pub points: Vec<(f64, f64)>,
}

/// Indices of the Pareto-optimal points (lower latency, higher accuracy), by latency.
pub fn pareto(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    idx.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0));
    let mut front: Vec<usize> = Vec::new();
    for i in idx {
        if front.last().is_none_or(|&f| points[i].1 > points[f].1) {
            front.push(i);
        }
    }
    front
}

/// Figure 2: accuracy against latency for every candidate under each condition.
pub fn pareto_grid<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panels: &[ParetoPanel],
) -> DrawResult {
    let cols = 4.min(panels.len().max(1));
    let rows = panels.len().div_ceil(cols);
    let (title, body) = area.split_vertically(40);
    title
        .titled(
            "Candidates: top-1 vs latency per condition (Pareto front joined)",
            ("sans-serif", 22),
        )
        .map_err(e)?;
    let all: Vec<Series> = panels
        .iter()
        .map(|p| Series {
            name: p.title.clone(),
            points: p.points.clone(),
        })
        .collect();
    let (x0, x1, y0, y1) = bounds(&all);
    for (p, cell) in panels.iter().zip(body.split_evenly((rows, cols))) {
        let mut chart = ChartBuilder::on(&cell)
            .caption(&p.title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(
                x0 * 0.9..x1 * 1.05,
                (y0 - 2.0).max(0.0)..(y1 + 2.0).min(100.0),
            )
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("mean latency (ms)")
            .y_desc("top-1 (%)")
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(
                p.points
                    .iter()
                    .map(|&q| Circle::new(q, 3, colour(8).filled())),
            )
            .map_err(e)?;
        let front: Vec<(f64, f64)> = pareto(&p.points).into_iter().map(|i| p.points[i]).collect();
        chart
            .draw_series(LineSeries::new(front.clone(), colour(3).stroke_width(2)))
            .map_err(e)?;
        chart
            .draw_series(front.iter().map(|&q| Circle::new(q, 4, colour(3).filled())))
            .map_err(e)?;
    }
    Ok(())
}

/// One selector's panel of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelinePanel {
    /// Selector name.
    pub selector: String,
    /// (arrival s, end-to-end latency ms) of served frames.
    pub latency: Vec<(f64, f64)>,
    /// (arrival s, serving candidate's rank by MACs, 0 = cheapest .. 1 = largest).
    pub serving: Vec<(f64, f64)>,
    /// (arrival s, rolling top-1 over the last frames, 0..=1).
    pub rolling_top1: Vec<(f64, f64)>,
}

/// Figure 3: the conditions over time, then one panel per selector; shared time axis.
pub fn timeline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    deadline_ms: f64,
    load: &[(f64, f64)],
    severity: &[(f64, f64)],
    panels: &[TimelinePanel],
) -> DrawResult {
    let t1 = load
        .iter()
        .chain(severity)
        .map(|p| p.0)
        .fold(1e-9, f64::max);
    let (title, body) = area.split_vertically(40);
    title
        .titled(
            &format!("Timeline at a {deadline_ms} ms deadline"),
            ("sans-serif", 22),
        )
        .map_err(e)?;
    let rows = body.split_evenly((panels.len() + 1, 1));
    {
        let mut chart = ChartBuilder::on(&rows[0])
            .caption(
                "conditions: CPU load and content severity",
                ("sans-serif", 14),
            )
            .margin(6)
            .x_label_area_size(25)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..t1, 0.0..1.05)
            .map_err(e)?;
        chart
            .configure_mesh()
            .y_desc("share")
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(LineSeries::new(load.to_vec(), colour(0).stroke_width(2)))
            .map_err(e)?
            .label("CPU load")
            .legend(legend_line(colour(0).stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                severity.to_vec(),
                colour(3).stroke_width(2),
            ))
            .map_err(e)?
            .label("severity / 5")
            .legend(legend_line(colour(3).stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(e)?;
    }
    let y_max = 3.0 * deadline_ms;
    for (p, row) in panels.iter().zip(&rows[1..]) {
        let mut chart = ChartBuilder::on(row)
            .caption(&p.selector, ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(25)
            .y_label_area_size(50)
            .right_y_label_area_size(40)
            .build_cartesian_2d(0.0..t1, 0.0..y_max)
            .map_err(e)?
            .set_secondary_coord(0.0..t1, 0.0..1.05);
        chart
            .configure_mesh()
            .y_desc("latency (ms)")
            .x_desc("time (s)")
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(e)?;
        chart
            .configure_secondary_axes()
            .y_desc("share")
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(
                p.latency
                    .iter()
                    .map(|&(t, l)| Circle::new((t, l.min(y_max)), 1, colour(8).filled())),
            )
            .map_err(e)?
            .label("latency")
            .legend(|(x, y)| Circle::new((x + 9, y), 3, colour(8).filled()));
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, deadline_ms), (t1, deadline_ms)],
                colour(7).stroke_width(1),
            ))
            .map_err(e)?
            .label("deadline")
            .legend(legend_line(colour(7)));
        chart
            .draw_secondary_series(LineSeries::new(
                p.serving.clone(),
                colour(0).stroke_width(2),
            ))
            .map_err(e)?
            .label("serving (MAC rank)")
            .legend(legend_line(colour(0).stroke_width(2)));
        chart
            .draw_secondary_series(LineSeries::new(
                p.rolling_top1.clone(),
                colour(2).stroke_width(2),
            ))
            .map_err(e)?
            .label("rolling top-1")
            .legend(legend_line(colour(2).stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .label_font(("sans-serif", 10))
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// Figure 4: latency CDF per selector, the deadline marked.
pub fn latency_cdf<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    deadline_ms: f64,
    series: &[Series],
) -> DrawResult {
    let (_, x1, _, _) = bounds(series);
    let x_max = x1.min(6.0 * deadline_ms).max(deadline_ms * 1.2);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("End-to-end latency CDF (deadline {deadline_ms} ms)"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..1.0)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("latency, arrival to result (ms)")
        .y_desc("share of frames")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied().filter(|p| p.0 <= x_max),
                c.stroke_width(2),
            ))
            .map_err(e)?
            .label(&s.name)
            .legend(legend_line(c.stroke_width(2)));
    }
    chart
        .draw_series(DashedLineSeries::new(
            vec![(deadline_ms, 0.0), (deadline_ms, 1.0)],
            6,
            4,
            BLACK.stroke_width(2),
        ))
        .map_err(e)?
        .label("deadline")
        .legend(legend_line(BLACK.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// Figure 5: predicted against measured, per predictor variant (top row accuracy, bottom
/// row latency), from leave-condition-out cross-validation.
pub fn predicted_vs_measured<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    accuracy: &[Series],
    latency: &[Series],
) -> DrawResult {
    let (title, body) = area.split_vertically(40);
    title
        .titled(
            "Predicted vs measured (held-out conditions), per predictor",
            ("sans-serif", 22),
        )
        .map_err(e)?;
    let cols = accuracy.len().max(1);
    let cells = body.split_evenly((2, cols));
    let (_, ax1, _, ay1) = bounds(accuracy);
    let (_, lx1, _, ly1) = bounds(latency);
    let amax = ax1.max(ay1).min(100.0);
    let lmax = lx1.max(ly1);
    for (row, (sets, max, what)) in [
        (accuracy, amax, "top-1 (%)"),
        (latency, lmax, "latency (ms)"),
    ]
    .into_iter()
    .enumerate()
    {
        for (i, s) in sets.iter().enumerate() {
            let mut chart = ChartBuilder::on(&cells[row * cols + i])
                .caption(&s.name, ("sans-serif", 14))
                .margin(8)
                .x_label_area_size(35)
                .y_label_area_size(45)
                .build_cartesian_2d(0.0..max, 0.0..max)
                .map_err(e)?;
            chart
                .configure_mesh()
                .x_desc(format!("measured {what}"))
                .y_desc(format!("predicted {what}"))
                .label_style(("sans-serif", 10))
                .draw()
                .map_err(e)?;
            chart
                .draw_series(
                    s.points.iter().map(|&(x, y)| {
                        Circle::new((x, y.min(max)), 1, colour(0).mix(0.4).filled())
                    }),
                )
                .map_err(e)?;
            chart
                .draw_series(LineSeries::new(vec![(0.0, 0.0), (max, max)], colour(3)))
                .map_err(e)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_series_get_twelve_colours() {
        let c: Vec<RGBColor> = (0..12).map(colour).collect();
        for i in 0..12 {
            for j in 0..i {
                assert_ne!(c[i], c[j], "series {i} and {j}");
            }
        }
        assert_eq!(colour(12), colour(0));
    }
}
