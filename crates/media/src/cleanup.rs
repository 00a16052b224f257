//! Discarding uploads that will not be used (refused, or whose request
//! went away), row first and then objects; the collector retries what
//! fails here.

use std::sync::Arc;

use futures::StreamExt;
use iyagi_store::Storage;
use uuid::Uuid;

use crate::MediaError;
use crate::objects::{Objects, media_prefix, upload_path};
use crate::service::MediaService;

impl MediaService {
    /// Deletes an upload that will not be used: its row (unless a message
    /// uses it) and its objects. Failures are logged; the collector retries.
    pub(crate) async fn discard(&self, id: Uuid) {
        discard_pending(&*self.store, &self.objects, id).await;
    }

    pub(crate) async fn delete_objects(&self, id: Uuid) -> Result<(), MediaError> {
        delete_objects_of(&self.objects, id).await
    }
}

/// Deletes an upload that will not be used: its row, if still pending
/// (a concurrent completion that succeeded keeps its result), and its
/// objects. Failures are logged; the collector retries.
async fn discard_pending(store: &dyn Storage, objects: &Objects, id: Uuid) {
    match store.media(id).await {
        Ok(Some(record)) if !record.is_ready() => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(media_id = %id, error = %e, "could not read a refused upload's row");
            return;
        }
    }
    match store.delete_unattached_media(id).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(media_id = %id, error = %e, "could not delete a refused upload's row");
            return;
        }
    }
    if let Err(e) = delete_objects_of(objects, id).await {
        tracing::warn!(media_id = %id, error = %e, "could not delete a refused upload's objects");
    }
}

async fn delete_objects_of(objects: &Objects, id: Uuid) -> Result<(), MediaError> {
    let store = &objects.store;
    let prefix = media_prefix(id);
    let paths: Vec<_> = store
        .list(Some(&prefix))
        .map(|meta| meta.map(|m| m.location))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for path in paths.into_iter().chain([upload_path(id)]) {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A direct upload being processed: if its request is dropped before it
/// finishes, the upload is discarded in the background.
pub(crate) struct Unfinished {
    pub(crate) store: Arc<dyn Storage>,
    pub(crate) objects: Objects,
    pub(crate) id: Uuid,
    pub(crate) armed: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, objects, id) = (self.store.clone(), self.objects.clone(), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { discard_pending(&*store, &objects, id).await });
        }
    }
}
