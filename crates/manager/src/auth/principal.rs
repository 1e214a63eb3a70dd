//! The caller of a request: who, for which tenant, with which role.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// What a user may do. Roles are ordered: each may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads its tenant's definitions, applications, members and history.
    Viewer,
    /// Also writes its tenant's policies and applications, deploys and undeploys.
    Developer,
    /// Also manages its tenant's users and its own cartridges and network partitions.
    TenantAdmin,
    /// Everything: platform definitions, tenants, every user; a member of the super tenant only.
    PlatformAdmin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Developer, Role::TenantAdmin, Role::PlatformAdmin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::TenantAdmin => "tenant-admin",
            Role::PlatformAdmin => "platform-admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The authenticated caller, set by [`authenticate`](super::authenticate) on every
/// request but the public ones. Handlers take it as an extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub tenant_id: i64,
    pub role: Role,
    /// The id (not the secret) of the token the request came with.
    pub token_id: String,
}

impl Principal {
    pub fn is_platform_admin(&self) -> bool {
        self.role == Role::PlatformAdmin
    }

    /// Developers and above: writes to the tenant's policies and applications, deploys.
    pub fn require_write(&self) -> Result<(), ApiError> {
        self.require(Role::Developer, "change anything")
    }

    /// Tenant admins and platform admins: users, the tenant's own cartridges and partitions.
    pub fn require_tenant_admin(&self, what: &str) -> Result<(), ApiError> {
        self.require(Role::TenantAdmin, what)
    }

    pub fn require_platform_admin(&self, what: &str) -> Result<(), ApiError> {
        self.require(Role::PlatformAdmin, what)
    }

    fn require(&self, least: Role, what: &str) -> Result<(), ApiError> {
        if self.role >= least {
            Ok(())
        } else {
            Err(forbidden(format!("user {:?} is a {} and may not {what}; it takes a {least}", self.user, self.role)))
        }
    }
}

pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only `authenticate` puts it there; a route it let through unauthenticated
        // cannot take a Principal by mistake.
        parts.extensions.get::<Principal>().cloned().ok_or_else(super::unauthorized_missing)
    }
}
