use std::sync::Arc;

use iyagi_auth::AuthService;
use iyagi_bus::{Bus, Hub};
use iyagi_chat::ChatService;
use iyagi_media::MediaService;
use iyagi_push::PushService;
use iyagi_session::SessionStore;
use iyagi_store::Storage;

use crate::hooks::TestHooks;
use crate::metrics::Metrics;
use crate::settings::Settings;

/// Handles shared by every request and connection. Cheap to clone; no
/// globals anywhere.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Storage>,
    pub auth: Arc<AuthService>,
    pub metrics: Arc<Metrics>,
    pub chat: Arc<ChatService>,
    /// Notification records, push registrations and preferences.
    pub push: Arc<PushService>,
    /// Uploads, their processing, downloads and the collector.
    pub media: Arc<MediaService>,
    /// This node's WebSocket connections.
    pub hub: Arc<Hub>,
    /// Delivery to every node's connections, and whether events may have been lost.
    pub bus: Arc<dyn Bus>,
    /// Who is connected, who views which room.
    pub sessions: Arc<dyn SessionStore>,
    /// Turns true when the server begins shutting down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Pause points for tests (none in production).
    pub hooks: Arc<TestHooks>,
}
