//! Media files made by the tests themselves: JPEGs with real EXIF (GPS,
//! orientation), PNGs whose header claims huge dimensions, and AAC in
//! M4A from ffmpeg (installed by `.ci/run` from Debian's packages).

use std::io::Cursor;
use std::process::Command;

/// A text the test plants in a file's metadata and looks for afterwards.
pub const PLANTED: &[u8] = b"iyagi-planted-secret";

/// A `width`×`height` JPEG (a gradient) carrying an EXIF block with the
/// given orientation, a GPS position and a description holding
/// [`PLANTED`], an XMP block and a comment holding it too.
pub fn jpeg_with_exif(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let plain = jpeg(width, height);
    let mut segments = Vec::new();
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(tiff_with_gps(orientation));
    segments.push(segment(0xE1, &exif));
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>".to_vec();
    xmp.extend(PLANTED);
    xmp.extend(b"</x:xmpmeta>");
    segments.push(segment(0xE1, &xmp));
    segments.push(segment(0xFE, PLANTED));
    // A JFXX extension: a thumbnail is another picture (here: the plant).
    let mut jfxx = b"JFXX\0\x10".to_vec();
    jfxx.extend(PLANTED);
    segments.push(segment(0xE0, &jfxx));
    // After SOI (FF D8), before the encoder's own segments.
    let mut out = plain[..2].to_vec();
    for s in segments {
        out.extend(s);
    }
    // And after the scan, before EOI, where a progressive file keeps
    // segments between its scans: another EXIF block and a comment.
    let body = &plain[2..plain.len() - 2];
    out.extend(body);
    let mut late_exif = b"Exif\0\0".to_vec();
    late_exif.extend(PLANTED);
    out.extend(segment(0xE1, &late_exif));
    out.extend(segment(0xFE, PLANTED));
    out.extend([0xFF, 0xD9]);
    out
}

/// A plain JPEG gradient, no metadata beyond what the encoder writes.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            128,
        ])
    });
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .expect("encode jpeg");
    out
}

/// A photo-like JPEG (quality 85): a gradient with per-pixel noise, so
/// it costs what a camera picture costs to decode (a plain gradient
/// compresses to almost nothing).
pub fn photo_like_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x2545_F491_u32;
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state & 0x3F) as u8;
        image::Rgb([
            ((x * 191 / width.max(1)) as u8).wrapping_add(noise),
            ((y * 191 / height.max(1)) as u8).wrapping_add(noise / 2),
            100u8.wrapping_add(noise),
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&image)
        .expect("encode jpeg");
    out
}

/// A real PNG of `width`×`height`.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, _| image::Rgba([x as u8, 0, 0, 200]));
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode png");
    out
}

/// A lossless WebP of `width`×`height`.
pub fn webp(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([x as u8, y as u8, 50, 255])
    });
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::WebP)
        .expect("encode webp");
    out
}

/// An animated GIF of `frames` frames, `width`×`height`, with a comment
/// extension holding [`PLANTED`].
pub fn animated_gif(width: u16, height: u16, frames: u8) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let palette = [0u8, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255];
        let mut encoder = gif::Encoder::new(&mut out, width, height, &palette).expect("gif");
        encoder.set_repeat(gif::Repeat::Infinite).expect("repeat");
        encoder
            .write_raw_extension(gif::Extension::Comment.into(), &[PLANTED])
            .expect("comment");
        for n in 0..frames {
            let pixels = vec![n % 4; usize::from(width) * usize::from(height)];
            let frame = gif::Frame {
                width,
                height,
                buffer: std::borrow::Cow::Owned(pixels),
                delay: 10,
                ..gif::Frame::default()
            };
            encoder.write_frame(&frame).expect("frame");
        }
    }
    out
}

/// How many frames a GIF has.
pub fn gif_frames(bytes: &[u8]) -> usize {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(bytes).expect("a gif");
    let mut frames = 0;
    while decoder.read_next_frame().expect("frame").is_some() {
        frames += 1;
    }
    frames
}

/// A decompression bomb: a tiny PNG whose header claims `width`×`height`
/// (the rest is one small, valid zlib stream of zeros that would inflate
/// to width×height pixels if a decoder believed it).
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit greyscale
    out.extend(png_chunk(b"IHDR", &ihdr));
    // A stored (uncompressed) zlib block of a few zero bytes.
    out.extend(png_chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0, 0, 0x04, 0, 0x01,
        ],
    ));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// AAC in M4A: `secs` seconds of a 440 Hz tone at amplitude 1/8, made by ffmpeg.
pub fn m4a(secs: f32) -> Vec<u8> {
    m4a_with(secs, &[])
}

/// [`m4a`] with metadata a phone's recorder writes: a title holding
/// [`PLANTED`] and a GPS position (`©xyz`).
pub fn m4a_tagged(secs: f32) -> Vec<u8> {
    let title = format!("title={}", String::from_utf8_lossy(PLANTED));
    m4a_with(
        secs,
        &[
            "-metadata",
            &title,
            "-metadata",
            "location=+37.5665+126.9780/",
        ],
    )
}

fn m4a_with(secs: f32, extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("voice.m4a");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={secs}"))
        .args(["-c:a", "aac"])
        .args(extra)
        .args(["-f", "ipod"])
        .arg(&path)
        .status()
        .unwrap_or_else(|e| panic!("ffmpeg must be installed (apt-get install ffmpeg): {e}"));
    assert!(status.success(), "ffmpeg failed");
    std::fs::read(&path).expect("read m4a")
}

fn segment(marker: u8, contents: &[u8]) -> Vec<u8> {
    let len = u16::try_from(contents.len() + 2).expect("segment fits");
    let mut out = vec![0xFF, marker];
    out.extend(len.to_be_bytes());
    out.extend(contents);
    out
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(u32::try_from(data.len()).expect("chunk fits").to_be_bytes());
    out.extend(kind);
    out.extend(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend(data);
    out.extend(crc32(&crc_input).to_be_bytes());
    out
}

/// PNG's CRC-32 (ISO-HDLC), bitwise: a test helper, not a hot path.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A little-endian TIFF: IFD0 with Orientation, ImageDescription
/// ([`PLANTED`]) and a GPS IFD pointer; the GPS IFD with latitude 37°33′N.
fn tiff_with_gps(orientation: u16) -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32) {
        out.extend(tag.to_le_bytes());
        out.extend(kind.to_le_bytes());
        out.extend(count.to_le_bytes());
        out.extend(value.to_le_bytes());
    }
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const ASCII: u16 = 2;
    const RATIONAL: u16 = 5;
    let ifd0 = 8u32;
    let ifd0_len = 2 + 3 * 12 + 4;
    let gps = ifd0 + ifd0_len;
    let gps_len = 2 + 2 * 12 + 4;
    let rationals = gps + gps_len;
    let description = rationals + 24;
    let mut out = b"II".to_vec();
    out.extend(42u16.to_le_bytes());
    out.extend(ifd0.to_le_bytes());
    out.extend(3u16.to_le_bytes());
    entry(
        &mut out,
        0x010E,
        ASCII,
        PLANTED.len() as u32 + 1,
        description,
    );
    entry(&mut out, 0x0112, SHORT, 1, u32::from(orientation));
    entry(&mut out, 0x8825, LONG, 1, gps);
    out.extend(0u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    entry(
        &mut out,
        0x0001,
        ASCII,
        2,
        u32::from_le_bytes([b'N', 0, 0, 0]),
    );
    entry(&mut out, 0x0002, RATIONAL, 3, rationals);
    out.extend(0u32.to_le_bytes());
    for (num, den) in [(37u32, 1u32), (33, 1), (0, 1)] {
        out.extend(num.to_le_bytes());
        out.extend(den.to_le_bytes());
    }
    out.extend(PLANTED);
    out.push(0);
    out
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
