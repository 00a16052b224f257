use std::sync::Arc;

use iyagi_auth::AuthService;
use iyagi_chat::ChatService;
use iyagi_store::Storage;

use crate::hooks::TestHooks;
use crate::metrics::Metrics;
use crate::settings::Settings;

/// Handles shared by every request. Cheap to clone; no globals anywhere.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Storage>,
    pub auth: Arc<AuthService>,
    pub metrics: Arc<Metrics>,
    pub chat: Arc<ChatService>,
    /// Turns true when the server begins shutting down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Pause points for tests (none in production).
    pub hooks: Arc<TestHooks>,
}
