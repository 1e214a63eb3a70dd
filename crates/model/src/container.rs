//! What a container driver needs of a cartridge beyond its image and command: CPU and
//! memory limits and volumes, with their parsing. Pure.
//!
//! Limits are written as Kubernetes writes them (`cpu: "500m"` or `"0.5"`, `memory:
//! "256Mi"`, `"1G"`, `"512m"`), since Apache Stratos 4.1 cartridges carry them as the
//! `KUBERNETES_CONTAINER_CPU` / `KUBERNETES_CONTAINER_MEMORY` properties.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{IaasProvider, Problems};

/// 4.1's property names for the limits (on the iaasProvider or the cartridge).
pub const CPU_PROPERTY: &str = "KUBERNETES_CONTAINER_CPU";
pub const MEMORY_PROPERTY: &str = "KUBERNETES_CONTAINER_MEMORY";

/// A host directory (or named volume) mounted into every member's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// An absolute host path, or the name of a Docker volume.
    pub source: String,
    /// Where it appears in the container (absolute).
    pub target: String,
    /// Mounted read-only unless `false`.
    #[serde(default = "yes", deserialize_with = "crate::lenient::bool")]
    pub read_only: bool,
}

fn yes() -> bool {
    true
}

/// A member's limits, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Billionths of a CPU (Docker's `NanoCpus`): 500000000 is half a core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<i64>,
}

/// CPUs as Kubernetes writes them: `2`, `0.5`, `500m`.
pub fn parse_cpu(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let nano = if let Some(milli) = t.strip_suffix('m') {
        let m: u64 = milli.parse().map_err(|_| format!("{text:?} is not a CPU amount (e.g. 0.5, 2, 500m)"))?;
        m.checked_mul(1_000_000).ok_or_else(|| format!("{text:?} is too large"))?
    } else {
        let cpus: f64 = t.parse().map_err(|_| format!("{text:?} is not a CPU amount (e.g. 0.5, 2, 500m)"))?;
        if !cpus.is_finite() || !(0.0..=1024.0).contains(&cpus) {
            return Err(format!("{text:?} is not a CPU amount between 0.001 and 1024"));
        }
        (cpus * 1e9).round() as u64
    };
    if nano < 1_000_000 {
        return Err(format!("{text:?} is less than 0.001 CPU"));
    }
    i64::try_from(nano).map_err(|_| format!("{text:?} is too large"))
}

/// Memory as Kubernetes (`256Mi`, `1Gi`, `1G`, `1e9`) or Docker (`512m`, `1g`) writes it.
pub fn parse_memory(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a memory size (e.g. 256Mi, 1Gi, 512m, 1G)");
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let factor: f64 = match unit {
        "" | "b" | "B" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" | "kb" | "KB" => 1024.0,
        "Mi" | "m" | "mb" | "MB" => 1024.0 * 1024.0,
        "Gi" | "g" | "gb" | "GB" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = number * factor;
    // Docker refuses less than 6 MiB; say so here rather than at the member's start.
    if !bytes.is_finite() || bytes < 6.0 * 1024.0 * 1024.0 {
        return Err(format!("{text:?} is less than 6Mi, the least Docker accepts"));
    }
    if bytes > i64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as i64)
}

impl IaasProvider {
    /// The limits as written: the iaasProvider's `cpu`/`memory` fields, else its 4.1
    /// properties, else the cartridge's 4.1 properties. Each with the field path it came from.
    pub fn limit_texts<'a>(
        &'a self,
        at: &str,
        cartridge_props: &'a [crate::Property],
    ) -> [(Option<&'a str>, String); 2] {
        let pick = |field: &'a Option<String>, name: &str, prop: &str| -> (Option<&'a str>, String) {
            if let Some(v) = field.as_deref() {
                return (Some(v), format!("{at}.{name}"));
            }
            if let Some(i) = self.property.iter().position(|p| p.name == prop) {
                return (Some(self.property[i].value.as_str()), format!("{at}.property[{i}].value"));
            }
            match cartridge_props.iter().position(|p| p.name == prop) {
                Some(i) => (Some(cartridge_props[i].value.as_str()), format!("property[{i}].value")),
                None => (None, String::new()),
            }
        };
        [pick(&self.cpu, "cpu", CPU_PROPERTY), pick(&self.memory, "memory", MEMORY_PROPERTY)]
    }

    /// The parsed limits; validation reported any that do not parse, which count as none here.
    pub fn limits(&self, cartridge_props: &[crate::Property]) -> Limits {
        let [(cpu, _), (memory, _)] = self.limit_texts("", cartridge_props);
        Limits {
            nano_cpus: cpu.and_then(|c| parse_cpu(c).ok()),
            memory_bytes: memory.and_then(|m| parse_memory(m).ok()),
        }
    }

    /// Checks the limits this iaasProvider writes (the cartridge's own properties are
    /// checked once, by [`check_limit_properties`]) and its volumes.
    pub(crate) fn validate_container(&self, at: &str, p: &mut Problems) {
        let [(cpu, cpu_at), (memory, memory_at)] = self.limit_texts(at, &[]);
        if let Some(Err(e)) = cpu.map(parse_cpu) {
            p.push(cpu_at, e);
        }
        if let Some(Err(e)) = memory.map(parse_memory) {
            p.push(memory_at, e);
        }
        let mut targets = std::collections::HashSet::new();
        for (i, v) in self.volumes.iter().enumerate() {
            let vat = format!("{at}.volumes[{i}]");
            if v.source.trim().is_empty() {
                p.push(format!("{vat}.source"), "must not be empty");
            } else if !v.source.starts_with('/')
                && !v.source.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                p.push(format!("{vat}.source"), "must be an absolute host path or a volume name");
            }
            if !v.target.starts_with('/') {
                p.push(format!("{vat}.target"), "must be an absolute path in the container");
            } else if v.target == "/" || v.target.starts_with(crate::container::RESERVED_TARGET) {
                p.push(format!("{vat}.target"), format!("{:?} is the platform's", v.target));
            } else if !targets.insert(v.target.as_str()) {
                p.push(format!("{vat}.target"), format!("{:?} is mounted twice", v.target));
            }
        }
    }
}

/// Checks 4.1's limit properties on the cartridge itself.
pub(crate) fn check_limit_properties(props: &[crate::Property], p: &mut Problems) {
    for (i, prop) in props.iter().enumerate() {
        let parsed = match prop.name.as_str() {
            CPU_PROPERTY => parse_cpu(&prop.value).map(drop),
            MEMORY_PROPERTY => parse_memory(&prop.value).map(drop),
            _ => continue,
        };
        if let Err(e) = parsed {
            p.push(format!("property[{i}].value"), e);
        }
    }
}

/// Where the platform mounts the agent in a member's container; no volume may go there.
pub const RESERVED_TARGET: &str = "/.stratos";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus() {
        assert_eq!(parse_cpu("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpu("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpu("250m"), Ok(250_000_000));
        assert!(parse_cpu("half").unwrap_err().contains("not a CPU amount"));
        assert!(parse_cpu("0").is_err());
        assert!(parse_cpu("-1").is_err());
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory("256Mi"), Ok(256 << 20));
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert_eq!(parse_memory("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory("1Gi"), Ok(1 << 30));
        assert_eq!(parse_memory("67108864"), Ok(64 << 20));
        assert!(parse_memory("lots").unwrap_err().contains("not a memory size"));
        assert!(parse_memory("1Mi").unwrap_err().contains("6Mi"));
        assert!(parse_memory("12Qi").is_err());
    }
}
