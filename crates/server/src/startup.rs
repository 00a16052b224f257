//! Building and running the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::{Router, middleware};
use iyagi_auth::{AuthError, AuthService};
use iyagi_bus::{Bus, Hub, LocalBus, NatsBus, NatsBusError, NodeBudget};
use iyagi_chat::{ChatLimits, ChatService, PushNotifier};
use iyagi_protocol::ErrorCode;
use iyagi_protocol::ws::close;
use iyagi_push::{OutboxWorker, Provider, PushService, PushStats};
use iyagi_session::{MemorySessionStore, RedisSessionStore, SessionError, SessionStore};
use iyagi_store::{StoreError, StoreOptions};
use thiserror::Error;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::body;
use crate::error::ApiError;
use crate::hooks::TestHooks;
use crate::listener::{self, ListenLimits};
use crate::metrics::{self, Metrics};
use crate::openapi;
use crate::revocations;
use crate::routes;
use crate::settings::{BusBackend, SessionBackend, Settings};
use crate::state::AppState;

#[derive(Debug, Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Settings(String),
    #[error("cannot open storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot start the token service: {0}")]
    Auth(#[from] AuthError),
    #[error("cannot reach the session store: {0}")]
    Session(#[from] SessionError),
    #[error("cannot start the fan-out bus: {0}")]
    Bus(#[from] NatsBusError),
    #[error("cannot set up media storage: {0}")]
    Media(#[from] iyagi_media::MediaError),
    #[error("cannot set up push: {0}")]
    Push(#[from] iyagi_push::providers::ProviderSetupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A server whose storage is open and whose listener is bound.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `/metrics` on a listener of its own (`metrics.listen`).
    metrics: Option<(TcpListener, Router)>,
    state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
    /// Drains the push outbox (unless `push.worker = false`).
    worker: Option<OutboxWorker>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the embedding program (the binary, a test) plugs in.
#[derive(Clone, Default)]
pub struct BuildOptions {
    /// Where the chat rules' push decisions go; `None`: the push service
    /// (notification records, the outbox, the providers).
    pub push: Option<Arc<dyn PushNotifier>>,
    /// Providers to use instead of the configured ones, by kind.
    pub providers: Vec<Arc<dyn Provider>>,
    pub hooks: TestHooks,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        Application::build_with(settings, BuildOptions::default()).await
    }

    /// Like [`Application::build`], with the given push notifier and hooks.
    pub async fn build_with(
        settings: Settings,
        options: BuildOptions,
    ) -> Result<Application, StartupError> {
        let BuildOptions {
            push,
            providers: extra_providers,
            hooks,
        } = options;
        settings.validate().map_err(StartupError::Settings)?;
        let store_options = StoreOptions {
            max_connections: settings.database.max_connections,
            acquire_timeout: Duration::from_secs(settings.database.acquire_timeout_secs.max(1)),
        };
        let store = iyagi_store::open(settings.database.url.expose(), &store_options).await?;
        tracing::info!(backend = store.backend(), "storage ready");
        let sessions: Arc<dyn SessionStore> = match settings.session.store {
            SessionBackend::Memory => Arc::new(MemorySessionStore::new()),
            SessionBackend::Redis => Arc::new(
                RedisSessionStore::connect_with_timeout(
                    settings.session.redis_url.expose(),
                    &settings.session.redis_prefix,
                    Duration::from_millis(settings.session.redis_timeout_ms),
                )
                .await?,
            ),
        };
        let auth = Arc::new(AuthService::new(store.clone(), settings.auth.clone()).await?);
        let hub = Arc::new(Hub::with_budget(NodeBudget::new(
            settings.ws.outbound_total_bytes,
        )));
        let bus: Arc<dyn Bus> = match settings.bus.kind {
            BusBackend::Local => Arc::new(LocalBus::new(hub.clone())),
            BusBackend::Nats => Arc::new(
                NatsBus::connect(
                    settings.bus.nats_url.expose(),
                    &settings.bus.subject_prefix,
                    hub.clone(),
                )
                .await?,
            ),
        };
        let push_stats = Arc::new(PushStats::default());
        let wake = Arc::new(tokio::sync::Notify::new());
        let push_service = Arc::new(PushService::new(
            store.clone(),
            sessions.clone(),
            bus.clone(),
            push_stats.clone(),
            wake.clone(),
        ));
        let (mut providers, vapid) = iyagi_push::providers::configure(
            &settings.push,
            store.as_ref(),
            iyagi_protocol::now_ms(),
        )
        .await?;
        providers.retain(|p| !extra_providers.iter().any(|e| e.kind() == p.kind()));
        providers.extend(extra_providers);
        let worker = settings.push.worker.then(|| {
            OutboxWorker::new(
                store.clone(),
                providers,
                push_stats,
                wake,
                settings.push.worker_settings(),
            )
        });
        push_service.set_vapid_public_key(vapid.public_key().to_string());
        let notifier: Arc<dyn PushNotifier> = push.unwrap_or_else(|| push_service.clone());
        let chat = Arc::new(ChatService::new(
            store.clone(),
            sessions.clone(),
            bus.clone(),
            notifier,
            ChatLimits {
                max_replay: settings.ws.max_replay,
                presence_max_group_members: settings.ws.presence_max_group_members,
                members_cache_ttl: Duration::from_millis(settings.bus.member_cache_ttl_ms),
            },
        ));
        let media_stats = iyagi_media::MediaStats::default();
        let objects = iyagi_media::Objects::open(&settings.media)?;
        let media = Arc::new(iyagi_media::MediaService::new(
            store.clone(),
            objects,
            settings.media.clone(),
            media_stats.clone(),
        ));
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let state = AppState {
            settings: Arc::new(settings.clone()),
            store,
            auth,
            metrics: Arc::new(Metrics::with_media(&media_stats)),
            chat,
            push: push_service,
            media,
            hub,
            bus,
            sessions,
            shutdown,
            hooks: Arc::new(hooks),
        };
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.server.listen,
                source,
            })?;
        let metrics = match settings
            .metrics
            .own_listener()
            .map_err(StartupError::Settings)?
        {
            Some(addr) => {
                let own = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind { addr, source })?;
                Some((own, router(state.clone(), routes::metrics::router())))
            }
            None => None,
        };
        let api = routes::router().merge(openapi::router());
        let api = match metrics {
            Some(_) => api,
            None => api.merge(routes::metrics::router()),
        };
        if metrics.is_none()
            && settings.metrics.token.is_empty()
            && !settings.server.listen.ip().is_loopback()
        {
            tracing::warn!(
                listen = %settings.server.listen,
                "/metrics is open to anyone who reaches this address: set metrics.token or metrics.listen"
            );
        }
        let router = router(state.clone(), api);
        Ok(Application {
            listener,
            router,
            metrics,
            state,
            stop,
            worker,
        })
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        match &self.metrics {
            Some((own, _)) => own.local_addr().unwrap_or(self.local_addr()),
            None => self.local_addr(),
        }
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.settings.server.listen)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits up to
    /// `server.shutdown_grace_secs` for in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            router,
            metrics,
            state,
            stop,
            worker,
        } = self;
        let grace = Duration::from_secs(state.settings.server.shutdown_grace_secs);

        let pruner = tokio::spawn(prune_limiters(state.clone()));
        let revoker = tokio::spawn(revocations::close_revoked_connections(state.clone()));
        let sweeper = tokio::spawn(revocations::recheck_open_sessions(state.clone()));
        let collector = tokio::spawn(state.media.clone().run_collector(state.shutdown.clone()));
        let outbox = match worker {
            Some(w) => Some(w.start_background(state.shutdown.clone())?),
            None => None,
        };
        let server_settings = &state.settings.server;
        let limits = ListenLimits {
            header_read_timeout: server_settings.header_read_timeout(),
            max_connections: match server_settings.max_connections {
                0 => listener::default_max_connections(),
                configured => configured,
            },
            max_unauthenticated_per_address: server_settings.max_unauthenticated_per_address,
        };
        tracing::info!(
            max_connections = limits.max_connections,
            "accepting connections"
        );
        let server = tokio::spawn(listener::serve(
            listener,
            router,
            limits,
            state.shutdown.clone(),
        ));
        let metrics_server = metrics.map(|(own, router)| {
            tokio::spawn(listener::serve(own, router, limits, state.shutdown.clone()))
        });

        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
        // WebSocket connections close with 1001 (again below, for any that
        // registered meanwhile).
        state.hub.close_all(close::GOING_AWAY);
        pruner.abort();
        revoker.abort();
        sweeper.abort();
        collector.abort();
        if let Some(outbox) = outbox {
            // It finishes the sends in flight (each bounded by the request
            // timeout); what it had not claimed stays in the outbox.
            let _ = tokio::time::timeout(grace, outbox).await;
        }
        if let Some(metrics_server) = metrics_server {
            let _ = tokio::time::timeout(grace, metrics_server).await;
        }
        let served = match tokio::time::timeout(grace, server).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(join)) => Err(std::io::Error::other(join)),
            Err(_) => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "in-flight requests did not finish in time"
                );
                Ok(())
            }
        };
        let hub = state.hub;
        hub.close_all(close::GOING_AWAY);
        let deadline = tokio::time::Instant::now() + grace;
        // Wait for every connection's teardown (which still uses storage to
        // announce "offline"), not just for it to leave the hub: the gauge
        // rises before a connection joins the hub and falls after its teardown.
        while state.metrics.ws_connections.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        state.store.close().await;
        served
    }
}

/// `routes` with what every route gets: JSON errors for unknown routes and
/// methods, the body rules, metrics, request ids and a span per request.
fn router(state: AppState, routes: Router<AppState>) -> Router {
    let max_body = state.settings.server.max_body_bytes;
    routes
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "this route does not accept that method")
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), body::read_first))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            // The path only: query strings may carry tokens.
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

async fn prune_limiters(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.auth.limiter().prune();
    }
}
