//! The collector: deletes uploads no message used in time, and objects
//! no row knows (left by a crash between the store and the database, or
//! by a row deletion whose object deletion failed). Nothing a message
//! uses is ever deleted: rows go only through the conditional
//! `delete_unattached_media`, objects only when their row is gone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use iyagi_protocol::now_ms;
use object_store::path::Path;
use uuid::Uuid;

use crate::MediaError;
use crate::objects::{id_of, upload_path};
use crate::service::MediaService;
use crate::stats::CollectedLabels;

/// What one collection deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    pub unattached: u64,
    pub orphans: u64,
}

const BATCH: u32 = 200;

/// Which uploads a pass of the collector takes.
#[derive(Clone, Copy)]
enum Due {
    /// Ready or not, used by no message.
    Unattached,
    /// Never completed.
    Pending,
}

impl MediaService {
    /// One collection, as of `now_ms`.
    pub async fn collect(&self, now_ms: i64) -> Result<Collected, MediaError> {
        let mut collected = Collected::default();
        let unused = now_ms - (self.settings.unattached_ttl_secs as i64) * 1000;
        collected.unattached += self.delete_rows(Due::Unattached, unused).await?;
        // Uploads never completed (a presigned URL never used, a crash
        // mid-upload) go once no request can still be finishing them.
        let abandoned = now_ms
            - ((self.settings.presign_ttl_secs + self.settings.upload_timeout_secs) as i64) * 1000
            - (self.settings.orphan_grace_secs as i64) * 1000;
        collected.unattached += self.delete_rows(Due::Pending, abandoned).await?;
        collected.orphans = self.collect_orphans(now_ms).await?;
        self.clean_spool().await;
        self.admission.prune();
        let count = |what: &str, n: u64| {
            self.stats
                .collected
                .get_or_create(&CollectedLabels {
                    what: what.to_owned(),
                })
                .inc_by(n)
        };
        count("unattached", collected.unattached);
        count("orphan", collected.orphans);
        if collected != Collected::default() {
            tracing::info!(
                unattached = collected.unattached,
                orphans = collected.orphans,
                "media collected"
            );
        }
        Ok(collected)
    }

    /// Deletes the rows (then the objects) of uploads due before `before_ms`.
    async fn delete_rows(&self, due: Due, before_ms: i64) -> Result<u64, MediaError> {
        let mut deleted = 0;
        loop {
            let rows = match due {
                Due::Unattached => self.store.unattached_media(before_ms, BATCH).await?,
                Due::Pending => self.store.pending_media(before_ms, BATCH).await?,
            };
            let done = rows.len() < BATCH as usize;
            for record in rows {
                // The row first: a send that attaches it meanwhile wins, and
                // its objects stay.
                if self.store.delete_unattached_media(record.id).await? {
                    self.delete_objects(record.id).await?;
                    deleted += 1;
                }
            }
            if done {
                return Ok(deleted);
            }
        }
    }

    async fn collect_orphans(&self, now_ms: i64) -> Result<u64, MediaError> {
        let grace = now_ms - (self.settings.orphan_grace_secs as i64) * 1000;
        let mut old: BTreeSet<Uuid> = BTreeSet::new();
        let mut uploads: BTreeSet<Uuid> = BTreeSet::new();
        for top in ["media", "uploads"] {
            let mut listing = self.objects.store.list(Some(&Path::from(top)));
            while let Some(meta) = listing.next().await {
                let meta = match meta {
                    Ok(meta) => meta,
                    // Nothing stored under it yet (a fresh local folder).
                    Err(object_store::Error::NotFound { .. }) => break,
                    Err(e) => return Err(e.into()),
                };
                if meta.last_modified.timestamp_millis() < grace
                    && let Some(id) = id_of(&meta.location)
                {
                    old.insert(id);
                    if top == "uploads" {
                        uploads.insert(id);
                    }
                }
            }
        }
        let ids: Vec<Uuid> = old.into_iter().collect();
        let known: BTreeSet<Uuid> = self.store.existing_media(&ids).await?.into_iter().collect();
        let mut deleted = 0;
        for id in ids.into_iter().filter(|id| !known.contains(id)) {
            self.delete_objects(id).await?;
            deleted += 1;
        }
        // A presigned upload's object outlives its completion when the
        // client PUT again (the URL stays valid until it expires).
        for id in uploads {
            if known_ready(&*self.store, id).await? {
                match self.objects.store.delete(&upload_path(id)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes spool files left by a process that died mid-upload (a live
    /// upload's file is younger than the upload timeout; twice that is safe
    /// even with several processes sharing the folder).
    async fn clean_spool(&self) {
        let max_age = self.settings.upload_timeout() * 2;
        let Ok(mut entries) = tokio::fs::read_dir(&self.settings.spool_path).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let old = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if old && tokio::fs::remove_file(entry.path()).await.is_ok() {
                tracing::info!(path = %entry.path().display(), "removed a stale spool file");
            }
        }
    }

    /// Collects every `media.collect_every_secs` until `shutdown` turns true.
    pub async fn run_collector(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let every = Duration::from_secs(self.settings.collect_every_secs.max(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = self.collect(now_ms()).await {
                tracing::warn!(error = %e, "media collection failed; retried next round");
            }
        }
    }
}

/// Whether `id`'s row exists and is ready (its upload object is then spent).
async fn known_ready(store: &dyn iyagi_store::Storage, id: Uuid) -> Result<bool, MediaError> {
    Ok(store.media(id).await?.is_some_and(|r| r.is_ready()))
}
