//! `stratos tenant add|list|show|quota|activate|deactivate`.

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use crate::client::{ApiArgs, Client};
use crate::output::{print_one, Output};

#[derive(Args)]
pub struct TenantArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    action: TenantAction,
}

#[derive(Subcommand)]
enum TenantAction {
    /// Create a tenant (platform admins): an organisation with its own users and applications.
    Add {
        /// The tenant's domain, unique: `example.com`.
        domain: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// List tenants (a tenant's user sees its own).
    List,
    /// Deactivate a tenant (platform admins): its users can no longer log in and their
    /// tokens are refused; its applications keep running.
    Deactivate { domain: String },
    /// Activate a deactivated tenant again (platform admins).
    Activate { domain: String },
    /// Show a tenant's quota, or set it (platform admins) with --max-members / --max-clusters.
    Quota {
        domain: String,
        /// The most members its deployed clusters may have together (cartridgeMax summed).
        #[arg(long)]
        max_members: Option<u32>,
        /// The most clusters it may have deployed.
        #[arg(long)]
        max_clusters: Option<u32>,
    },
}

pub async fn run(args: TenantArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    match args.action {
        TenantAction::Add { domain, email } => {
            let body = json!({"tenantDomain": domain, "email": email});
            let tenant =
                client.call(Method::POST, "/api/tenants", Some((body.to_string(), "application/json"))).await?;
            match args.output {
                Output::Table => println!("tenant {domain:?} added (id {})", tenant.unwrap_or_default()["tenantId"]),
                output => print_one(&tenant.unwrap_or_default(), output),
            }
        }
        TenantAction::Deactivate { domain } => set_active(&client, &domain, "deactivate", args.output).await?,
        TenantAction::Activate { domain } => set_active(&client, &domain, "activate", args.output).await?,
        TenantAction::List => {
            let tenants = client.call(Method::GET, "/api/tenants", None).await?.unwrap_or_default();
            if args.output != Output::Table {
                print_one(&tenants, args.output);
                return Ok(());
            }
            let mut table = crate::output::table(vec!["ID", "DOMAIN", "ACTIVE", "EMAIL"]);
            for t in tenants.as_array().into_iter().flatten() {
                crate::output::add_row(
                    &mut table,
                    vec![
                        t["tenantId"].to_string(),
                        t["tenantDomain"].as_str().unwrap_or("?").to_string(),
                        t["active"].to_string(),
                        t["email"].as_str().unwrap_or("").to_string(),
                    ],
                );
            }
            println!("{table}");
        }
        TenantAction::Quota { domain, max_members, max_clusters } => {
            let path = format!("/api/tenants/{domain}/quota");
            let quota = if max_members.is_some() || max_clusters.is_some() {
                let body = json!({"maxMembers": max_members, "maxClusters": max_clusters});
                let mut body = body.as_object().cloned().unwrap_or_default();
                body.retain(|_, v| !v.is_null());
                let text = serde_json::Value::Object(body).to_string();
                client.call(Method::PUT, &path, Some((text, "application/json"))).await?
            } else {
                client.call(Method::GET, &path, None).await?
            }
            .unwrap_or_default();
            match args.output {
                Output::Table => println!(
                    "tenant {domain:?}: at most {} members and {} clusters deployed",
                    quota["maxMembers"], quota["maxClusters"]
                ),
                output => print_one(&quota, output),
            }
        }
    }
    Ok(())
}

/// `POST /api/tenants/{domain}/{verb}` (activate or deactivate), and what it did.
async fn set_active(client: &Client, domain: &str, verb: &str, output: Output) -> Result<()> {
    let tenant = client.call(Method::POST, &format!("/api/tenants/{domain}/{verb}"), None).await?;
    match output {
        Output::Table => println!("tenant {domain:?} {verb}d"),
        output => print_one(&tenant.unwrap_or_default(), output),
    }
    Ok(())
}
