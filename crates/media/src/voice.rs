//! Voice: AAC in MP4/M4A decoded (pure Rust, symphonia) to measure its
//! duration and draw its waveform from the audio itself. Runs on a
//! blocking thread (the service bounds how many at once).

use std::fs::File;

use iyagi_protocol::media::{VoiceDetails, WAVEFORM_PEAKS};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as AudioError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::MediaError;

fn undecodable(what: impl std::fmt::Display) -> MediaError {
    MediaError::Undecodable(format!(
        "the voice file does not decode as AAC in MP4: {what}"
    ))
}

/// Peaks are first taken per this many milliseconds of audio, then
/// grouped into [`WAVEFORM_PEAKS`] (the duration is not known up front).
const PEAK_WINDOW_MS: u64 = 10;

pub fn process(file: File, max_secs: u64) -> Result<VoiceDetails, MediaError> {
    let source = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("m4a");
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(undecodable)?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| undecodable("no audio track"))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let rate = u64::from(
        params
            .sample_rate
            .ok_or_else(|| undecodable("no sample rate"))?,
    );
    if rate == 0 || rate > 384_000 {
        return Err(undecodable(format!("a sample rate of {rate} Hz")));
    }
    let max_frames = max_secs.saturating_mul(rate);
    // The container's claim is checked before decoding (it guards the
    // work); the decoded count is what is recorded and checked again.
    if params.n_frames.is_some_and(|n| n > max_frames + rate) {
        return Err(too_long(max_secs));
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(undecodable)?;
    let window = (rate * PEAK_WINDOW_MS / 1000).max(1);
    let mut peaks: Vec<f32> = Vec::new();
    let mut current = 0f32;
    let mut in_window = 0u64;
    let mut frames = 0u64;
    let mut samples: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(AudioError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(undecodable(e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(e) => return Err(undecodable(e)),
        };
        let spec = *decoded.spec();
        // The rate the limits and the duration use is the audio's: a
        // container claiming another would shrink a long recording.
        if u64::from(spec.rate) != rate {
            return Err(undecodable(format!(
                "the container says {rate} Hz, the audio is {} Hz",
                spec.rate
            )));
        }
        let channels = spec.channels.count().max(1);
        let buffer = samples
            .get_or_insert_with(|| SampleBuffer::<f32>::new(decoded.capacity() as u64, spec));
        if buffer.capacity() < decoded.capacity() * channels {
            *buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        }
        buffer.copy_interleaved_ref(decoded);
        for frame in buffer.samples().chunks(channels) {
            let loudest = frame.iter().fold(0f32, |m, s| m.max(s.abs()));
            current = current.max(loudest);
            in_window += 1;
            if in_window == window {
                peaks.push(current);
                current = 0.0;
                in_window = 0;
            }
        }
        frames += (buffer.samples().len() / channels) as u64;
        if frames > max_frames {
            return Err(too_long(max_secs));
        }
    }
    if in_window > 0 {
        peaks.push(current);
    }
    if frames == 0 {
        return Err(undecodable("no audio in it"));
    }
    Ok(VoiceDetails {
        duration_ms: (frames * 1000 / rate) as i64,
        waveform: waveform(&peaks),
    })
}

fn too_long(max_secs: u64) -> MediaError {
    MediaError::LimitExceeded(format!(
        "voice messages are at most {max_secs} seconds long"
    ))
}

/// [`WAVEFORM_PEAKS`] values 0–100 from the per-window peaks.
fn waveform(peaks: &[f32]) -> Vec<u8> {
    (0..WAVEFORM_PEAKS)
        .map(|i| {
            let start = i * peaks.len() / WAVEFORM_PEAKS;
            let end = ((i + 1) * peaks.len() / WAVEFORM_PEAKS)
                .max(start + 1)
                .min(peaks.len());
            let peak = peaks
                .get(start..end)
                .map_or(0.0, |s| s.iter().fold(0f32, |m, p| m.max(*p)));
            (peak.clamp(0.0, 1.0) * 100.0).round() as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn waveform_has_its_length_for_any_duration() {
        assert_eq!(super::waveform(&[]).len(), 64);
        assert_eq!(super::waveform(&[0.5; 3]).len(), 64);
        let w = super::waveform(&[1.0; 1000]);
        assert!(w.iter().all(|&p| p == 100));
    }
}
