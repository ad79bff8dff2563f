//! Writing and reading one event file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use image::RgbImage;
use prost::Message;

use super::proto::{self, Event, Kind, Summary, Value, What};
use super::record;

/// The version string TensorBoard expects in a file's first event.
const FILE_VERSION: &str = "brain.Event:2";

/// Appends events to one file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `path` (replacing a file there) and writes its version event.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
        let mut writer = Self { path: path.to_path_buf(), out: BufWriter::new(file) };
        writer.write(Event { wall_time: now(), step: 0, what: Some(What::FileVersion(FILE_VERSION.into())) })?;
        Ok(writer)
    }

    /// Opens `path` to append to it, creating it (with its version event) when absent.
    pub fn append(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Self::create(path);
        }
        let file = std::fs::OpenOptions::new().append(true).open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(Self { path: path.to_path_buf(), out: BufWriter::new(file) })
    }

    /// Writes the file at `path` whole with `fill`, through a temporary file
    /// (whose name TensorBoard does not read) and a rename.
    pub fn replace(path: &Path, fill: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let tmp = path.with_file_name("rewriting.tmp");
        let mut writer = Self::create(&tmp)?;
        fill(&mut writer)?;
        writer.flush()?;
        drop(writer);
        std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot move into place", path.display()))
    }

    /// Scalars at one step, as one event.
    pub fn scalars(&mut self, step: usize, values: &[(String, f32)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let value = values.iter().map(|(tag, v)| Value { tag: tag.clone(), value: Some(Kind::SimpleValue(*v)) }).collect();
        self.summary(step, Summary { value })
    }

    /// Images at one step, as one event, each encoded as PNG.
    pub fn images(&mut self, step: usize, images: &[(String, RgbImage)]) -> Result<()> {
        if images.is_empty() {
            return Ok(());
        }
        let mut value = Vec::with_capacity(images.len());
        for (tag, image) in images {
            let mut png = Vec::new();
            image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).context("cannot encode PNG")?;
            let encoded = proto::Image {
                height: image.height() as i32,
                width: image.width() as i32,
                colorspace: 3,
                encoded_image_string: png,
            };
            value.push(Value { tag: tag.clone(), value: Some(Kind::Image(encoded)) });
        }
        self.summary(step, Summary { value })
    }

    fn summary(&mut self, step: usize, summary: Summary) -> Result<()> {
        self.write(Event { wall_time: now(), step: step as i64, what: Some(What::Summary(summary)) })
    }

    fn write(&mut self, event: Event) -> Result<()> {
        record::write(&mut self.out, &event.encode_to_vec()).with_context(|| format!("{}: cannot write", self.path.display()))
    }

    /// Hands what was written to the file, so a reader (TensorBoard, a killed run's resume) sees it.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().with_context(|| format!("{}: cannot write", self.path.display()))
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// Every event of a file, and whether a torn tail was left out.
pub fn read_file(path: &Path) -> Result<(Vec<Event>, bool)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (records, torn) = record::read(&bytes);
    let events = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Event::decode(r).with_context(|| format!("{}: record {i} is not an event", path.display())))
        .collect::<Result<_>>()?;
    Ok((events, torn))
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_images_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.out.tfevents.test");
        let mut writer = EventWriter::create(&path).unwrap();
        writer.scalars(3, &[("loss/det".into(), 1.5), ("train/lr".into(), 0.25)]).unwrap();
        writer.images(3, &[("timeline/a".into(), RgbImage::from_pixel(4, 2, image::Rgb([9, 8, 7])))]).unwrap();
        drop(writer);
        let mut writer = EventWriter::append(&path).unwrap();
        writer.scalars(4, &[("loss/det".into(), 1.25)]).unwrap();
        writer.flush().unwrap();
        let (events, torn) = read_file(&path).unwrap();
        assert!(!torn);
        assert_eq!(events.len(), 4, "the version event, then three");
        assert_eq!(events[0].what, Some(What::FileVersion(FILE_VERSION.into())));
        let Some(What::Summary(summary)) = &events[1].what else { panic!("{:?}", events[1]) };
        assert_eq!((events[1].step, summary.value[1].tag.as_str()), (3, "train/lr"));
        assert_eq!(summary.value[1].value, Some(Kind::SimpleValue(0.25)));
        let Some(What::Summary(summary)) = &events[2].what else { panic!() };
        let Some(Kind::Image(png)) = &summary.value[0].value else { panic!() };
        let decoded = image::load_from_memory(&png.encoded_image_string).unwrap().to_rgb8();
        assert_eq!((png.width, png.height, decoded.get_pixel(3, 1).0), (4, 2, [9, 8, 7]));
        assert_eq!(events[3].step, 4);
    }
}
