//! iyagi's HTTP (and, later, WebSocket) server.
//!
//! [`Application::build`] turns [`Settings`] into a bound, ready server:
//! it opens storage (running migrations), builds the services, and binds the
//! listener, so callers (the binary, the tests) learn the real port before
//! serving. Handlers are thin: parse the request, call a service, map the
//! result; every error goes through [`error::ApiError`].

mod admin;
mod body;
pub mod error;
mod extract;
pub mod hooks;
mod listener;
mod metrics;
mod openapi;
mod revocations;
mod routes;
mod secret;
pub mod settings;
mod startup;
mod state;
mod ws;

pub use admin::grant_role;
pub use iyagi_protocol::moderation::StaffRole;
pub use openapi::ApiDoc;
pub use settings::{
    BusBackend, BusSettings, DatabaseSettings, LogFormat, LogSettings, MetricsSettings,
    SecretString, SecretUrl, ServerSettings, SessionBackend, SessionSettings, Settings, WsSettings,
};
pub use startup::{Application, BuildOptions, StartupError};
pub use state::AppState;
