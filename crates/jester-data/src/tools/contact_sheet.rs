//! A contact sheet: the first samples of a shard set as a grid of thumbnails with their captions
//! underneath, drawn with an embedded 8×8 bitmap font (no system font needed).
use font8x8::UnicodeFonts;
use image::{imageops, Rgb, RgbImage};

const GLYPH: u32 = 8;
const LINES: u32 = 4;

/// A grid of `columns` cells, each a `thumb`×`thumb` thumbnail (aspect kept, centred) above up to
/// four lines of its caption (cut with "…" when longer).
pub fn render(samples: &[(RgbImage, String)], columns: u32, thumb: u32) -> RgbImage {
    let columns = columns.max(1);
    let rows = (samples.len() as u32).div_ceil(columns).max(1);
    let pad = 6;
    let cell_w = thumb.max(GLYPH * 8) + pad;
    let cell_h = thumb + pad + LINES * (GLYPH + 2) + pad;
    let mut sheet = RgbImage::from_pixel(
        columns * cell_w + pad,
        rows * cell_h + pad,
        Rgb([255, 255, 255]),
    );
    for (i, (image, caption)) in samples.iter().enumerate() {
        let (cx, cy) = (
            (i as u32 % columns) * cell_w + pad,
            (i as u32 / columns) * cell_h + pad,
        );
        let scale = thumb as f32 / image.width().max(image.height()).max(1) as f32;
        let (w, h) = (
            ((image.width() as f32 * scale).round() as u32).max(1),
            ((image.height() as f32 * scale).round() as u32).max(1),
        );
        let filter = if scale >= 1.0 {
            imageops::FilterType::Nearest
        } else {
            imageops::FilterType::Triangle
        };
        let small = imageops::resize(image, w, h, filter);
        imageops::overlay(
            &mut sheet,
            &small,
            (cx + (thumb - w) / 2) as i64,
            (cy + (thumb - h) / 2) as i64,
        );
        let per_line = ((cell_w - pad) / GLYPH) as usize;
        for (n, line) in wrap(caption, per_line, LINES as usize).iter().enumerate() {
            draw_text(
                &mut sheet,
                line,
                cx,
                cy + thumb + pad / 2 + n as u32 * (GLYPH + 2),
            );
        }
    }
    sheet
}

/// Greedy word wrap into at most `lines` lines of `width` characters, "…" marking a cut.
fn wrap(text: &str, width: usize, lines: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let word: String = word.chars().take(width).collect();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        out.push(line);
    }
    if out.len() > lines {
        out.truncate(lines);
        let last = &mut out[lines - 1];
        let keep: String = last.chars().take(width.saturating_sub(1)).collect();
        *last = keep + "…";
    }
    out
}

fn draw_text(sheet: &mut RgbImage, text: &str, x: u32, y: u32) {
    for (i, c) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(c)
            .or_else(|| font8x8::LATIN_FONTS.get(c))
            .or_else(|| font8x8::BLOCK_FONTS.get(c))
            .or_else(|| {
                if c == '…' {
                    font8x8::BASIC_FONTS.get('.')
                } else {
                    font8x8::BASIC_FONTS.get('?')
                }
            });
        let Some(glyph) = glyph else { continue };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 1 {
                    let (px, py) = (x + i as u32 * GLYPH + col, y + row as u32);
                    if px < sheet.width() && py < sheet.height() {
                        sheet.put_pixel(px, py, Rgb([20, 20, 20]));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_wrap_and_cut() {
        assert_eq!(
            wrap("a small red star at the top", 10, 4),
            ["a small", "red star", "at the top"]
        );
        let cut = wrap("one two three four five six seven", 5, 2);
        assert_eq!(cut.len(), 2);
        assert!(cut[1].ends_with('…'));
    }

    #[test]
    fn the_sheet_holds_thumbnails_and_ink() {
        let red = RgbImage::from_pixel(10, 20, Rgb([255, 0, 0]));
        let sheet = render(
            &[(red.clone(), "red".into()), (red, "also red".into())],
            2,
            32,
        );
        let reds = sheet.pixels().filter(|p| p.0 == [255, 0, 0]).count();
        let ink = sheet.pixels().filter(|p| p.0 == [20, 20, 20]).count();
        assert_eq!(reds, 2 * 16 * 32, "two 16×32 thumbnails");
        assert!(ink > 20, "captions drawn");
    }
}
