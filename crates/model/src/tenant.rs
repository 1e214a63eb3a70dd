use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Problems;

/// An organisation using the platform; every record it owns carries its `tenant_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub tenant_id: i64,
    /// The tenant's domain, unique (`example.com`).
    pub tenant_domain: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub created_at: u64,
}

fn yes() -> bool {
    true
}

impl Tenant {
    pub fn validate(&self, p: &mut Problems) {
        if !crate::is_host_name(&self.tenant_domain) {
            p.push("tenantDomain", format!("{:?} is not a domain name", self.tenant_domain));
        } else if self.tenant_domain.chars().all(|c| c.is_ascii_digit()) {
            // `/t/<tenant domain or id>/` routes by either: a domain of digits would
            // take the path of the tenant with that id.
            p.push("tenantDomain", format!("{:?} reads as a tenant id; a domain needs a letter", self.tenant_domain));
        }
        if let Some(email) = &self.email {
            if !email.contains('@') {
                p.push("email", format!("{email:?} is not an email address"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(domain: &str) -> Problems {
        let mut p = Problems::default();
        Tenant { tenant_id: 1, tenant_domain: domain.into(), active: true, email: None, created_at: 0 }
            .validate(&mut p);
        p
    }

    #[test]
    fn a_domain_of_digits_would_take_another_tenant_s_path_and_is_refused() {
        // `/t/2/` routes to tenant 2 by id: a tenant with domain "2" would take it.
        assert_eq!(problems("2").0.len(), 1);
        assert_eq!(problems("2").0[0].path, "tenantDomain");
        assert!(problems("acme2.com").is_empty());
        assert!(problems("2acme").is_empty());
    }
}
