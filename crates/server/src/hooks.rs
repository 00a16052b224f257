//! Pause points for tests that must force a race window open (a message
//! committed exactly while a catch-up is being served, say). Production
//! sets none; an unset hook costs one branch.

use std::sync::Arc;

use futures::future::BoxFuture;

/// Called at its point; the server waits for the returned future.
pub type Pause = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Clone, Default)]
pub struct TestHooks {
    /// In `sync`, after a room's latest seq was read and before its replay.
    pub sync_after_latest: Option<Pause>,
}

pub(crate) async fn pause(hook: &Option<Pause>) {
    if let Some(hook) = hook {
        hook().await;
    }
}
