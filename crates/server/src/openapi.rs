//! The OpenAPI document, generated from the handlers' annotations and the
//! protocol types; served at `/v1/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "iyagi", description = "iyagi chat backend HTTP API. Errors are `{\"code\", \"message\"}`; codes are listed in docs/protocol.md."),
    paths(
        routes::ops::healthz,
        routes::ops::readyz,
        routes::metrics::metrics,
        routes::ops::openapi,
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
        crate::ws::upgrade,
    ),
    components(schemas(iyagi_protocol::ErrorBody, iyagi_protocol::ErrorCode)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "accounts and tokens"),
        (name = "devices", description = "the caller's devices"),
        (name = "rooms", description = "chat rooms, members, history, presence"),
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
