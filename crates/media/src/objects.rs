//! The object store: where media bytes live. `object_store`'s trait with
//! its local-disk and S3 implementations, chosen by `media.backend`; the
//! S3 one also signs URLs for direct-to-bucket uploads.
//!
//! Layout: `media/{id}/original`, `media/{id}/{size}` (thumbnails),
//! `uploads/{id}` (a presigned upload until it is completed).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use uuid::Uuid;

use crate::MediaError;
use crate::settings::{MediaBackend, MediaSettings};

#[derive(Clone, Debug)]
pub struct Objects {
    pub store: Arc<dyn ObjectStore>,
    /// Present on S3: signs presigned upload URLs.
    pub signer: Option<Arc<dyn Signer>>,
}

impl Objects {
    pub fn open(settings: &MediaSettings) -> Result<Objects, MediaError> {
        match settings.backend {
            MediaBackend::Local => {
                std::fs::create_dir_all(&settings.path).map_err(|e| {
                    MediaError::Storage(format!("cannot create {}: {e}", settings.path.display()))
                })?;
                let store = LocalFileSystem::new_with_prefix(&settings.path)?
                    // Deleting a file also deletes the folders it leaves empty.
                    .with_automatic_cleanup(true);
                Ok(Objects {
                    store: Arc::new(store),
                    signer: None,
                })
            }
            MediaBackend::S3 => {
                let s3 = &settings.s3;
                if s3.bucket.is_empty() {
                    return Err(MediaError::Storage("media.s3.bucket is not set".to_owned()));
                }
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(!s3.path_style)
                    .with_allow_http(s3.allow_http);
                if !s3.endpoint.is_empty() {
                    builder = builder.with_endpoint(&s3.endpoint);
                }
                if !s3.access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(&s3.secret_access_key);
                }
                let store = Arc::new(builder.build()?);
                Ok(Objects {
                    store: store.clone(),
                    signer: Some(store),
                })
            }
        }
    }
}

/// Which stored file of a media item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail(u32),
}

pub fn media_prefix(id: Uuid) -> Path {
    Path::from(format!("media/{id}"))
}

pub fn object_path(id: Uuid, variant: Variant) -> Path {
    match variant {
        Variant::Original => Path::from(format!("media/{id}/original")),
        Variant::Thumbnail(size) => Path::from(format!("media/{id}/{size}")),
    }
}

pub fn upload_path(id: Uuid) -> Path {
    Path::from(format!("uploads/{id}"))
}

/// The media id an object belongs to, from its path (`media/{id}/…` or
/// `uploads/{id}`).
pub fn id_of(path: &Path) -> Option<Uuid> {
    let mut parts = path.parts();
    let top = parts.next()?;
    let id = parts.next()?;
    match top.as_ref() {
        "media" | "uploads" => Uuid::parse_str(id.as_ref()).ok(),
        _ => None,
    }
}
