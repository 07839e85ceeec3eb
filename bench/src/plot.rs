//! SVG latency CDFs: one chart per measurement, the edge beside its
//! reference; and figures against the number of deployments (`bench scale`).

use std::path::Path;

use plotters::prelude::*;

/// Draws `series` (name, points of (latency ms, fraction)) on a log-x CDF.
pub fn latency_cdf(
    path: &Path,
    title: &str,
    series: &[(&str, &[(f64, f64)])],
) -> anyhow::Result<()> {
    let max_x = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
        .fold(0.01f64, f64::max)
        * 1.1;
    let min_x = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
        .fold(f64::MAX, f64::min)
        .clamp(0.001, max_x / 2.0);
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d((min_x..max_x).log_scale(), 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log)")
        .y_desc("fraction of requests")
        .draw()?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A value per node (x = node index in join order), one line per series.
pub fn per_node(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &[(&str, &[f64])],
) -> anyhow::Result<()> {
    let n = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let max_y = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..(n as f64 - 1.0).max(1.0), 0f64..max_y)?;
    chart
        .configure_mesh()
        .x_labels(n.min(20))
        .x_label_formatter(&|x| format!("{}", x.round() as usize))
        .x_desc("node (join order)")
        .y_desc(y_desc)
        .draw()?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (name, values)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let pts = values.iter().enumerate().map(|(x, y)| (x as f64, *y));
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Figures against the number of deployments (log x), one line per series.
pub fn versus_deployments(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &[(&str, &[(f64, f64)])],
) -> anyhow::Result<()> {
    let pts = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let min_x = pts().map(|p| p.0).fold(f64::MAX, f64::min).max(1.0);
    let max_x = pts().map(|p| p.0).fold(min_x, f64::max);
    // One size alone still gets a decade of axis.
    let (min_x, max_x) = (min_x / 1.5, (max_x * 1.5).max(min_x * 10.0));
    let max_y = pts()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold(f64::MIN_POSITIVE, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((min_x..max_x).log_scale(), 0f64..max_y)?;
    chart
        .configure_mesh()
        .x_desc("deployments (log)")
        .y_desc(y_desc)
        .draw()?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let finite: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(
                finite.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(finite.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
