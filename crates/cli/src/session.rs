//! `stratos login`, `stratos logout`, `stratos whoami`.

use std::io::{IsTerminal, Read};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use reqwest::Method;
use serde_json::json;
use stratos_model::duration::{self, VALUE_NAME as DURATION};

use crate::client::{ApiArgs, Client};
use crate::credentials::ApiRecord;

#[derive(Args)]
pub struct LoginArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The user name.
    #[arg(long, short)]
    user: String,
    /// Read the password from standard input (its first line) instead of asking.
    #[arg(long)]
    password_stdin: bool,
    /// How long the token lives, e.g. 1h (the platform's default and limit otherwise).
    #[arg(long, value_name = DURATION, value_parser = duration::positive)]
    ttl: Option<Duration>,
}

#[derive(Args)]
pub struct SessionArgs {
    #[command(flatten)]
    api: ApiArgs,
}

/// The password: from standard input with `--password-stdin`, else asked on the terminal.
pub fn read_password(from_stdin: bool, prompt: &str) -> Result<String> {
    let password = if from_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the password from standard input")?;
        text.lines().next().unwrap_or("").to_owned()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).context("cannot read the password")?
    } else {
        bail!("standard input is not a terminal: pass the password with --password-stdin");
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

pub async fn login(args: LoginArgs) -> Result<()> {
    let password = read_password(args.password_stdin, &format!("password for {}: ", args.user))?;
    let client = Client::anonymous(&args.api)?;
    let mut body = json!({"username": args.user, "password": password, "description": "stratos login"});
    if let Some(ttl) = args.ttl {
        body["ttlSeconds"] = json!(ttl.as_secs().max(1));
    }
    let answer = client
        .call(Method::POST, "/api/tokens", Some((body.to_string(), "application/json")))
        .await
        .with_context(|| format!("logging in to {} as {:?}", client.base(), args.user))?
        .unwrap_or_default();
    let token = answer["token"].as_str().context("the API answered no token")?.to_owned();
    let mut record = ApiRecord::load(&args.api.api);
    record.token = Some(token);
    if let Some(f) = &args.api.tls_fingerprint {
        record.tls_fingerprint = Some(f.clone());
    }
    if let Some(ca) = &args.api.ca_cert {
        record.ca_cert = Some(std::fs::canonicalize(ca).unwrap_or_else(|_| ca.clone()));
    }
    let file = record.save()?;
    let expires = answer["expiresAt"].as_u64().unwrap_or(0);
    let hours = expires.saturating_sub(stratos_bus::now_millis()) / 3_600_000;
    println!(
        "logged in to {} as {:?} ({}); token saved in {} (0600), valid for {hours} h",
        client.base(),
        args.user,
        answer["role"].as_str().unwrap_or("?"),
        file.display()
    );
    Ok(())
}

pub async fn logout(args: SessionArgs) -> Result<()> {
    let mut record = ApiRecord::load(&args.api.api);
    let Some(token) = record.token.clone() else {
        println!("not logged in to {} (no saved login token)", args.api.api);
        return Ok(());
    };
    let client = Client::new(&ApiArgs { token: Some(token), ..args.api.clone() })?;
    let revoked = client.call(Method::DELETE, "/api/tokens/current", None).await;
    record.token = None;
    record.save()?;
    match revoked {
        Ok(_) => println!("logged out of {}: the token is revoked and forgotten", client.base()),
        Err(e) => println!("logged out of {}: the token is forgotten (revoking it failed: {e:#})", client.base()),
    }
    Ok(())
}

pub async fn whoami(args: SessionArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let me = client.call(Method::GET, "/api/tokens/current", None).await?.unwrap_or_default();
    println!(
        "{} ({}) of tenant {} at {}",
        me["username"].as_str().unwrap_or("?"),
        me["role"].as_str().unwrap_or("?"),
        me["tenantDomain"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{} (the platform's)", me["tenantId"])),
        client.base()
    );
    Ok(())
}
