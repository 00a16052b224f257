//! The OpenAPI document, generated from the handlers' annotations and the
//! protocol types; served at `/v1/openapi.json`.

use axum::Json;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;
use crate::state::AppState;

/// `GET /v1/openapi.json`. Served from here rather than from `routes` so
/// that the document (which lists the routes) and the routes do not
/// depend on each other.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(openapi))
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "iyagi", description = "iyagi chat backend HTTP API. Errors are `{\"code\", \"message\"}`; codes are listed in docs/protocol.md."),
    paths(
        routes::ops::healthz,
        routes::ops::readyz,
        routes::metrics::metrics,
        openapi,
        routes::ops::jwks,
        routes::auth::register,
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::logout_all,
        routes::auth::me,
        routes::devices::list,
        routes::devices::remove,
        routes::rooms::list,
        routes::rooms::create_group,
        routes::rooms::open_direct,
        routes::rooms::detail,
        routes::rooms::add_member,
        routes::rooms::remove_member,
        routes::rooms::history,
        routes::rooms::presence,
        routes::rooms::user_by_name,
        routes::push::list,
        routes::push::register_fcm,
        routes::push::unregister_fcm,
        routes::push::register_apns,
        routes::push::unregister_apns,
        routes::push::register_webpush,
        routes::push::unregister_webpush,
        routes::push::vapid_public_key,
        routes::push::preferences,
        routes::push::set_preferences,
        routes::push::mute,
        routes::push::unmute,
        routes::media::upload,
        routes::media::create_upload,
        routes::media::complete,
        routes::media::info,
        routes::media::content,
        routes::media::thumbnail,
        routes::reports::file,
        routes::reports::mine,
        routes::moderation::queue,
        routes::moderation::audit,
        routes::moderation::set_role,
        routes::notifications::list,
        routes::notifications::unread,
        routes::notifications::mark_read,
        routes::notifications::mark_all_read,
        crate::ws::upgrade,
    ),
    components(schemas(iyagi_protocol::ErrorBody, iyagi_protocol::ErrorCode)),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "auth", description = "accounts and tokens"),
        (name = "devices", description = "the caller's devices"),
        (name = "rooms", description = "chat rooms, members, history, presence"),
        (name = "push", description = "push registrations, preferences, room mutes"),
        (name = "notifications", description = "the notification inbox"),
        (name = "realtime", description = "the WebSocket gateway; frames in docs/protocol.md"),
        (name = "ops", description = "health, metrics, documents"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The answers every operation can give, documented once rather than on
/// each handler: a route with a bearer token can answer 401; one with a
/// JSON body can refuse the body (400, 408, 413, 415, 422); every route
/// but the liveness probe can find a backend unreachable (503), and any
/// can fail (500). A handler's own description of a status wins.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let mut common: Vec<(&str, &str)> = vec![(
                    "500",
                    "`internal`: a bug; the cause is in the server log under the request id",
                )];
                if path != "/healthz" {
                    common.push((
                        "503",
                        "`unavailable`: a backend is unreachable; retry later",
                    ));
                }
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    common.push((
                        "401",
                        "`unauthenticated`: missing, malformed, expired or revoked access token",
                    ));
                }
                if operation.request_body.is_some() {
                    common.extend([
                        ("400", "`malformed_json`, `invalid_request`: not a JSON object of the documented shape"),
                        ("408", "`request_timeout`: the body did not arrive in time"),
                        ("413", "`payload_too_large`"),
                        ("415", "`unsupported_media_type`: the body is not `application/json`"),
                        ("422", "`validation_failed`: a field breaks a documented rule"),
                    ]);
                }
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    common.push((
                        "400",
                        "`invalid_request`: a path or query parameter is malformed",
                    ));
                }
                for (status, description) in common {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}
