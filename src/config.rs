//! The configuration file (`phigate.toml`), read and validated once.
//!
//! Reading is two steps: serde fills [`RawConfig`], a plain mirror of the
//! file that refuses unknown keys; [`Config::from_raw`] then checks values
//! and resolves relative paths against the file's directory, reporting
//! every problem at once. Defaults are those of the product contract.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The configuration as written, with defaults filled in.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub storage: RawStorage,
    pub rules: RawRules,
    pub keys: RawKeys,
    pub auth: RawAuth,
    pub messaging: RawMessaging,
    pub delivery: RawDelivery,
    pub retention: RawRetention,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    pub tls_cert: String,
    pub tls_key: String,
    pub client_ca: String,
    pub profile: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8443".into(),
            tls_cert: "data/tls/cert.pem".into(),
            tls_key: "data/tls/key.pem".into(),
            client_ca: String::new(),
            profile: "development".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStorage {
    pub url: String,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            url: "sqlite://data/phigate.db".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRules {
    pub paths: Vec<String>,
}

impl Default for RawRules {
    fn default() -> Self {
        RawRules {
            paths: vec!["rules".into()],
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawKeys {
    pub file: String,
}

impl Default for RawKeys {
    fn default() -> Self {
        RawKeys {
            file: "data/keys.json".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAuth {
    pub tokens_file: String,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            tokens_file: "data/tokens.toml".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMessaging {
    pub max_payload_size: String,
    pub filter_mode: String,
    pub audit_enabled: bool,
}

impl Default for RawMessaging {
    fn default() -> Self {
        RawMessaging {
            max_payload_size: "1MB".into(),
            filter_mode: "fail-closed".into(),
            audit_enabled: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDelivery {
    pub max_attempts: u32,
    pub lease: String,
    pub retry_base: String,
    pub retry_max: String,
    /// Extra CA certificates (PEM) trusted for push endpoints, beside the
    /// system's roots; empty for none.
    pub ca_file: String,
}

impl Default for RawDelivery {
    fn default() -> Self {
        RawDelivery {
            max_attempts: 10,
            lease: "30s".into(),
            retry_base: "1s".into(),
            retry_max: "5m".into(),
            ca_file: String::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRetention {
    /// How long delivered and dead deliveries are kept; `"0"` or `""`
    /// keeps them forever.
    pub deliveries: String,
    /// How long audit records are kept; `""` keeps them forever.
    pub audit: String,
}

impl Default for RawRetention {
    fn default() -> Self {
        RawRetention {
            deliveries: "7d".into(),
            audit: String::new(),
        }
    }
}

/// What a filter error does to a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterMode {
    /// Block the delivery.
    FailClosed,
    /// Deliver without the failed action, and audit that.
    FailOpen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Development,
    Production,
}

/// The validated configuration: typed values, absolute paths.
#[derive(Clone, Debug)]
pub struct Config {
    /// The directory relative paths were resolved against.
    pub base_dir: PathBuf,
    pub listen: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub profile: Profile,
    pub database: PathBuf,
    pub rule_paths: Vec<PathBuf>,
    pub keys_file: PathBuf,
    pub tokens_file: PathBuf,
    pub max_payload_size: u64,
    pub filter_mode: FilterMode,
    pub audit_enabled: bool,
    pub max_attempts: u32,
    pub lease: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `delivery.ca_file`: extra roots for push endpoints.
    pub delivery_ca_file: Option<PathBuf>,
    /// `retention.deliveries`: finished deliveries older than this are
    /// purged; `None` keeps them.
    pub delivery_retention: Option<Duration>,
    /// `retention.audit`: audit records older than this are purged behind
    /// a checkpoint; `None` keeps them forever.
    pub audit_retention: Option<Duration>,
}

/// One problem with the configuration: the key it concerns and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The dotted key, such as `messaging.filter_mode`; empty for the file.
    pub key: String,
    pub message: String,
    /// The byte range in the file, when the TOML parser knew it.
    pub span: Option<std::ops::Range<usize>>,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

impl RawConfig {
    /// Parses the text of a configuration file.
    pub fn parse(text: &str) -> Result<RawConfig, ConfigProblem> {
        toml::from_str(text).map_err(|error| ConfigProblem {
            key: String::new(),
            message: error.message().trim_end_matches('\n').to_string(),
            span: error.span(),
        })
    }
}

impl Config {
    /// The defaults, with relative paths against `base_dir`.
    pub fn defaults(base_dir: &Path) -> Config {
        match Config::from_raw(RawConfig::default(), base_dir) {
            Ok(config) => config,
            Err(_) => unreachable!("the built-in defaults are valid"),
        }
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigProblem>> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            vec![ConfigProblem {
                key: String::new(),
                message: format!("cannot read {}: {error}", path.display()),
                span: None,
            }]
        })?;
        let raw = RawConfig::parse(&text).map_err(|problem| vec![problem])?;
        Config::from_raw(raw, &base_dir_of(path))
    }

    /// Validates values and resolves paths, reporting every problem.
    pub fn from_raw(raw: RawConfig, base_dir: &Path) -> Result<Config, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(ConfigProblem {
                key: key.to_string(),
                message,
                span: None,
            });
        };
        let resolve = |value: &str| base_dir.join(value);
        let optional = |value: &str| (!value.trim().is_empty()).then(|| base_dir.join(value));

        let profile = match raw.server.profile.as_str() {
            "development" => Profile::Development,
            "production" => Profile::Production,
            other => {
                problem(
                    "server.profile",
                    format!("expected \"development\" or \"production\", found \"{other}\""),
                );
                Profile::Development
            }
        };
        if raw.server.listen.parse::<std::net::SocketAddr>().is_err() {
            problem(
                "server.listen",
                "expected an address such as \"127.0.0.1:8443\"".into(),
            );
        }
        let database = match raw.storage.url.strip_prefix("sqlite://") {
            Some(file) if !file.is_empty() => resolve(file),
            _ => {
                problem(
                    "storage.url",
                    "expected a URL such as \"sqlite://data/phigate.db\"".into(),
                );
                PathBuf::new()
            }
        };
        if raw.rules.paths.is_empty() {
            problem(
                "rules.paths",
                "name at least one file or folder of rules".into(),
            );
        }
        let max_payload_size = parse_size(&raw.messaging.max_payload_size).unwrap_or_else(|why| {
            problem("messaging.max_payload_size", why);
            0
        });
        let filter_mode = match raw.messaging.filter_mode.as_str() {
            "fail-closed" => FilterMode::FailClosed,
            "fail-open" => FilterMode::FailOpen,
            other => {
                problem(
                    "messaging.filter_mode",
                    format!("expected \"fail-closed\" or \"fail-open\", found \"{other}\""),
                );
                FilterMode::FailClosed
            }
        };
        if raw.delivery.max_attempts == 0 {
            problem("delivery.max_attempts", "must be at least 1".into());
        }
        let mut duration = |key: &str, text: &str| {
            parse_duration(text).unwrap_or_else(|why| {
                problem(key, why);
                Duration::ZERO
            })
        };
        let lease = duration("delivery.lease", &raw.delivery.lease);
        let retry_base = duration("delivery.retry_base", &raw.delivery.retry_base);
        let retry_max = duration("delivery.retry_max", &raw.delivery.retry_max);
        if retry_max < retry_base {
            problem(
                "delivery.retry_max",
                "must not be shorter than `delivery.retry_base`".into(),
            );
        }
        let delivery_retention = match raw.retention.deliveries.trim() {
            "" | "0" => None,
            text => parse_duration(text).map_or_else(
                |why| {
                    problem("retention.deliveries", why);
                    None
                },
                |period| (!period.is_zero()).then_some(period),
            ),
        };
        let audit_retention = match raw.retention.audit.trim() {
            "" => None,
            text => match parse_duration(text) {
                Ok(period) if !period.is_zero() => Some(period),
                Ok(_) => {
                    problem(
                        "retention.audit",
                        "must be longer than zero; leave it empty to keep every record".into(),
                    );
                    None
                }
                Err(why) => {
                    problem("retention.audit", why);
                    None
                }
            },
        };

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            base_dir: base_dir.to_path_buf(),
            listen: raw.server.listen,
            tls_cert: optional(&raw.server.tls_cert),
            tls_key: optional(&raw.server.tls_key),
            client_ca: optional(&raw.server.client_ca),
            profile,
            database,
            rule_paths: raw.rules.paths.iter().map(|p| resolve(p)).collect(),
            keys_file: resolve(&raw.keys.file),
            tokens_file: resolve(&raw.auth.tokens_file),
            max_payload_size,
            filter_mode,
            audit_enabled: raw.messaging.audit_enabled,
            max_attempts: raw.delivery.max_attempts,
            lease,
            retry_base,
            retry_max,
            delivery_ca_file: optional(&raw.delivery.ca_file),
            delivery_retention,
            audit_retention,
        })
    }
}

/// The directory a config file's relative paths resolve against.
pub fn base_dir_of(config_path: &Path) -> PathBuf {
    match config_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `"1MB"`, `"512KB"`, `"100B"` or a bare number of bytes; KB and MB are
/// powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("expected a size such as \"1MB\", found \"{text}\""))?;
    let multiplier: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "K" | "KIB" => 1024,
        "MB" | "M" | "MIB" => 1024 * 1024,
        "GB" | "G" | "GIB" => 1024 * 1024 * 1024,
        _ => return Err(format!("unknown size unit in \"{text}\"; use B, KB or MB")),
    };
    let size = number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size \"{text}\" is too large"))?;
    if size == 0 {
        return Err("must be larger than zero".into());
    }
    Ok(size)
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"7d"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("expected a duration such as \"30s\", found \"{text}\""))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        "d" => Duration::from_secs(number.saturating_mul(86_400)),
        _ => {
            return Err(format!(
                "unknown duration unit in \"{text}\"; use ms, s, m, h or d"
            ));
        }
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_powers_of_1024() {
        assert_eq!(parse_size("1MB"), Ok(1024 * 1024));
        assert_eq!(parse_size("512KB"), Ok(512 * 1024));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("30").is_err());
    }

    #[test]
    fn retention_keeps_deliveries_a_week_and_audit_forever_by_default() {
        let base = Path::new("/etc/phigate");
        let config = Config::from_raw(RawConfig::default(), base).unwrap();
        assert_eq!(
            config.delivery_retention,
            Some(Duration::from_secs(7 * 86_400))
        );

        for off in ["", "0", "0s"] {
            let mut raw = RawConfig::default();
            raw.retention.deliveries = off.into();
            let config = Config::from_raw(raw, base).unwrap();
            assert_eq!(config.delivery_retention, None, "{off:?}");
        }

        assert_eq!(config.audit_retention, None);
        let mut raw = RawConfig::default();
        raw.retention.audit = "2190d".into();
        let config = Config::from_raw(raw, base).unwrap();
        assert_eq!(
            config.audit_retention,
            Some(Duration::from_secs(2190 * 86_400))
        );

        let mut raw = RawConfig::default();
        raw.retention.deliveries = "7 days".into();
        raw.retention.audit = "0".into();
        let problems = Config::from_raw(raw, base).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["retention.deliveries", "retention.audit"]);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let problem = RawConfig::parse("[messaging]\nmax_payload = \"1MB\"\n").unwrap_err();
        assert!(
            problem.message.contains("max_payload"),
            "{}",
            problem.message
        );
        assert!(problem.span.is_some());
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let config = Config::from_raw(RawConfig::default(), Path::new("/etc/phigate")).unwrap();
        assert_eq!(config.database, Path::new("/etc/phigate/data/phigate.db"));
        assert_eq!(config.rule_paths, vec![PathBuf::from("/etc/phigate/rules")]);
        assert_eq!(config.max_payload_size, 1024 * 1024);
        assert_eq!(config.filter_mode, FilterMode::FailClosed);
        assert_eq!(config.delivery_ca_file, None);

        let mut raw = RawConfig::default();
        raw.delivery.ca_file = "tls/receivers.pem".into();
        let config = Config::from_raw(raw, Path::new("/etc/phigate")).unwrap();
        assert_eq!(
            config.delivery_ca_file.as_deref(),
            Some(Path::new("/etc/phigate/tls/receivers.pem"))
        );
    }
}
