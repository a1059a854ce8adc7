//! The run's pictures: `curves.svg`/`.png` (loss and accuracy per epoch) and
//! `confusion.svg`/`.png` (the test-set confusion matrix).
//!
//! Text is drawn with a font compiled into the crate (an ASCII subset of DejaVu Sans, see
//! `font/LICENSE-DejaVu.txt`), so plots have labels on machines without any font installed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use super::atomic::write_atomically;
use super::{ConfusionMatrix, EpochMetrics, TrainError};

/// DejaVu Sans, printable ASCII and a few symbols (`pyftsubset --unicodes=U+0020-007E,...`).
static FONT: &[u8] = include_bytes!("font/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

const CURVES_SIZE: (u32, u32) = (1000, 420);
const CONFUSION_SIZE: (u32, u32) = (560, 620);

/// Registers the bundled font under the family plotters uses by default, once.
fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure would only lose the labels.
        let _ = register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Writes `curves.svg` and `curves.png` into `dir`.
pub(crate) fn write_curves(dir: &Path, title: &str, history: &[EpochMetrics]) -> Result<(), TrainError> {
    write_both(dir, "curves", CURVES_SIZE, &Curves { title, history })
}

/// Writes `confusion.svg` and `confusion.png` into `dir`.
pub(crate) fn write_confusion(dir: &Path, title: &str, matrix: &ConfusionMatrix) -> Result<(), TrainError> {
    write_both(dir, "confusion", CONFUSION_SIZE, &Confusion { title, matrix })
}

/// A picture that draws the same on any backend.
trait Picture {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

struct Curves<'a> {
    title: &'a str,
    history: &'a [EpochMetrics],
}

impl Picture for Curves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_curves(root, self.title, self.history)
    }
}

struct Confusion<'a> {
    title: &'a str,
    matrix: &'a ConfusionMatrix,
}

impl Picture for Confusion<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_confusion(root, self.title, self.matrix)
    }
}

/// Draws `picture` into an SVG and a PNG of `size`, and writes `dir/NAME.svg` and
/// `dir/NAME.png` atomically.
fn write_both<P: Picture>(dir: &Path, name: &str, size: (u32, u32), picture: &P) -> Result<(), TrainError> {
    register();
    let svg_path = dir.join(format!("{name}.svg"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        picture
            .draw(&root)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|reason| TrainError::Plot {
                path: svg_path.clone(),
                reason,
            })?;
    }
    write_atomically(&svg_path, svg.as_bytes())?;

    let png_path = dir.join(format!("{name}.png"));
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        picture
            .draw(&root)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|reason| TrainError::Plot {
                path: png_path.clone(),
                reason,
            })?;
    }
    let png = encode_png(&pixels, size).map_err(|e| TrainError::Plot {
        path: png_path.clone(),
        reason: e.to_string(),
    })?;
    write_atomically(&png_path, &png)
}

/// RGB8 pixels as a PNG file.
fn encode_png(pixels: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(out)
}

/// Two panels: train and test loss, and test accuracy, per epoch.
fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    history: &[EpochMetrics],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, (FAMILY, 22)).map_err(e)?;
    let (left, right) = root.split_horizontally(CURVES_SIZE.0 / 2);
    let epochs = history.last().map_or(1, |m| m.epoch.max(1)) as u32;
    let x_labels = (epochs as usize + 1).min(11);

    let finite = |x: &f64| x.is_finite();
    let max_loss = history
        .iter()
        .flat_map(|m| [m.train_loss, m.test_loss])
        .filter(finite)
        .fold(0.0f64, f64::max);
    let max_loss = if max_loss > 0.0 { max_loss * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(&left)
        .caption("loss", (FAMILY, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0u32..epochs + 1, 0.0..max_loss)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .x_labels(x_labels)
        .label_style((FAMILY, 13))
        .draw()
        .map_err(e)?;
    let train = history.iter().map(|m| (m.epoch as u32, m.train_loss));
    chart
        .draw_series(LineSeries::new(train, BLUE.stroke_width(2)).point_size(3))
        .map_err(e)?
        .label("train loss")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    let test = history.iter().map(|m| (m.epoch as u32, m.test_loss));
    chart
        .draw_series(LineSeries::new(test, RED.stroke_width(2)).point_size(3))
        .map_err(e)?
        .label("test loss")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;

    let accuracies = history.iter().map(|m| 100.0 * m.test_accuracy).filter(finite);
    let low = accuracies.fold(100.0f64, f64::min);
    let low = ((low - 2.0) / 5.0).floor().clamp(0.0, 19.0) * 5.0;
    let mut chart = ChartBuilder::on(&right)
        .caption("test accuracy", (FAMILY, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0u32..epochs + 1, low..100.0)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy (%)")
        .x_labels(x_labels)
        .label_style((FAMILY, 13))
        .draw()
        .map_err(e)?;
    let acc = history.iter().map(|m| (m.epoch as u32, 100.0 * m.test_accuracy));
    chart
        .draw_series(LineSeries::new(acc, GREEN.stroke_width(2)).point_size(3))
        .map_err(e)?;
    Ok(())
}

/// A grid of counts, each cell shaded by its share of the row (the true class).
fn draw_confusion<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    m: &ConfusionMatrix,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let n = m.classes().max(1) as i32;
    let (w, h) = (CONFUSION_SIZE.0 as i32, CONFUSION_SIZE.1 as i32);
    let (left, top) = (70, 120);
    let cell = ((w - left - 20).min(h - top - 20) / n).max(1);
    let centered = |size| TextStyle::from((FAMILY, size).into_font()).pos(Pos::new(HPos::Center, VPos::Center));

    root.draw(&Text::new(title.to_owned(), (w / 2, 18), centered(20)))
        .map_err(e)?;
    root.draw(&Text::new(
        format!("test accuracy {:.2}%", 100.0 * m.accuracy()),
        (w / 2, 44),
        centered(15),
    ))
    .map_err(e)?;
    root.draw(&Text::new("predicted", (left + n * cell / 2, top - 40), centered(15)))
        .map_err(e)?;
    root.draw(&Text::new("true", (22, top + n * cell / 2), centered(15)))
        .map_err(e)?;
    for label in 0..n {
        let row: u64 = (0..m.classes()).map(|p| m.get(label as usize, p)).sum();
        root.draw(&Text::new(
            label.to_string(),
            (left + label * cell + cell / 2, top - 14),
            centered(13),
        ))
        .map_err(e)?;
        root.draw(&Text::new(
            label.to_string(),
            (left - 14, top + label * cell + cell / 2),
            centered(13),
        ))
        .map_err(e)?;
        for predicted in 0..n {
            let count = m.get(label as usize, predicted as usize);
            let share = count as f64 / row.max(1) as f64;
            // White to a dark blue, by the share of the row.
            let shade = |full: f64, dark: f64| (full + (dark - full) * share).round() as u8;
            let color = RGBColor(shade(255.0, 8.0), shade(255.0, 48.0), shade(255.0, 107.0));
            let (x, y) = (left + predicted * cell, top + label * cell);
            root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], color.filled()))
                .map_err(e)?;
            root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], BLACK.mix(0.15)))
                .map_err(e)?;
            if count > 0 {
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let style = centered(12).color(&ink);
                root.draw(&Text::new(count.to_string(), (x + cell / 2, y + cell / 2), style))
                    .map_err(e)?;
            }
        }
    }
    Ok(())
}
