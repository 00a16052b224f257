//! Media: image and voice uploads kept in an object store (local disk by
//! default, S3-compatible storage in production), with only references
//! in the database.
//!
//! An upload's type is decided by its bytes (`sniff.rs`); images are
//! decoded behind a bomb guard, stripped of metadata, oriented,
//! thumbnailed and blurhashed (`image.rs`); voice is decoded to measure its
//! duration and waveform (`voice.rs`). [`MediaService`] runs uploads
//! (`service.rs`), downloads for members (`download.rs`) and the
//! collector of unused uploads and orphan objects (`collector.rs`).

mod admission;
mod cleanup;
mod collector;
mod download;
mod error;
mod image;
mod mp4;
mod objects;
mod pool;
mod presign;
mod service;
mod settings;
mod sniff;
mod stats;
mod voice;

pub use collector::Collected;
pub use download::{ByteRange, Download};
pub use error::MediaError;
pub use objects::{Objects, Variant, id_of, object_path, upload_path};
pub use service::MediaService;
pub use settings::{MediaBackend, MediaSettings, S3Settings};
pub use sniff::{Format, detect};
pub use stats::MediaStats;
