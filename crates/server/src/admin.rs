//! Administration from the command line (`iyagi admin ...`), against the
//! configured database, with no server running needed.

use std::time::Duration;

use iyagi_moderation::StaffService;
use iyagi_protocol::moderation::StaffRole;
use iyagi_store::StoreOptions;
use uuid::Uuid;

use crate::settings::Settings;

/// Gives `username` the staff `role`; audited as done by the command line.
pub async fn grant_role(
    settings: &Settings,
    username: &str,
    role: StaffRole,
) -> Result<Uuid, String> {
    let options = StoreOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(settings.database.acquire_timeout_secs.max(1)),
    };
    let store = iyagi_store::open(settings.database.url.expose(), &options)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    let granted = StaffService::new(store.clone())
        .grant_by_username(username, role)
        .await
        .map_err(|e| format!("{username}: {e}"));
    store.close().await;
    granted
}
