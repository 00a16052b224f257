//! Downloads: who may fetch a media file, and which bytes of it.
//!
//! Through an authenticated endpoint rather than signed URLs: membership
//! is checked on every fetch, so a member removed from a room loses its
//! media at once (a signed URL would stay valid until it expired), and
//! the bytes are served from our origin with headers we control.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::{GetOptions, GetRange};
use uuid::Uuid;

use crate::MediaError;
use crate::objects::{Variant, object_path};
use crate::service::MediaService;
use crate::sniff::Format;

/// A `Range: bytes=…` request (one range; several are answered whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start-` or `start-end` (inclusive).
    From { start: u64, end: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a `Range` header; `None` for anything but one byte range
    /// (which is then ignored, as RFC 9110 allows).
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        if start.is_empty() {
            return end.parse().ok().map(ByteRange::Suffix);
        }
        let start = start.parse().ok()?;
        let end = if end.is_empty() {
            None
        } else {
            Some(end.parse().ok()?)
        };
        if end.is_some_and(|e| e < start) {
            return None;
        }
        Some(ByteRange::From { start, end })
    }

    /// The inclusive byte span of a file of `size` bytes.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From { start, end } if start < size => {
                Some((start, end.map_or(size - 1, |e| e.min(size - 1))))
            }
            ByteRange::Suffix(n) if n > 0 && size > 0 => Some((size.saturating_sub(n), size - 1)),
            _ => None,
        }
    }
}

pub struct Download {
    pub mime: String,
    /// The whole file's size.
    pub size: u64,
    /// The inclusive span sent, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// Strong: a stored file never changes.
    pub etag: String,
    /// A safe name for `Content-Disposition`: the id and an extension.
    pub filename: String,
    /// `None` when the client's `If-None-Match` already has it.
    pub body: Option<BoxStream<'static, Result<Bytes, object_store::Error>>>,
}

impl MediaService {
    /// A media file for `viewer`: its uploader, or a member of the room
    /// whose message uses it. Anyone else (and any unknown or unready id)
    /// gets [`MediaError::NotFound`], so ids cannot be probed.
    pub async fn open(
        &self,
        viewer: Uuid,
        id: Uuid,
        variant: Variant,
        range: Option<ByteRange>,
        if_none_match: Option<&str>,
    ) -> Result<Download, MediaError> {
        let record = self.store.media(id).await?.ok_or(MediaError::NotFound)?;
        if !record.is_ready() {
            return Err(MediaError::NotFound);
        }
        let allowed = record.owner_id == viewer
            || match record.room_id {
                Some(room) => self.store.member(room, viewer).await?.is_some(),
                None => false,
            };
        if !allowed {
            return Err(MediaError::NotFound);
        }
        let (mime, extension) = match variant {
            Variant::Original => {
                let mime = record.mime.clone().unwrap_or_default();
                let extension = Format::from_mime(&mime).map_or("bin", Format::extension);
                (mime, extension)
            }
            // Thumbnails are always JPEG.
            Variant::Thumbnail(_) => (Format::Jpeg.mime().to_owned(), Format::Jpeg.extension()),
        };
        let tag = match variant {
            Variant::Original => "original".to_owned(),
            Variant::Thumbnail(size) => size.to_string(),
        };
        let etag = format!("\"{id}-{tag}\"");
        let path = object_path(id, variant);
        let size = self.objects.store.head(&path).await?.size;
        let filename = format!("{id}.{extension}");
        // Weak comparison (RFC 9110 §13.1.2): W/"x" matches "x".
        let matches = |tag: &str| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
        };
        if if_none_match.is_some_and(|tags| tags.split(',').any(matches)) {
            return Ok(Download {
                mime,
                size,
                range: None,
                etag,
                filename,
                body: None,
            });
        }
        let span = match range {
            Some(range) => Some(
                range
                    .resolve(size)
                    .ok_or(MediaError::RangeNotSatisfiable { size })?,
            ),
            None => None,
        };
        let options = GetOptions {
            range: span.map(|(start, end)| GetRange::Bounded(start..end + 1)),
            ..GetOptions::default()
        };
        let body = self
            .objects
            .store
            .get_opts(&path, options)
            .await?
            .into_stream()
            .boxed();
        Ok(Download {
            mime,
            size,
            range: span,
            etag,
            filename,
            body: Some(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRange;

    #[test]
    fn ranges_parse_and_resolve() {
        assert_eq!(
            ByteRange::parse("bytes=0-99").unwrap().resolve(1000),
            Some((0, 99))
        );
        assert_eq!(
            ByteRange::parse("bytes=900-").unwrap().resolve(1000),
            Some((900, 999))
        );
        assert_eq!(
            ByteRange::parse("bytes=-100").unwrap().resolve(1000),
            Some((900, 999))
        );
        assert_eq!(
            ByteRange::parse("bytes=-5000").unwrap().resolve(1000),
            Some((0, 999))
        );
        assert_eq!(
            ByteRange::parse("bytes=0-5000").unwrap().resolve(1000),
            Some((0, 999))
        );
        assert_eq!(ByteRange::parse("bytes=1000-").unwrap().resolve(1000), None);
        assert_eq!(ByteRange::parse("bytes=-0").unwrap().resolve(1000), None);
        assert!(ByteRange::parse("bytes=5-1").is_none());
        assert!(ByteRange::parse("bytes=0-1,5-6").is_none());
        assert!(ByteRange::parse("items=0-1").is_none());
        assert!(ByteRange::parse("bytes=a-b").is_none());
    }
}
