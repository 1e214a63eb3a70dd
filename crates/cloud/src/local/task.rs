//! One-off tasks on the local driver (`stratos application run`): the command itself,
//! with no agent, in a directory of its own under the members' root (with no
//! `member.json`, so never listed as a member), as a member's user, in its own process
//! group; the group is killed (what the command left running in the background with
//! it) and the directory removed once the command ends or whoever reads its output
//! goes away.

use std::process::Stdio;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{io, mark_platform, signal_group, LocalDriver, LocalError};
use crate::driver::{ExecOutput, ExecStream, MemberSpec};

/// How long a task's last output may take to arrive once it ended.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

impl LocalDriver {
    pub(super) async fn start_task(&self, spec: &MemberSpec, command: &[String]) -> Result<ExecStream, LocalError> {
        let (program, args) = command.split_first().ok_or(LocalError::NoCommand)?;
        let program = if program == "stratos" { self.agent[0].clone() } else { program.clone() };
        let dir = self.dir(&spec.member_id);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        // `confine` keeps the platform's log of a member to itself; a task has none.
        let log = dir.join("agent.log");
        std::fs::File::create(&log).map_err(io("create", &log))?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .envs(&spec.env)
            .env("STRATOS_MEMBER_ID", &spec.member_id)
            .env("STRATOS_CLUSTER_ID", &spec.cluster_id)
            .env("STRATOS_SERVICE_NAME", &spec.service_name)
            .env("STRATOS_APP_ID", &spec.app_id)
            .env("STRATOS_TENANT_ID", spec.tenant_id.to_string())
            .env("STRATOS_NETWORK_PARTITION_ID", &spec.network_partition_id)
            .env("STRATOS_PARTITION_ID", &spec.partition_id)
            .env("STRATOS_TASK", "true")
            .env_remove("STRATOS_BUS_USERNAME")
            .env_remove("STRATOS_BUS_PASSWORD")
            .env_remove("STRATOS_BUS_PASSWORD_FILE");
        mark_platform(&mut cmd, spec);
        let identity = self.confine(&mut cmd, &dir)?;
        let child = cmd.spawn().map_err(|source| LocalError::Spawn {
            program: program.clone(),
            uid: identity.map(|i| i.uid),
            source,
        })?;
        let pgid = child.id().ok_or(LocalError::ExitedAtOnce)? as i32;
        info!(member_id = %spec.member_id, cluster_id = %spec.cluster_id, program = %program, pgid, "task started");
        let (tx, rx) = mpsc::channel(64);
        let member_id = spec.member_id.clone();
        tokio::spawn(async move {
            let mut child = child;
            let out = crate::exec::forward(child.stdout.take(), tx.clone(), ExecOutput::Stdout);
            let err = crate::exec::forward(child.stderr.take(), tx.clone(), ExecOutput::Stderr);
            let forwarding = tokio::spawn(async move { tokio::join!(out, err) });
            let status = tokio::select! {
                status = child.wait() => Some(status),
                () = tx.closed() => None,
            };
            // The task is its command: whatever it left running in its group goes with it
            // (else a background process holding its output open would hold the task).
            signal_group(pgid, libc::SIGKILL);
            if let Some(status) = status {
                let _ = tokio::time::timeout(DRAIN, forwarding).await;
                let code = status.ok().and_then(|s| s.code());
                let _ = tx.send(ExecOutput::Exit(code)).await;
            } else {
                let _ = child.kill().await;
            }
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(member_id = %member_id, dir = %dir.display(), error = %e, "cannot remove the task's directory");
            }
            info!(member_id = %member_id, "task ended and removed");
        });
        Ok(rx)
    }
}
