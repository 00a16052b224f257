//! One module per area; each exposes `router()`.

pub mod auth;
pub mod devices;
pub mod media;
pub mod metrics;
pub mod moderation;
pub mod notifications;
pub mod ops;
pub mod push;
pub mod reports;
pub mod rooms;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(ops::router())
        .merge(auth::router())
        .merge(devices::router())
        .merge(rooms::router())
        .merge(push::router())
        .merge(notifications::router())
        .merge(media::router())
        .merge(reports::router())
        .merge(moderation::router())
        .merge(crate::ws::router())
}
