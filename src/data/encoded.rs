//! Images inside JSON (the server's answers): PNG bytes in base64, lossless,
//! for masks and images alike. Decoding is bounded like every image read.

use base64::Engine;
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most pixels an image inside JSON may have (a 16k × 16k image).
const MAX_PIXELS: u64 = 1 << 28;

/// The PNG bytes of an 8-bit image.
fn png<P: image::PixelWithColorType<Subpixel = u8>>(image: &image::ImageBuffer<P, Vec<u8>>) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).expect("PNG into memory");
    bytes.into_inner()
}

fn decode(text: &str) -> Result<image::DynamicImage, String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("not base64: {e}"))?;
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 3);
    reader.limits(limits);
    reader.decode().map_err(|e| format!("not a PNG: {e}"))
}

fn text<P: image::PixelWithColorType<Subpixel = u8>>(image: &image::ImageBuffer<P, Vec<u8>>) -> String {
    base64::engine::general_purpose::STANDARD.encode(png(image))
}

/// `Option<GrayImage>` as an optional base64 PNG.
pub mod gray {
    use super::*;

    pub fn serialize<S: Serializer>(image: &Option<GrayImage>, serializer: S) -> Result<S::Ok, S::Error> {
        image.as_ref().map(|image| text(image)).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<GrayImage>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else { return Ok(None) };
        decode(&text).map(|image| Some(image.into_luma8())).map_err(serde::de::Error::custom)
    }
}

/// An `RgbImage` as a base64 PNG.
pub mod rgb {
    use super::*;

    pub fn serialize<S: Serializer>(image: &RgbImage, serializer: S) -> Result<S::Ok, S::Error> {
        text(image).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<RgbImage, D::Error> {
        decode(&String::deserialize(deserializer)?).map(|image| image.into_rgb8()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "gray")]
        mask: Option<GrayImage>,
        #[serde(with = "rgb")]
        image: RgbImage,
    }

    #[test]
    fn images_go_through_json_unchanged_and_junk_is_an_error() {
        let both = Both { mask: Some(GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 3 + y) as u8]))), image: RgbImage::from_fn(2, 2, |x, _| image::Rgb([x as u8, 9, 200])) };
        let json = serde_json::to_string(&both).unwrap();
        assert_eq!(serde_json::from_str::<Both>(&json).unwrap(), both);
        let none: Both = serde_json::from_str(&json.replace(&json[json.find("\"mask\"").unwrap()..json.find(",\"image\"").unwrap()], "\"mask\":null")).unwrap();
        assert_eq!(none.mask, None);
        assert!(serde_json::from_str::<Both>(r#"{"mask": "!!", "image": "aGk="}"#).unwrap_err().to_string().contains("not base64"));
        assert!(serde_json::from_str::<Both>(r#"{"mask": null, "image": "aGk="}"#).unwrap_err().to_string().contains("not a PNG"));
    }
}
