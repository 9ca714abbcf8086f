//! Image transformation arguments, shared by `Photo.url` and `Media.signedUrl`: the same
//! options as Supabase Storage's image transformation.

use async_graphql::{Enum, InputObject};

use crate::error::{ApiError, ErrorCode};
use crate::storage::transform::{Format, Resize, Transform};

/// How an image is fitted to the asked width and height (never enlarged).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ImageResize {
    /// Fill the box, keeping the aspect ratio, and crop the overflow.
    #[default]
    Cover,
    /// Fit inside the box, keeping the aspect ratio.
    Contain,
    /// Stretch to the box.
    Fill,
}

/// The encoding of a transformed image.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// The original's format (PNG for a GIF).
    #[default]
    Origin,
    Jpeg,
    Png,
    Webp,
}

/// A rendering of an image: a width or a height (1 to 2500 pixels), how to fit it, and its
/// quality (20 to 100) and format.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ImageTransform {
    pub width: Option<i32>,
    pub height: Option<i32>,
    #[graphql(default)]
    pub resize: ImageResize,
    pub quality: Option<i32>,
    #[graphql(default)]
    pub format: ImageFormat,
}

impl ImageTransform {
    /// The storage transformation, checked (`BAD_USER_INPUT` outside the bounds).
    pub fn to_storage(&self) -> Result<Transform, ApiError> {
        let side = |v: Option<i32>, name: &str| -> Result<Option<u32>, ApiError> {
            v.map(|v| {
                u32::try_from(v)
                    .map_err(|_| ApiError::new(ErrorCode::BadUserInput, format!("`{name}` must be positive")))
            })
            .transpose()
        };
        let transform = Transform {
            width: side(self.width, "width")?,
            height: side(self.height, "height")?,
            resize: match self.resize {
                ImageResize::Cover => Resize::Cover,
                ImageResize::Contain => Resize::Contain,
                ImageResize::Fill => Resize::Fill,
            },
            quality: self
                .quality
                .map(|q| {
                    u8::try_from(q)
                        .map_err(|_| ApiError::new(ErrorCode::BadUserInput, "`quality` must be between 20 and 100"))
                })
                .transpose()?,
            format: match self.format {
                ImageFormat::Origin => Format::Origin,
                ImageFormat::Jpeg => Format::Jpeg,
                ImageFormat::Png => Format::Png,
                ImageFormat::Webp => Format::Webp,
            },
        };
        Ok(transform.validate()?)
    }
}
