//! One module per area; each exposes `router()`.

pub mod auth;
pub mod devices;
pub mod ops;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(ops::router())
        .merge(auth::router())
        .merge(devices::router())
}
