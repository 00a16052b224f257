//! An MP4/M4A file's box structure, checked and cleaned in place before
//! the audio decoder sees it.
//!
//! Two reasons, both about what the file claims rather than what it holds:
//! the decoder (symphonia 0.5) sizes its sample tables from the counts in
//! the file, so a 200-byte file claiming four billion entries would make it
//! ask for tens of GB, an allocation failure that aborts the process; and a
//! phone's recorder writes metadata boxes (`udta`, `meta`: a place name, GPS
//! in `©xyz`, cover art with EXIF) we do not keep. Tables are checked
//! against their box's size; metadata boxes become `free` boxes of the same
//! size filled with zeros (no offset in the file moves, so the sample
//! offsets stay right); bytes after the last box are cut. Works with reads
//! and writes at offsets: the audio data (`mdat`) is never read here.
//! Hand-written: the MP4 crates parse everything, allocations included,
//! which is what must not happen before these checks.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::MediaError;

fn bad(why: &str) -> MediaError {
    MediaError::Undecodable(format!("the voice file is not a valid MP4: {why}"))
}

/// Boxes whose payload is a list of boxes.
const CONTAINERS: [&[u8; 4]; 9] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex", b"moof",
];
/// Boxes that carry metadata and nothing the audio needs.
const METADATA: [&[u8; 4]; 3] = [b"udta", b"meta", b"uuid"];
/// Nesting deeper than any real file has.
const MAX_DEPTH: usize = 8;

/// Checks and cleans `file` (of `len` bytes) in place, and cuts what
/// follows its last box.
pub fn sanitize(file: &File, len: u64) -> Result<(), MediaError> {
    let end = walk(file, 0, len, 0)?;
    if end < len {
        file.set_len(end)?;
    }
    Ok(())
}

/// Walks the boxes in `[from, to)`; returns where the last complete box ends.
fn walk(file: &File, from: u64, to: u64, depth: usize) -> Result<u64, MediaError> {
    if depth > MAX_DEPTH {
        return Err(bad("boxes nested too deeply"));
    }
    let mut at = from;
    while at + 8 <= to {
        let mut header = [0u8; 16];
        file.read_exact_at(&mut header[..8], at)?;
        let size32 = u64::from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let kind: [u8; 4] = [header[4], header[5], header[6], header[7]];
        let (size, header_len) = match size32 {
            0 => (to - at, 8),
            1 => {
                if at + 16 > to {
                    return Err(bad("a box header is cut off"));
                }
                file.read_exact_at(&mut header[8..16], at + 8)?;
                let large = u64::from_be_bytes(header[8..16].try_into().unwrap_or([0; 8]));
                (large, 16)
            }
            n => (n, 8),
        };
        if size < header_len || size > to - at {
            // At the top level, trailing bytes that are not a box are cut;
            // inside a box, a child overrunning its parent is corrupt.
            if depth == 0 && at > from {
                return Ok(at);
            }
            return Err(bad("a box is larger than what holds it"));
        }
        let payload = (at + header_len, at + size);
        if METADATA.contains(&&kind) {
            blank(file, at, header_len, size)?;
        } else if CONTAINERS.contains(&&kind) {
            walk(file, payload.0, payload.1, depth + 1)?;
        } else {
            check_table(file, &kind, payload.0, payload.1 - payload.0)?;
        }
        at += size;
    }
    if depth == 0 && at == from {
        return Err(bad("no boxes"));
    }
    Ok(at)
}

/// A sample table's entry count must fit in its box.
fn check_table(file: &File, kind: &[u8; 4], payload: u64, len: u64) -> Result<(), MediaError> {
    // (offset of the count after version/flags, bytes per entry)
    let (count_at, entry) = match kind {
        b"stts" | b"ctts" => (4, 8),
        b"stsc" => (4, 12),
        b"stco" | b"stss" => (4, 4),
        b"co64" => (4, 8),
        // Sample descriptions: each at least a box header.
        b"stsd" => (4, 8),
        b"stsz" => {
            if len < 12 {
                return Err(bad("a sample size table is cut off"));
            }
            let mut fields = [0u8; 8];
            file.read_exact_at(&mut fields, payload + 4)?;
            let sample_size = u32::from_be_bytes([fields[0], fields[1], fields[2], fields[3]]);
            let count = u64::from(u32::from_be_bytes([
                fields[4], fields[5], fields[6], fields[7],
            ]));
            // One size per sample only when they differ.
            if sample_size == 0 && 12 + count * 4 > len {
                return Err(bad("a sample table claims more entries than it holds"));
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    if len < count_at + 4 {
        return Err(bad("a sample table is cut off"));
    }
    let mut count = [0u8; 4];
    file.read_exact_at(&mut count, payload + count_at)?;
    let count = u64::from(u32::from_be_bytes(count));
    if count_at + 4 + count * entry > len {
        return Err(bad("a sample table claims more entries than it holds"));
    }
    Ok(())
}

/// Turns a box into a `free` box of the same size, its payload zeroed.
fn blank(file: &File, at: u64, header_len: u64, size: u64) -> Result<(), MediaError> {
    file.write_all_at(b"free", at + 4)?;
    let zeros = vec![0u8; 64 * 1024];
    let mut offset = at + header_len;
    let end = at + size;
    while offset < end {
        let n = (end - offset).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}
