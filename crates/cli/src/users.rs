//! `stratos user add|list|remove`.

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use crate::client::{ApiArgs, Client};
use crate::output::{print_one, Output};

#[derive(Args)]
pub struct UserArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    action: UserAction,
}

#[derive(Subcommand)]
enum UserAction {
    /// Create a user with a role: viewer, developer, tenant-admin or platform-admin.
    /// The password is asked for (or read with --password-stdin).
    Add {
        name: String,
        #[arg(long)]
        role: String,
        /// The user's tenant (by domain); the caller's own when absent.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (a tenant admin sees its tenant's), without passwords.
    List,
    /// Remove a user; its tokens are revoked.
    Remove { name: String },
    /// Change a password: one's own (the current one is asked first) or, as an admin, a
    /// user's of its tenant. The user's other tokens are revoked.
    Passwd {
        name: String,
        /// Read the passwords from standard input: the current one (for one's own), then the new one.
        #[arg(long)]
        password_stdin: bool,
    },
}

pub async fn run(args: UserArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    match args.action {
        UserAction::Add { name, role, tenant, password_stdin } => {
            let password =
                crate::session::read_password(password_stdin, &format!("password for the new user {name}: "))?;
            let mut body = json!({"username": name, "password": password, "role": role});
            if let Some(t) = tenant {
                body["tenantDomain"] = json!(t);
            }
            client.call(Method::POST, "/api/users", Some((body.to_string(), "application/json"))).await?;
            println!("user {name:?} added");
        }
        UserAction::List => {
            let users = client.call(Method::GET, "/api/users", None).await?.unwrap_or_default();
            if args.output != Output::Table {
                print_one(&users, args.output);
                return Ok(());
            }
            let mut table = crate::output::table(vec!["USER", "TENANT", "ROLE"]);
            for u in users.as_array().into_iter().flatten() {
                crate::output::add_row(
                    &mut table,
                    vec![
                        u["username"].as_str().unwrap_or("?").to_string(),
                        u["tenantId"].to_string(),
                        u["role"].as_str().unwrap_or("?").to_string(),
                    ],
                );
            }
            println!("{table}");
        }
        UserAction::Remove { name } => {
            client.call(Method::DELETE, &format!("/api/users/{name}"), None).await?;
            println!("user {name:?} removed");
        }
        UserAction::Passwd { name, password_stdin } => {
            let me = client.call(Method::GET, "/api/tokens/current", None).await?.unwrap_or_default();
            let own = me["username"] == name.as_str();
            let mut lines = if password_stdin {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
                text.lines().map(str::to_owned).collect::<Vec<_>>().into_iter()
            } else {
                Vec::new().into_iter()
            };
            let mut ask = |prompt: &str| -> Result<String> {
                match lines.next() {
                    Some(line) if !line.is_empty() => Ok(line),
                    _ if password_stdin => anyhow::bail!("standard input lacks a line for the {prompt}"),
                    _ => crate::session::read_password(false, &format!("{prompt}: ")),
                }
            };
            let mut body = json!({});
            if own {
                body["currentPassword"] = json!(ask("current password")?);
            }
            body["password"] = json!(ask(&format!("new password for {name}"))?);
            let path = format!("/api/users/{name}/password");
            client.call(Method::PUT, &path, Some((body.to_string(), "application/json"))).await?;
            println!("password of {name:?} changed; its other tokens are revoked");
        }
    }
    Ok(())
}
