//! Images: decoded behind a decompression-bomb guard, oriented, stripped
//! of every metadata block, measured, thumbnailed and blurhashed.
//! Runs on a blocking thread (the service bounds how many at once).

use std::io::Cursor;

use bytes::Bytes;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, metadata::Orientation};
use img_parts::png::Png;
use img_parts::webp::WebP;
use iyagi_protocol::media::{ImageDetails, THUMBNAIL_SIZES, Thumbnail};

use crate::MediaError;
use crate::sniff::Format;

/// A processed image: what to store and what to tell.
pub struct ProcessedImage {
    /// The original without metadata (and with its orientation applied
    /// to the pixels when it had one).
    pub original: Bytes,
    pub mime: &'static str,
    pub details: ImageDetails,
    /// JPEG thumbnails, in [`THUMBNAIL_SIZES`] order.
    pub thumbnails: Vec<(u32, Bytes)>,
}

/// Largest width or height decoded, whatever the pixel count.
const MAX_SIDE: u32 = 16_384;
/// GIF frames copied into the stored original, at most.
const MAX_GIF_FRAMES: usize = 2_000;
/// An animated GIF's frames may hold this many times `max_image_pixels`
/// in all (a 500×500 animation of 640 frames at the defaults).
const GIF_PIXEL_BUDGET_FACTOR: u64 = 4;
const THUMBNAIL_QUALITY: u8 = 80;
const REENCODE_QUALITY: u8 = 90;

fn undecodable(err: impl std::fmt::Display) -> MediaError {
    MediaError::Undecodable(format!("the image does not decode: {err}"))
}

pub fn process(
    bytes: Bytes,
    format: Format,
    max_pixels: u64,
) -> Result<ProcessedImage, MediaError> {
    let image_format = match format {
        Format::Jpeg => ImageFormat::Jpeg,
        Format::Png => ImageFormat::Png,
        Format::Gif => ImageFormat::Gif,
        Format::WebP => ImageFormat::WebP,
        Format::Mp4 => return Err(MediaError::Unsupported("not an image".to_owned())),
    };
    // JPEG: stripped (and checked for truncation) before any decoding.
    let stripped_jpeg = match format {
        Format::Jpeg => Some(strip_jpeg(&bytes)?),
        _ => None,
    };
    let mut reader = ImageReader::with_format(Cursor::new(&bytes[..]), image_format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // RGBA at 16 bits per channel, the largest a decode of max_pixels takes.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| limit_or_undecodable(e, max_pixels))?;
    // The bomb guard: the header's dimensions, before a pixel is decoded.
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut decoded =
        DynamicImage::from_decoder(decoder).map_err(|e| limit_or_undecodable(e, max_pixels))?;
    let (original, mime) = if orientation == Orientation::NoTransforms {
        let stripped = match stripped_jpeg {
            Some(jpeg) => jpeg,
            None => strip(bytes, format, max_pixels)?,
        };
        (stripped, format.mime())
    } else {
        decoded.apply_orientation(orientation);
        reencode(&decoded)?
    };
    let (width, height) = (decoded.width(), decoded.height());
    let mut thumbnails = Vec::with_capacity(THUMBNAIL_SIZES.len());
    let mut described = Vec::with_capacity(THUMBNAIL_SIZES.len());
    // Largest first, each from the one before: a 12 MP photo is scaled down
    // once, not once per size.
    let mut source = flatten(decoded);
    for &size in THUMBNAIL_SIZES.iter().rev() {
        if source.width().max(source.height()) > size {
            source = source.thumbnail(size, size);
        }
        described.push(Thumbnail {
            size,
            width: source.width(),
            height: source.height(),
        });
        thumbnails.push((size, jpeg(&source, THUMBNAIL_QUALITY)?));
    }
    thumbnails.reverse();
    described.reverse();
    let tiny = source.thumbnail(32, 32).to_rgba8();
    let blurhash = blurhash::encode(4, 3, tiny.width(), tiny.height(), tiny.as_raw())
        .map_err(|e| MediaError::Undecodable(format!("no blurhash: {e}")))?;
    Ok(ProcessedImage {
        original,
        mime,
        details: ImageDetails {
            width,
            height,
            blurhash,
            thumbnails: described,
        },
        thumbnails,
    })
}

fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::Undecodable(
            "the image has no pixels".to_owned(),
        ));
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(MediaError::LimitExceeded(format!(
            "the image is {width}×{height} pixels; at most {max_pixels} pixels are accepted"
        )));
    }
    Ok(())
}

fn limit_or_undecodable(err: image::ImageError, max_pixels: u64) -> MediaError {
    match err {
        image::ImageError::Limits(_) => MediaError::LimitExceeded(format!(
            "the image is larger than this server decodes (at most {max_pixels} pixels, {MAX_SIDE} on a side)"
        )),
        other => undecodable(other),
    }
}

/// The original's bytes with every metadata block removed, the pixels'
/// encoding untouched. Allow-lists: what is not known to be image data
/// (or colour information) goes, including anything after the image's end.
fn strip(bytes: Bytes, format: Format, max_pixels: u64) -> Result<Bytes, MediaError> {
    match format {
        Format::Jpeg => strip_jpeg(&bytes),
        Format::Png => {
            let mut png = Png::from_bytes(bytes).map_err(undecodable)?;
            png.chunks_mut().retain(|chunk| {
                matches!(
                    &chunk.kind(),
                    b"IHDR"
                        | b"PLTE"
                        | b"IDAT"
                        | b"IEND"
                        | b"tRNS"
                        | b"gAMA"
                        | b"cHRM"
                        | b"sRGB"
                        | b"iCCP"
                        | b"sBIT"
                        | b"pHYs"
                        | b"acTL"
                        | b"fcTL"
                        | b"fdAT"
                        | b"bKGD"
                )
            });
            Ok(png.encoder().bytes())
        }
        Format::WebP => {
            let mut webp = WebP::from_bytes(bytes).map_err(undecodable)?;
            webp.chunks_mut().retain(|chunk| {
                matches!(
                    &chunk.id(),
                    b"VP8 " | b"VP8L" | b"VP8X" | b"ALPH" | b"ANIM" | b"ANMF" | b"ICCP"
                )
            });
            Ok(webp.encoder().bytes())
        }
        Format::Gif => copy_gif_frames(&bytes, max_pixels),
        Format::Mp4 => Err(MediaError::Unsupported("not an image".to_owned())),
    }
}

/// A JPEG without its metadata, ending at its end-of-image marker.
///
/// Hand-written: a container crate (img-parts) keeps everything after the
/// first scan as one opaque block, so a progressive JPEG's EXIF segment
/// between two scans would survive. This walks every marker segment by its
/// length and every scan by the format's byte stuffing (FF 00 and the RSTn
/// markers stay inside a scan; FF FF is fill), keeping only what decodes
/// the image: APP0 only as a bare JFIF header (a JFXX thumbnail is another
/// picture, with metadata of its own), APP2 only as an ICC profile, APP14
/// (Adobe colour transform); no other APPn (EXIF, XMP, IPTC, MPF...), no
/// comments. A file without the end-of-image marker is truncated (a decoder
/// would fill the missing rows with grey and say nothing); bytes after it
/// (a polyglot's HTML, say) are not part of the image and are not kept.
fn strip_jpeg(bytes: &[u8]) -> Result<Bytes, MediaError> {
    let truncated = || {
        MediaError::Undecodable("the JPEG is truncated (it has no end-of-image marker)".to_owned())
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    let mut at = 2; // past SOI
    let mut scan_from: Option<usize> = None;
    while at + 1 < bytes.len() {
        if bytes[at] != 0xFF {
            if scan_from.is_none() {
                return Err(undecodable("a JPEG marker was expected"));
            }
            at += 1;
            continue;
        }
        let marker = bytes[at + 1];
        match marker {
            // Fill byte, anywhere.
            0xFF => at += 1,
            // Stuffed FF and restart markers: still in the scan.
            0x00 | 0xD0..=0xD7 if scan_from.is_some() => at += 2,
            _ => {
                if let Some(from) = scan_from.take() {
                    out.extend_from_slice(&bytes[from..at]);
                }
                if marker == 0xD9 {
                    out.extend_from_slice(&[0xFF, 0xD9]);
                    return Ok(Bytes::from(out));
                }
                if matches!(marker, 0x01 | 0xD0..=0xD8) {
                    out.extend_from_slice(&[0xFF, marker]);
                    at += 2;
                    continue;
                }
                let len = bytes.get(at + 2..at + 4).ok_or_else(truncated)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len < 2 {
                    return Err(undecodable("a JPEG segment is shorter than its header"));
                }
                let end = at + 2 + len;
                let segment = bytes.get(at..end).ok_or_else(truncated)?;
                let contents = &segment[4..];
                match marker {
                    0xE0 if contents.starts_with(b"JFIF\0") && contents.len() >= 14 => {
                        // Version, units, densities; no thumbnail.
                        out.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
                        out.extend_from_slice(&contents[..12]);
                        out.extend_from_slice(&[0, 0]);
                    }
                    0xE2 if contents.starts_with(b"ICC_PROFILE\0") => {
                        out.extend_from_slice(segment)
                    }
                    0xEE => out.extend_from_slice(segment),
                    0xE0..=0xEF | 0xFE => {}
                    _ => out.extend_from_slice(segment),
                }
                at = end;
                if marker == 0xDA {
                    scan_from = Some(at);
                }
            }
        }
    }
    Err(truncated())
}

/// A GIF's frames (every one: animation kept) into a new file: comments
/// and application blocks (XMP) are not copied, only the loop count.
/// Frames stay palette-indexed, so nothing is re-quantised.
fn copy_gif_frames(bytes: &[u8], max_pixels: u64) -> Result<Bytes, MediaError> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(bytes).map_err(undecodable)?;
    let (width, height) = (decoder.width(), decoder.height());
    let palette = decoder.global_palette().unwrap_or(&[]).to_vec();
    let repeat = decoder.repeat();
    let mut out = Vec::with_capacity(bytes.len());
    {
        let mut encoder =
            gif::Encoder::new(&mut out, width, height, &palette).map_err(undecodable)?;
        encoder.set_repeat(repeat).map_err(undecodable)?;
        let mut frames = 0;
        // Every frame is decoded and written again: the work is bounded by
        // their pixels in all (not only by their count).
        let budget = max_pixels.saturating_mul(GIF_PIXEL_BUDGET_FACTOR);
        let mut pixels = 0u64;
        while let Some(frame) = decoder.read_next_frame().map_err(undecodable)? {
            frames += 1;
            if frames > MAX_GIF_FRAMES {
                return Err(MediaError::LimitExceeded(format!(
                    "the GIF has more than {MAX_GIF_FRAMES} frames"
                )));
            }
            if u32::from(frame.left) + u32::from(frame.width) > u32::from(width)
                || u32::from(frame.top) + u32::from(frame.height) > u32::from(height)
            {
                return Err(undecodable("a GIF frame lies outside the image"));
            }
            pixels += u64::from(frame.width) * u64::from(frame.height);
            if pixels > budget {
                return Err(MediaError::LimitExceeded(format!(
                    "the GIF's frames hold more than {budget} pixels in all"
                )));
            }
            encoder.write_frame(frame).map_err(undecodable)?;
        }
    }
    Ok(Bytes::from(out))
}

/// An oriented image in a new file: JPEG, or PNG when it has alpha.
fn reencode(image: &DynamicImage) -> Result<(Bytes, &'static str), MediaError> {
    if image.color().has_alpha() {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .map_err(undecodable)?;
        Ok((Bytes::from(out), Format::Png.mime()))
    } else {
        Ok((jpeg(image, REENCODE_QUALITY)?, Format::Jpeg.mime()))
    }
}

/// Transparent pixels over white (thumbnails are JPEG, which has no alpha).
fn flatten(image: DynamicImage) -> DynamicImage {
    if !image.color().has_alpha() {
        return DynamicImage::ImageRgb8(image.into_rgb8());
    }
    let rgba = image.into_rgba8();
    let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
    for (out, pixel) in rgb.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = pixel.0;
        let over_white =
            |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        *out = image::Rgb([over_white(r), over_white(g), over_white(b)]);
    }
    DynamicImage::ImageRgb8(rgb)
}

fn jpeg(image: &DynamicImage, quality: u8) -> Result<Bytes, MediaError> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    image
        .to_rgb8()
        .write_with_encoder(encoder)
        .map_err(undecodable)?;
    Ok(Bytes::from(out))
}
