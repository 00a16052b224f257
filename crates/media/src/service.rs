//! [`MediaService`]: uploads (through iyagi, or presigned to the bucket and
//! then completed), their processing, and what owners see of them.
//! Presigned uploads are in `presign.rs`, discarding refused ones in
//! `cleanup.rs`, downloads in `download.rs`, the collector in `collector.rs`.

use std::io::{Read, Seek};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use iyagi_protocol::media::{ImageDetails, MediaKind, MediaState, MediaView, VoiceDetails};
use iyagi_protocol::now_ms;
use iyagi_store::{MediaRecord, NewMedia, ReadyMedia, Storage};
use object_store::{PutPayload, WriteMultipart};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::admission::Admission;
use crate::cleanup::Unfinished;
use crate::objects::{Objects, Variant, object_path};
use crate::pool::DecodePool;
use crate::settings::MediaSettings;
use crate::sniff::{self, Format, SNIFF_LEN};
use crate::stats::{KindLabels, MediaStats};
use crate::{MediaError, image, mp4, voice};

/// Multipart chunks of originals streamed to the store (S3's minimum part size).
const PART_BYTES: usize = 5 * 1024 * 1024;

pub struct MediaService {
    pub(crate) store: Arc<dyn Storage>,
    pub(crate) objects: Objects,
    pub(crate) settings: MediaSettings,
    /// Where decodes run, `decode_concurrency` at once: each may take
    /// hundreds of MB.
    decodes: DecodePool,
    /// Uploads arriving at once on this node (each holds a spool file).
    pub(crate) arriving: Arc<Semaphore>,
    /// Per-user attempts and uploads at once (this node).
    pub(crate) admission: Admission,
    pub(crate) stats: MediaStats,
}

/// An upload spooled to local disk, deleted when dropped.
pub(crate) struct Spooled {
    file: tempfile::NamedTempFile,
    size: u64,
}

/// What processing produced, ready to be written to the store.
enum Processed {
    Image(image::ProcessedImage),
    Voice {
        details: VoiceDetails,
        file: std::fs::File,
    },
}

impl MediaService {
    pub fn new(
        store: Arc<dyn Storage>,
        objects: Objects,
        settings: MediaSettings,
        stats: MediaStats,
    ) -> MediaService {
        MediaService {
            decodes: DecodePool::new(settings.decode_concurrency),
            arriving: Arc::new(Semaphore::new(settings.max_uploads_in_flight.max(1))),
            admission: Admission::new(
                settings.uploads_per_hour,
                settings.max_uploads_in_flight_per_user,
            ),
            store,
            objects,
            settings,
            stats,
        }
    }

    pub fn settings(&self) -> &MediaSettings {
        &self.settings
    }

    pub fn stats(&self) -> &MediaStats {
        &self.stats
    }

    /// The object store, for tests that plant or look for objects.
    pub fn objects_for_tests(&self) -> &Objects {
        &self.objects
    }

    /// Whether presigned uploads are possible (S3 storage).
    pub fn can_presign(&self) -> bool {
        self.objects.signer.is_some()
    }

    pub(crate) fn kind_limit(&self, kind: MediaKind) -> u64 {
        match kind {
            MediaKind::Image => self.settings.max_image_bytes,
            MediaKind::Voice => self.settings.max_voice_bytes,
        }
    }

    pub(crate) fn too_large(&self, kind: Option<MediaKind>) -> MediaError {
        let limit = kind.map_or(self.settings.max_upload_bytes(), |k| self.kind_limit(k));
        let what = kind.map_or("uploads", |k| match k {
            MediaKind::Image => "images",
            MediaKind::Voice => "voice files",
        });
        MediaError::TooLarge(format!("{what} are limited to {limit} bytes"))
    }

    /// Counts a refusal, then passes it on.
    pub(crate) fn refused<T>(&self, result: Result<T, MediaError>) -> Result<T, MediaError> {
        if let Err(e) = &result {
            self.stats.reject(e.reason());
        }
        result
    }

    /// The per-user upload rate and storage quota, checked before any
    /// byte is read (`incoming`: the bytes about to be added).
    pub(crate) async fn admit(&self, owner: Uuid, incoming: u64) -> Result<(), MediaError> {
        let hour_ago = now_ms() - 3_600_000;
        let usage = self.store.media_usage(owner, hour_ago).await?;
        if usage.recent_uploads >= i64::from(self.settings.uploads_per_hour) {
            return Err(MediaError::RateLimited(format!(
                "at most {} uploads an hour; try again later",
                self.settings.uploads_per_hour
            )));
        }
        let total = u64::try_from(usage.bytes)
            .unwrap_or(0)
            .saturating_add(incoming);
        if total > self.settings.quota_bytes {
            return Err(MediaError::QuotaExceeded(format!(
                "your media would take {total} bytes; the quota is {} bytes",
                self.settings.quota_bytes
            )));
        }
        Ok(())
    }

    /// A direct upload: the body is streamed to a spool file (never held
    /// whole in memory), its type decided by its bytes, then processed
    /// and stored. `expected`: the kind the client says it sends, if it
    /// says; a file of another kind is refused.
    pub async fn upload<S, E>(
        &self,
        owner: Uuid,
        expected: Option<MediaKind>,
        declared_len: Option<u64>,
        body: S,
    ) -> Result<MediaView, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let result = self.upload_inner(owner, expected, declared_len, body).await;
        self.refused(result)
    }

    async fn upload_inner<S, E>(
        &self,
        owner: Uuid,
        expected: Option<MediaKind>,
        declared_len: Option<u64>,
        body: S,
    ) -> Result<MediaView, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let limit = expected.map_or(self.settings.max_upload_bytes(), |k| self.kind_limit(k));
        if declared_len.is_some_and(|len| len > limit) {
            return Err(self.too_large(expected));
        }
        let _slot = self.admission.enter(owner)?;
        self.admit(owner, declared_len.unwrap_or(0)).await?;
        let _arriving = self.arriving.clone().try_acquire_owned().map_err(|_| {
            MediaError::RateLimited(
                "this server is receiving too many uploads; retry shortly".to_owned(),
            )
        })?;
        let spooled = tokio::time::timeout(
            self.settings.upload_timeout(),
            self.spool(body, limit, expected),
        )
        .await
        .map_err(|_| MediaError::Timeout)??;
        let id = Uuid::now_v7();
        self.ingest(owner, id, spooled, expected, None).await
    }

    pub(crate) async fn spool<S, E>(
        &self,
        mut body: S,
        limit: u64,
        expected: Option<MediaKind>,
    ) -> Result<Spooled, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        tokio::fs::create_dir_all(&self.settings.spool_path).await?;
        let file = tempfile::NamedTempFile::new_in(&self.settings.spool_path)?;
        let mut writer = tokio::io::BufWriter::new(tokio::fs::File::from_std(file.reopen()?));
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::debug!(error = %e, "upload body failed");
                MediaError::BodyRead
            })?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(self.too_large(expected));
            }
            writer.write_all(&chunk).await?;
        }
        writer.flush().await?;
        Ok(Spooled { file, size })
    }

    /// The caller's own media (another user's is [`MediaError::NotFound`]).
    pub(crate) async fn owned(&self, owner: Uuid, id: Uuid) -> Result<MediaRecord, MediaError> {
        match self.store.media(id).await? {
            Some(record) if record.owner_id == owner => Ok(record),
            _ => Err(MediaError::NotFound),
        }
    }

    /// An upload as its owner sees it.
    pub async fn get(&self, owner: Uuid, id: Uuid) -> Result<MediaView, MediaError> {
        view(&self.owned(owner, id).await?)
    }

    /// Decides the type, processes, stores the objects and marks the row
    /// ready. A direct upload's row is written here, before any object
    /// (so a crash leaves a row the collector finds); a presigned one's
    /// exists (`existing`). A refused upload leaves nothing behind.
    pub(crate) async fn ingest(
        &self,
        owner: Uuid,
        id: Uuid,
        spooled: Spooled,
        expected: Option<MediaKind>,
        existing: Option<&MediaRecord>,
    ) -> Result<MediaView, MediaError> {
        let format = match self.decide(&spooled, expected) {
            Ok(format) => format,
            Err(e) => {
                if existing.is_some() {
                    self.discard(id).await;
                }
                return Err(e);
            }
        };
        let kind = format.kind();
        // A direct upload whose request is dropped midway (the client went
        // away during processing) is discarded by this guard.
        let mut unfinished = None;
        if existing.is_none() {
            self.store
                .create_media(&NewMedia {
                    id,
                    owner_id: owner,
                    kind: kind.as_str().to_owned(),
                    size_bytes: spooled.size as i64,
                    upload_key: None,
                    created_at_ms: now_ms(),
                })
                .await?;
            unfinished = Some(Unfinished {
                store: self.store.clone(),
                objects: self.objects.clone(),
                id,
                armed: true,
            });
        }
        let outcome = self.process_and_store(id, format, spooled).await;
        // Finished either way: refusals are discarded here, and awaited,
        // so nothing is left when the answer goes out.
        if let Some(guard) = unfinished.as_mut() {
            guard.armed = false;
        }
        match outcome {
            Ok(record) => {
                let labels = KindLabels {
                    kind: kind.as_str().to_owned(),
                };
                self.stats.uploads.get_or_create(&labels).inc();
                self.stats
                    .upload_bytes
                    .get_or_create(&labels)
                    .inc_by(record.size_bytes.max(0) as u64);
                tracing::info!(media_id = %id, kind = kind.as_str(), size = record.size_bytes, "media stored");
                view(&record)
            }
            Err(e) => {
                self.discard(id).await;
                Err(e)
            }
        }
    }

    fn decide(&self, spooled: &Spooled, expected: Option<MediaKind>) -> Result<Format, MediaError> {
        let mut head = [0u8; SNIFF_LEN];
        let mut file = spooled.file.reopen()?;
        let read = read_up_to(&mut file, &mut head)?;
        let format =
            sniff::detect(&head[..read]).map_err(|why| MediaError::Unsupported(why.to_owned()))?;
        let kind = format.kind();
        if let Some(expected) = expected
            && expected != kind
        {
            return Err(MediaError::TypeMismatch(format!(
                "the file is {} ({}), not {}",
                kind.as_str(),
                format.mime(),
                expected.as_str()
            )));
        }
        if spooled.size > self.kind_limit(kind) {
            return Err(self.too_large(Some(kind)));
        }
        Ok(format)
    }

    async fn process_and_store(
        &self,
        id: Uuid,
        format: Format,
        spooled: Spooled,
    ) -> Result<MediaRecord, MediaError> {
        let started = Instant::now();
        let processed = {
            let max_pixels = self.settings.max_image_pixels;
            let max_secs = self.settings.max_voice_secs;
            let mut file = spooled.file.reopen()?;
            self.decodes
                .run(move || -> Result<Processed, MediaError> {
                    match format {
                        Format::Mp4 => {
                            let len = file.metadata()?.len();
                            mp4::sanitize(&file, len)?;
                            let details = voice::process(file.try_clone()?, max_secs)?;
                            file.rewind()?;
                            Ok(Processed::Voice { details, file })
                        }
                        _ => {
                            let mut bytes = Vec::new();
                            file.read_to_end(&mut bytes)?;
                            Ok(Processed::Image(image::process(
                                Bytes::from(bytes),
                                format,
                                max_pixels,
                            )?))
                        }
                    }
                })
                .await
                .ok_or_else(|| {
                    MediaError::Undecodable("the file could not be processed".to_owned())
                })??
        };
        self.stats
            .processing_seconds
            .get_or_create(&KindLabels {
                kind: format.kind().as_str().to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        let store = &self.objects.store;
        let (mime, size, details) = match processed {
            Processed::Image(image) => {
                for (size, bytes) in image.thumbnails {
                    store
                        .put(
                            &object_path(id, Variant::Thumbnail(size)),
                            PutPayload::from(bytes),
                        )
                        .await?;
                }
                let size = image.original.len() as i64;
                store
                    .put(
                        &object_path(id, Variant::Original),
                        PutPayload::from(image.original),
                    )
                    .await?;
                (image.mime, size, to_json(&image.details)?)
            }
            Processed::Voice { details, file } => {
                self.put_file(id, file).await?;
                // After sanitizing: trailing bytes may have been cut.
                let size = spooled.file.as_file().metadata()?.len() as i64;
                (format.mime(), size, to_json(&details)?)
            }
        };
        let ready = ReadyMedia {
            id,
            kind: format.kind().as_str().to_owned(),
            mime: mime.to_owned(),
            size_bytes: size,
            details,
            ready_at_ms: now_ms(),
        };
        if !self.store.mark_media_ready(&ready).await? {
            // Completed twice at once: the other completion won; its row is the answer.
            tracing::debug!(media_id = %id, "media was made ready by another request");
        }
        self.store.media(id).await?.ok_or(MediaError::NotFound)
    }

    /// Streams a spooled original to the store in parts.
    async fn put_file(&self, id: Uuid, file: std::fs::File) -> Result<(), MediaError> {
        let upload = self
            .objects
            .store
            .put_multipart(&object_path(id, Variant::Original))
            .await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut file = tokio::fs::File::from_std(file);
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = tokio::io::AsyncReadExt::read(&mut file, &mut buffer).await?;
            if read == 0 {
                break;
            }
            writer.wait_for_capacity(2).await?;
            writer.write(&buffer[..read]);
        }
        writer.finish().await?;
        Ok(())
    }
}

fn read_up_to(file: &mut std::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, MediaError> {
    serde_json::to_string(value).map_err(|e| MediaError::Storage(format!("details: {e}")))
}

/// A stored row as its owner sees it.
pub(crate) fn view(record: &MediaRecord) -> Result<MediaView, MediaError> {
    let kind = MediaKind::parse(&record.kind)
        .ok_or_else(|| MediaError::Storage(format!("unknown media kind {}", record.kind)))?;
    let details = record.details.as_deref();
    let image = match (kind, details) {
        (MediaKind::Image, Some(json)) => serde_json::from_str::<ImageDetails>(json).ok(),
        _ => None,
    };
    let voice = match (kind, details) {
        (MediaKind::Voice, Some(json)) => serde_json::from_str::<VoiceDetails>(json).ok(),
        _ => None,
    };
    Ok(MediaView {
        id: record.id,
        kind,
        state: if record.is_ready() {
            MediaState::Ready
        } else {
            MediaState::Pending
        },
        mime: record.mime.clone(),
        size: record.is_ready().then_some(record.size_bytes),
        image,
        voice,
        attached: record.room_id.is_some(),
        created_at: record.created_at_ms,
    })
}
