//! Closing the connections of device sessions that stopped being valid.
//!
//! The fast path is an event: a logout (or a replaced login, a removed
//! device, a reused refresh token) closes its connections on this node and
//! tells every other node through the bus. Events can be lost, so no
//! connection rests on them alone: every node also re-checks the sessions
//! of all its open connections against the database, every
//! `bus.session_recheck_secs`, every `bus.outage_recheck_ms` while the bus
//! is disconnected, and at once when the bus says events may have been
//! lost (a disconnect, a reconnect, a subscriber that fell behind).

use std::collections::HashSet;
use std::time::Duration;

use iyagi_auth::Revocation;
use iyagi_protocol::ws::close;

use crate::state::AppState;

/// Closes, on every node, the open connections of sessions this node
/// revoked.
pub(crate) async fn close_revoked_connections(state: AppState) {
    let mut revocations = state.auth.subscribe_revocations();
    loop {
        match revocations.recv().await {
            Ok(Revocation::Session {
                user_id,
                session_id,
            }) => {
                state
                    .bus
                    .close_sessions(user_id, Some(session_id), close::SESSION_REVOKED);
            }
            Ok(Revocation::AllSessionsOf { user_id }) => {
                state
                    .bus
                    .close_sessions(user_id, None, close::SESSION_REVOKED);
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                // The sweep below catches what these would have closed.
                tracing::warn!(missed, "revocation events were dropped");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Re-checks the device session of every open connection of this node
/// against the database and closes (4002) those that were revoked.
pub(crate) async fn recheck_open_sessions(state: AppState) {
    let settings = &state.settings.bus;
    let steady = Duration::from_secs(settings.session_recheck_secs.max(1));
    let outage = Duration::from_millis(settings.outage_recheck_ms.max(100));
    let mut bus = state.bus.state();
    loop {
        let every = if bus.borrow().connected {
            steady
        } else {
            outage
        };
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            changed = bus.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "re-checking open sessions failed; trying again");
        }
    }
}

async fn sweep(state: &AppState) -> Result<(), iyagi_auth::AuthError> {
    let hub = &state.hub;
    let open = hub.sessions();
    if open.is_empty() {
        return Ok(());
    }
    let ids: Vec<_> = open.iter().map(|(_, session)| *session).collect();
    let live: HashSet<_> = state.auth.live_sessions(&ids).await?.into_iter().collect();
    for (user, session) in open {
        if !live.contains(&session) {
            tracing::info!(%user, %session, "closing a connection of a revoked session");
            hub.close_sessions(user, Some(session), close::SESSION_REVOKED);
        }
    }
    Ok(())
}
