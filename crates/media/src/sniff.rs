//! The type of an upload, decided by its first bytes (magic numbers),
//! never by the client's content type or file name. Hand-written: the
//! handful of signatures we accept fit in one match, where a detection
//! crate would bring hundreds we would then have to refuse.

use iyagi_protocol::media::MediaKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
    /// An ISO base media file (MP4/M4A): voice, if its audio decodes.
    Mp4,
}

impl Format {
    pub fn kind(self) -> MediaKind {
        match self {
            Format::Mp4 => MediaKind::Voice,
            _ => MediaKind::Image,
        }
    }

    /// The file-name extension downloads are named with.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::WebP => "webp",
            Format::Mp4 => "m4a",
        }
    }

    /// The format a stored MIME type (one [`Format::mime`] wrote) names.
    pub fn from_mime(mime: &str) -> Option<Format> {
        [
            Format::Jpeg,
            Format::Png,
            Format::Gif,
            Format::WebP,
            Format::Mp4,
        ]
        .into_iter()
        .find(|f| f.mime() == mime)
    }

    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::WebP => "image/webp",
            Format::Mp4 => "audio/mp4",
        }
    }
}

/// Bytes [`detect`] needs.
pub const SNIFF_LEN: usize = 16;

/// The format of a file starting with `head`; `Err` names what it looks
/// like when we know it but do not take it.
pub fn detect(head: &[u8]) -> Result<Format, &'static str> {
    match head {
        [0xFF, 0xD8, 0xFF, ..] => Ok(Format::Jpeg),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Ok(Format::Png),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Ok(Format::Gif),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Ok(Format::WebP),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => Ok(Format::Mp4),
        [b'O', b'g', b'g', b'S', ..] => {
            Err("Ogg audio is not supported yet; send voice as AAC in MP4/M4A")
        }
        [0x1A, 0x45, 0xDF, 0xA3, ..] => {
            Err("WebM audio is not supported yet; send voice as AAC in MP4/M4A")
        }
        _ => Err(
            "the file is not a supported type (images: JPEG, PNG, WebP, GIF; voice: AAC in MP4/M4A)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_decide() {
        assert_eq!(detect(b"\xFF\xD8\xFF\xE0rest"), Ok(Format::Jpeg));
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n...."), Ok(Format::Png));
        assert_eq!(detect(b"GIF89a......"), Ok(Format::Gif));
        assert_eq!(detect(b"RIFF\0\0\0\0WEBPVP8 "), Ok(Format::WebP));
        assert_eq!(detect(b"\0\0\0\x20ftypM4A \0\0"), Ok(Format::Mp4));
        assert!(detect(b"OggS\0\x02").is_err());
        assert!(detect(b"<html><script>").is_err());
        assert!(detect(b"").is_err());
        assert!(detect(b"\xFF\xD8").is_err(), "too short to be a JPEG");
    }
}
