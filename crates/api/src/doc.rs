//! The parts of the OpenAPI document that are not a handler's own: its description, the
//! bearer scheme, and the shapes of answers whose Rust types are generated from WIT.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The document's frame; paths come from the annotated handlers (see `documented`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latch",
        description = "Just-in-time access connector. Every route but /v1/openapi.json needs \
                       `Authorization: Bearer <token>` (`latch token create NAME`). Errors are \
                       `{\"error\": message}`; the status says whose move it is: 400 the \
                       request, 403 a refusal (policy, or the integration), 404 unknown, 409 \
                       the grant's state, 500 the connector or its configuration, 502 a \
                       server, 504 a deadline."
    ),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
pub(super) struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// An error answer.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorBody {
    /// What went wrong, and what to do.
    pub error: String,
}

/// One integration of the connector.
#[derive(Serialize, ToSchema)]
pub(super) struct IntegrationInfo {
    pub name: String,
    /// The pinned guest's sha256.
    pub guest_sha256: String,
    /// The contract version the guest was built against.
    pub contract: String,
    pub max_duration_secs: u64,
    /// The permission a request that names none asks for.
    pub default_permission: String,
}

/// A resource, as a guest's discovery lists it (the WIT `resource` record).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documents a shape; the answer is the generated type
pub(super) struct ResourceDoc {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// `[key, value]` pairs.
    pub tags: Vec<(String, String)>,
    pub permissions: Vec<String>,
}
