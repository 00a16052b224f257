//! What the media path has done since start, for `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CollectedLabels {
    /// `unattached` (an upload no message used in time) or `orphan` (an
    /// object without a row).
    pub what: String,
}

fn processing_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

#[derive(Clone)]
pub struct MediaStats {
    pub uploads: Family<KindLabels, Counter>,
    pub upload_bytes: Family<KindLabels, Counter>,
    pub rejects: Family<ReasonLabels, Counter>,
    pub processing_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub collected: Family<CollectedLabels, Counter>,
}

impl Default for MediaStats {
    fn default() -> Self {
        MediaStats {
            uploads: Family::default(),
            upload_bytes: Family::default(),
            rejects: Family::default(),
            processing_seconds: Family::new_with_constructor(processing_histogram),
            collected: Family::default(),
        }
    }
}

impl MediaStats {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "media_uploads",
            "Uploads stored by this node since start, by kind",
            self.uploads.clone(),
        );
        registry.register(
            "media_upload_bytes",
            "Bytes of uploads stored by this node since start (stored originals), by kind",
            self.upload_bytes.clone(),
        );
        registry.register(
            "media_rejects",
            "Uploads refused by this node since start, by reason",
            self.rejects.clone(),
        );
        registry.register(
            "media_processing_seconds",
            "Time to decode, strip, thumbnail (images) or measure (voice) one upload",
            self.processing_seconds.clone(),
        );
        registry.register(
            "media_collected",
            "Media deleted by the collector since start: unattached uploads and orphan objects",
            self.collected.clone(),
        );
    }

    pub(crate) fn reject(&self, reason: &str) {
        self.rejects
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}
