//! Presigned uploads (S3 storage): the client PUTs straight to the bucket
//! with a signed URL, then completes; completion checks and processes the
//! object exactly like a direct upload.

use iyagi_protocol::media::{CreateUpload, MediaKind, MediaView, UploadTicket};
use iyagi_protocol::now_ms;
use iyagi_store::NewMedia;
use uuid::Uuid;

use crate::MediaError;
use crate::objects::upload_path;
use crate::service::{MediaService, Spooled, view};

impl MediaService {
    /// Asks for a presigned direct-to-bucket upload (S3 only).
    pub async fn create_upload(
        &self,
        owner: Uuid,
        request: &CreateUpload,
    ) -> Result<UploadTicket, MediaError> {
        let result = self.create_upload_inner(owner, request).await;
        self.refused(result)
    }

    async fn create_upload_inner(
        &self,
        owner: Uuid,
        request: &CreateUpload,
    ) -> Result<UploadTicket, MediaError> {
        let Some(signer) = &self.objects.signer else {
            return Err(MediaError::PresignUnavailable);
        };
        let size = u64::try_from(request.size)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| {
                MediaError::Validation("size must be a positive number of bytes".to_owned())
            })?;
        if size > self.kind_limit(request.kind) {
            return Err(self.too_large(Some(request.kind)));
        }
        self.admit(owner, size).await?;
        let id = Uuid::now_v7();
        let path = upload_path(id);
        let created = now_ms();
        self.store
            .create_media(&NewMedia {
                id,
                owner_id: owner,
                kind: request.kind.as_str().to_owned(),
                size_bytes: request.size,
                upload_key: Some(path.to_string()),
                created_at_ms: created,
            })
            .await?;
        let ttl = std::time::Duration::from_secs(self.settings.presign_ttl_secs);
        let url = signer.signed_url(http::Method::PUT, &path, ttl).await?;
        Ok(UploadTicket {
            media_id: id,
            method: "PUT".to_owned(),
            upload_url: url.to_string(),
            expires_at: created + (self.settings.presign_ttl_secs as i64) * 1000,
        })
    }

    /// Completes a presigned upload: the object is checked and processed
    /// like a direct upload. Completing a ready upload again returns it.
    pub async fn complete_upload(&self, owner: Uuid, id: Uuid) -> Result<MediaView, MediaError> {
        let result = self.complete_inner(owner, id).await;
        self.refused(result)
    }

    async fn complete_inner(&self, owner: Uuid, id: Uuid) -> Result<MediaView, MediaError> {
        let record = self.owned(owner, id).await?;
        if record.is_ready() {
            // Completed before: a second PUT to the still-valid URL is not kept.
            let _ = self.objects.store.delete(&upload_path(id)).await;
            return view(&record);
        }
        let kind = MediaKind::parse(&record.kind);
        let path = upload_path(id);
        let meta = match self.objects.store.head(&path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(MediaError::NotReady(
                    "nothing was uploaded to the upload URL yet".to_owned(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let _slot = self.admission.enter(owner)?;
        let limit = kind.map_or(self.settings.max_upload_bytes(), |k| self.kind_limit(k));
        if meta.size > limit {
            self.discard(id).await;
            return Err(self.too_large(kind));
        }
        let _arriving = self.arriving.clone().try_acquire_owned().map_err(|_| {
            MediaError::RateLimited(
                "this server is receiving too many uploads; retry shortly".to_owned(),
            )
        })?;
        let spooled = self.spool_object(&path, limit, kind).await?;
        let outcome = self.ingest(owner, id, spooled, kind, Some(&record)).await;
        // Processed or refused, the upload object has served its purpose.
        if let Err(e) = self.objects.store.delete(&path).await {
            tracing::warn!(media_id = %id, error = %e, "could not delete a completed upload object");
        }
        outcome
    }

    async fn spool_object(
        &self,
        path: &object_store::path::Path,
        limit: u64,
        kind: Option<MediaKind>,
    ) -> Result<Spooled, MediaError> {
        let stream = self.objects.store.get(path).await?.into_stream();
        self.spool(stream, limit, kind).await
    }
}
