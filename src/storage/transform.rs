//! Image transformations as Supabase Storage offers them (`width`, `height`, `resize`,
//! `quality`, `format`): parsed and bounded once here, written back in one canonical form
//! (signed into tokens and used as the cache key), and rendered for the local backend.
//!
//! Rendering decodes within fixed limits (no decompression bombs), resizes with the `image`
//! crate's fast area-averaging `thumbnail` and encodes; the local backend keeps the result so
//! that the same variant is rendered once.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};

use super::StorageError;

/// The largest width or height a transformation may ask for (Supabase's bound).
pub const MAX_SIDE: u32 = 2500;
/// The quality used when none is asked for.
pub const DEFAULT_QUALITY: u8 = 80;
/// The largest source image rendered, per side and in decoded bytes.
const MAX_SOURCE_SIDE: u32 = 12_000;
const MAX_SOURCE_DECODED_BYTES: u64 = 256 * 1024 * 1024;

/// How an image is fitted to the asked width and height.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Fills the box, keeping the aspect ratio, and crops what overflows (the default).
    #[default]
    Cover,
    /// Fits inside the box, keeping the aspect ratio.
    Contain,
    /// Stretches to the box.
    Fill,
}

impl Resize {
    fn parse(value: &str) -> Result<Self, StorageError> {
        match value {
            "cover" => Ok(Resize::Cover),
            "contain" => Ok(Resize::Contain),
            "fill" => Ok(Resize::Fill),
            _ => Err(bad("`resize` must be cover, contain or fill")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resize::Cover => "cover",
            Resize::Contain => "contain",
            Resize::Fill => "fill",
        }
    }
}

/// The encoding of a rendered image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The source's own format (the default).
    #[default]
    Origin,
    Jpeg,
    Png,
    Webp,
}

impl Format {
    fn parse(value: &str) -> Result<Self, StorageError> {
        match value {
            "origin" => Ok(Format::Origin),
            "jpeg" | "jpg" => Ok(Format::Jpeg),
            "png" => Ok(Format::Png),
            "webp" => Ok(Format::Webp),
            _ => Err(bad("`format` must be origin, jpeg, png or webp")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Origin => "origin",
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }
}

/// One transformation: at least a width or a height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Transform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default)]
    pub resize: Resize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    #[serde(default)]
    pub format: Format,
}

fn bad(message: &str) -> StorageError {
    StorageError::InvalidInput(message.to_string())
}

impl Transform {
    /// Checks the bounds: a width or a height (1 to [`MAX_SIDE`]), a quality of 20 to 100.
    pub fn validate(self) -> Result<Self, StorageError> {
        if self.width.is_none() && self.height.is_none() {
            return Err(bad("a transformation needs a width or a height"));
        }
        for side in [self.width, self.height].into_iter().flatten() {
            if !(1..=MAX_SIDE).contains(&side) {
                return Err(bad(&format!("width and height must be between 1 and {MAX_SIDE}")));
            }
        }
        if self.quality.is_some_and(|q| !(20..=100).contains(&q)) {
            return Err(bad("`quality` must be between 20 and 100"));
        }
        Ok(self)
    }

    /// Reads the query parameters of a render URL (`width`, `height`, `resize`, `quality`,
    /// `format`; others are ignored).
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, StorageError> {
        let mut t = Transform::default();
        let number = |v: &str, name: &str| -> Result<u32, StorageError> {
            v.trim().parse::<u32>().map_err(|_| bad(&format!("`{name}` must be a whole number")))
        };
        for (key, value) in pairs {
            match key {
                // 0 means "not given", as on Supabase.
                "width" => t.width = Some(number(value, "width")?).filter(|w| *w > 0),
                "height" => t.height = Some(number(value, "height")?).filter(|h| *h > 0),
                "quality" => {
                    t.quality = Some(
                        u8::try_from(number(value, "quality")?)
                            .map_err(|_| bad("`quality` must be between 20 and 100"))?,
                    )
                }
                "resize" => t.resize = Resize::parse(value)?,
                "format" => t.format = Format::parse(value)?,
                _ => {}
            }
        }
        t.validate()
    }

    /// The canonical query string (`width=400&resize=cover&quality=80&format=origin`): signed
    /// into render tokens and naming cached variants.
    pub fn query(&self) -> String {
        let mut parts = Vec::with_capacity(5);
        if let Some(w) = self.width {
            parts.push(format!("width={w}"));
        }
        if let Some(h) = self.height {
            parts.push(format!("height={h}"));
        }
        parts.push(format!("resize={}", self.resize.as_str()));
        parts.push(format!("quality={}", self.quality.unwrap_or(DEFAULT_QUALITY)));
        parts.push(format!("format={}", self.format.as_str()));
        parts.join("&")
    }

    /// The content type a rendering of a `source_type` image has.
    pub fn output_type(&self, source_type: &str) -> Result<&'static str, StorageError> {
        let source = source_format(source_type)?;
        Ok(match self.output_format(source) {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::WebP => "image/webp",
            _ => "image/png",
        })
    }

    fn output_format(&self, source: ImageFormat) -> ImageFormat {
        match self.format {
            Format::Origin if matches!(source, ImageFormat::Jpeg | ImageFormat::WebP) => source,
            // GIF and PNG sources are rendered as PNG.
            Format::Origin => ImageFormat::Png,
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::Webp => ImageFormat::WebP,
        }
    }

    /// Renders `source` (an image of content type `content_type`): the encoded bytes and their
    /// content type. CPU-bound: call it off the async executor.
    pub fn render(&self, source: &[u8], content_type: &str) -> Result<(Vec<u8>, &'static str), StorageError> {
        let source_format = source_format(content_type)?;
        let mut reader = ImageReader::with_format(Cursor::new(source), source_format);
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_SOURCE_SIDE);
        limits.max_image_height = Some(MAX_SOURCE_SIDE);
        limits.max_alloc = Some(MAX_SOURCE_DECODED_BYTES);
        reader.limits(limits);
        let image = reader.decode().map_err(|e| match e {
            image::ImageError::Limits(_) => bad("the image is too large to transform"),
            _ => bad("the object is not a readable image"),
        })?;
        let resized = self.fit(image);
        encode(resized, self.output_format(source_format), self.quality.unwrap_or(DEFAULT_QUALITY))
    }

    /// Fits `image` as Supabase (imgproxy) does, never enlarging it: `cover` scales to fill
    /// the box and crops the middle, `contain` fits inside it, `fill` stretches each side (a
    /// side not asked for stays the source's); with one side given, `cover` and `contain`
    /// keep the aspect ratio.
    fn fit(&self, image: DynamicImage) -> DynamicImage {
        let (sw, sh) = (f64::from(image.width()), f64::from(image.height()));
        let side = |v: f64| (v.round() as u32).max(1);
        let (w, h) = (self.width.map(f64::from), self.height.map(f64::from));
        match (self.resize, w, h) {
            (Resize::Fill, _, _) => {
                let (w, h) = (w.unwrap_or(sw).min(sw), h.unwrap_or(sh).min(sh));
                image.thumbnail_exact(side(w), side(h))
            }
            (Resize::Cover, Some(w), Some(h)) => {
                let scale = f64::max(w / sw, h / sh).min(1.0);
                let (scaled_w, scaled_h) = (side(sw * scale), side(sh * scale));
                let (crop_w, crop_h) = (side(w).min(scaled_w), side(h).min(scaled_h));
                let scaled = if scale < 1.0 { image.thumbnail_exact(scaled_w, scaled_h) } else { image };
                scaled.crop_imm((scaled_w - crop_w) / 2, (scaled_h - crop_h) / 2, crop_w, crop_h)
            }
            _ => {
                let scale = f64::min(w.map_or(f64::MAX, |w| w / sw), h.map_or(f64::MAX, |h| h / sh)).min(1.0);
                if scale < 1.0 { image.thumbnail_exact(side(sw * scale), side(sh * scale)) } else { image }
            }
        }
    }
}

fn source_format(content_type: &str) -> Result<ImageFormat, StorageError> {
    match content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
        "image/jpeg" => Ok(ImageFormat::Jpeg),
        "image/png" => Ok(ImageFormat::Png),
        "image/webp" => Ok(ImageFormat::WebP),
        "image/gif" => Ok(ImageFormat::Gif),
        _ => Err(bad("only JPEG, PNG, WebP and GIF images can be transformed")),
    }
}

fn encode(image: DynamicImage, format: ImageFormat, quality: u8) -> Result<(Vec<u8>, &'static str), StorageError> {
    let mut out = Cursor::new(Vec::new());
    let failed = |e: image::ImageError| StorageError::other("encoding a transformed image", e);
    let mime = match format {
        ImageFormat::Jpeg => {
            let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
            rgb.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality))
                .map_err(failed)?;
            "image/jpeg"
        }
        ImageFormat::WebP => {
            // The `image` crate encodes WebP losslessly only; quality does not apply.
            let rgba = DynamicImage::ImageRgba8(image.to_rgba8());
            rgba.write_to(&mut out, ImageFormat::WebP).map_err(failed)?;
            "image/webp"
        }
        _ => {
            image.write_to(&mut out, ImageFormat::Png).map_err(failed)?;
            "image/png"
        }
    };
    Ok((out.into_inner(), mime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        }));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    fn size_of(bytes: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(bytes).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn queries_parse_within_bounds_and_print_canonically() {
        let t = Transform::from_query([("height", "300"), ("width", "400"), ("token", "x")]).unwrap();
        assert_eq!(t.query(), "width=400&height=300&resize=cover&quality=80&format=origin");
        let t = Transform::from_query([("width", "10"), ("resize", "fill"), ("quality", "55"), ("format", "webp")])
            .unwrap();
        assert_eq!(t.query(), "width=10&resize=fill&quality=55&format=webp");
        for bad in [
            vec![],
            vec![("width", "0")],
            vec![("width", "0"), ("height", "0")],
            vec![("width", "2501")],
            vec![("height", "-1")],
            vec![("width", "1e3")],
            vec![("width", "10"), ("quality", "19")],
            vec![("width", "10"), ("quality", "1000")],
            vec![("width", "10"), ("resize", "crop")],
            vec![("width", "10"), ("format", "avif")],
        ] {
            assert!(Transform::from_query(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_resize_mode_gives_the_size_it_promises() {
        let source = jpeg(400, 300);
        let render = |q: &[(&str, &str)]| {
            let (bytes, mime) =
                Transform::from_query(q.iter().copied()).unwrap().render(&source, "image/jpeg").unwrap();
            (size_of(&bytes), mime)
        };
        assert_eq!(render(&[("width", "100"), ("height", "100")]), ((100, 100), "image/jpeg"));
        assert_eq!(render(&[("width", "100"), ("height", "100"), ("resize", "contain")]).0, (100, 75));
        assert_eq!(render(&[("width", "100"), ("height", "100"), ("resize", "fill")]).0, (100, 100));
        assert_eq!(render(&[("width", "200")]).0, (200, 150));
        assert_eq!(render(&[("height", "60")]).0, (80, 60));
        assert_eq!(render(&[("width", "100"), ("resize", "fill")]).0, (100, 300), "the other side stays");
        assert_eq!(render(&[("width", "800"), ("height", "100")]).0, (400, 100), "never enlarged, then cropped");
        assert_eq!(render(&[("width", "800"), ("resize", "contain")]).0, (400, 300), "never enlarged");
        assert_eq!(render(&[("width", "50"), ("format", "png")]), ((50, 38), "image/png"));
        assert_eq!(render(&[("width", "50"), ("format", "webp")]).1, "image/webp");
    }

    #[test]
    fn what_is_not_an_image_is_refused() {
        let t = Transform::from_query([("width", "10")]).unwrap();
        assert!(matches!(t.render(b"not an image", "image/jpeg"), Err(StorageError::InvalidInput(_))));
        assert!(matches!(t.render(&jpeg(4, 4), "application/pdf"), Err(StorageError::InvalidInput(_))));
    }
}
