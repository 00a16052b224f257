//! What the push path has done since start, for `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts of push attempts by (provider, outcome, reason), and tokens
/// pruned by provider.
#[derive(Debug, Default)]
pub struct PushStats {
    attempts: Mutex<BTreeMap<(String, String, String), u64>>,
    pruned: Mutex<BTreeMap<String, u64>>,
    stored: Mutex<u64>,
}

impl PushStats {
    pub(crate) fn attempt(&self, provider: &str, outcome: &str, reason: &str) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        *attempts
            .entry((provider.to_owned(), outcome.to_owned(), reason.to_owned()))
            .or_default() += 1;
    }

    pub(crate) fn pruned(&self, provider: &str) {
        let mut pruned = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
        *pruned.entry(provider.to_owned()).or_default() += 1;
    }

    pub(crate) fn stored(&self, notifications: u64) {
        *self.stored.lock().unwrap_or_else(|p| p.into_inner()) += notifications;
    }

    /// ((provider, outcome, reason), count): outcome is `delivered`,
    /// `retried` or `failed`.
    pub fn attempts(&self) -> Vec<((String, String, String), u64)> {
        let attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        attempts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn pruned_tokens(&self) -> Vec<(String, u64)> {
        let pruned = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
        pruned.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn notifications_stored(&self) -> u64 {
        *self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }
}
