//! One-off tasks on the local driver (`stratos application run`): the command itself,
//! with no agent, in a directory of its own under the members' root (with no
//! `member.json`, so never listed as a member), as a member's user, in its own process
//! group; the group is killed and the directory removed once the command ends or
//! whoever reads its output goes away.

use std::process::Stdio;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{io, mark_platform, signal_group, LocalDriver, LocalError};
use crate::driver::{ExecStream, MemberSpec};

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
        let mut output = crate::exec::relay(child);
        let (tx, rx) = mpsc::channel(64);
        let member_id = spec.member_id.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    item = output.recv() => match item {
                        Some(item) => {
                            if tx.send(item).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    () = tx.closed() => break,
                }
            }
            // Dropping `output` kills the command if it still runs; whatever it left
            // behind in its group goes too.
            drop(output);
            signal_group(pgid, libc::SIGKILL);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(member_id = %member_id, dir = %dir.display(), error = %e, "cannot remove the task's directory");
            }
            info!(member_id = %member_id, "task ended and removed");
        });
        Ok(rx)
    }
}
