//! The charts of `mkimage bench-net`: one figure against the number of connections, one line
//! per system, written as SVG with `plotters` (its SVG backend only: text goes into the file as
//! `<text>` elements, so no font library or system font is needed to draw).
//!
//! Both axes are logarithmic: the connections double from point to point, and the systems
//! differ by orders of magnitude (a server that serves one connection at a time against one
//! that keeps them open), which a linear axis would flatten to the floor.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};

/// One line of a chart: its legend and its (x, y) points; points with y <= 0 are left out (a
/// logarithmic axis has no place for them: a run that served nothing).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A fixed palette, one colour per system, distinct in print and for most colour-blind readers.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("chart: {e}"))
}

/// Writes the chart `title` to `path` (an SVG file): x is the connections, y is `y_desc`.
pub fn write_svg(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> Result<()> {
    let shown: Vec<Series> = series
        .iter()
        .map(|s| Series {
            label: s.label.clone(),
            points: s.points.iter().copied().filter(|&(x, y)| x > 0.0 && y > 0.0).collect(),
        })
        .collect();
    let all = || shown.iter().flat_map(|s| s.points.iter());
    let (x_lo, x_hi) = all().fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| (lo.min(x), hi.max(x)));
    let (y_lo, y_hi) = all().fold((f64::MAX, f64::MIN), |(lo, hi), &(_, y)| (lo.min(y), hi.max(y)));
    // An empty chart still gets axes (every system skipped): any positive range will do.
    let (x_lo, x_hi) = if x_lo > x_hi { (1.0, 128.0) } else { (x_lo, x_hi) };
    let (y_lo, y_hi) = if y_lo > y_hi { (1.0, 10.0) } else { (y_lo, y_hi) };

    // Ticks at the measured x values (the connections), not at powers of ten.
    let mut x_keys: Vec<f64> = all().map(|&(x, _)| x).collect();
    x_keys.sort_by(f64::total_cmp);
    x_keys.dedup();
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    // The legend gets a column of its own, right of the plot, so that it never hides a line.
    let (plot, legend) = root.split_horizontally(720);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (x_lo / 1.25..x_hi * 1.25).log_scale().with_key_points(x_keys),
            (y_lo / 1.5..y_hi * 1.5).log_scale().with_key_points(ticks_125(y_lo / 1.5, y_hi * 1.5)),
        )
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(plot_error)?;
    for (i, s) in shown.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), colour.stroke_width(2)))
            .map_err(plot_error)?;
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(plot_error)?;
        let y = 60 + 24 * i as i32;
        legend
            .draw(&PathElement::new(vec![(8, y), (32, y)], colour.stroke_width(2)))
            .map_err(plot_error)?;
        legend
            .draw(&Text::new(s.label.as_str(), (40, y - 7), ("sans-serif", 14)))
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Ticks at 1, 2 and 5 times the powers of ten in `lo..=hi` (plotters' own logarithmic
/// ticks leave most decades unlabelled).
fn ticks_125(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powi(lo.log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if (lo..=hi).contains(&t) {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_one_line_per_series() {
        let dir = std::env::temp_dir().join(format!("bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rps.svg");
        let series = vec![
            Series { label: "rustix async".into(), points: vec![(1.0, 900.0), (8.0, 2500.0)] },
            Series { label: "xv6 & lwIP".into(), points: vec![(1.0, 80.0), (8.0, 0.0)] },
            Series { label: "Linux".into(), points: vec![(1.0, 300.0), (8.0, 320.0)] },
        ];
        write_svg(&path, "requests/s", "req/s", &series).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
            .collect();
        for s in &series {
            assert!(texts.contains(&s.label), "no legend {:?} in {texts:?}", s.label);
        }
        // Each series is drawn in its own colour: its line (and its legend's sample) is a
        // polyline of that stroke; the one point of xv6 at 0 req/s is left out, not drawn.
        for (i, _) in series.iter().enumerate() {
            let c = COLOURS[i];
            let stroke = format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
            let lines = doc
                .descendants()
                .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(&stroke))
                .count();
            assert_eq!(lines, 2, "series {i} ({stroke}): line and legend sample");
        }
    }

    #[test]
    fn ticks_at_one_two_five() {
        assert_eq!(ticks_125(120.0, 4000.0), [200.0, 500.0, 1000.0, 2000.0]);
        assert_eq!(ticks_125(0.5, 3.0), [0.5, 1.0, 2.0]);
    }

    #[test]
    fn an_empty_chart_is_still_written() {
        let path =
            std::env::temp_dir().join(format!("bench-chart-empty-{}.svg", std::process::id()));
        write_svg(&path, "nothing ran", "req/s", &[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        roxmltree::Document::parse(&text).expect("well-formed XML");
    }
}
