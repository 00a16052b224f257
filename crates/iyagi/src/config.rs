//! Layered configuration with figment: defaults, then the TOML file, then
//! `IYAGI_SECTION__KEY` environment variables, then command-line flags.

use std::path::Path;

use anyhow::{Context as _, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use iyagi_server::Settings;

/// Values given as command-line flags; they win over everything else.
pub struct Overrides {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub log_level: Option<String>,
}

/// The configuration sections. Only `IYAGI_<SECTION>__...` variables are
/// configuration; others with the prefix (IYAGI_CONFIG, IYAGI_TEST_*) are not.
const SECTIONS: [&str; 9] = [
    "server", "database", "auth", "ws", "session", "bus", "metrics", "log", "push",
];

pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(path) = file {
        if !path.is_file() {
            bail!("configuration file {} does not exist", path.display());
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    // Filter before split: the filter sees `database__url`, split turns it
    // into the nested key `database.url`.
    let env = Env::prefixed("IYAGI_")
        .filter(|key| {
            SECTIONS
                .iter()
                // UncasedStr::starts_with ignores case, as env names are upper-case.
                .any(|section| key.starts_with(&format!("{section}__")))
        })
        .split("__");
    figment = figment.merge(env);
    if let Some(listen) = &overrides.listen {
        figment = figment.merge(Serialized::default("server.listen", listen));
    }
    if let Some(url) = &overrides.database_url {
        figment = figment.merge(Serialized::default("database.url", url));
    }
    if let Some(level) = &overrides.log_level {
        figment = figment.merge(Serialized::default("log.level", level));
    }
    figment
        .extract::<Settings>()
        .map_err(describe)
        .context("invalid configuration")
}

/// Figment's errors name the key, the bad value and where it came from;
/// join them all so one start reports every mistake.
fn describe(err: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
    anyhow::anyhow!(lines.join("; "))
}

pub fn to_toml(settings: &Settings) -> anyhow::Result<String> {
    toml::to_string_pretty(settings).context("rendering configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/configuration.md shows "a complete file, with the defaults":
    /// every setting, each with the value the code defaults to. A setting
    /// added, renamed or re-defaulted without the doc fails here.
    #[test]
    fn the_documented_file_is_every_setting_with_its_default() {
        let doc = include_str!("../../../docs/configuration.md");
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/configuration.md has a toml block");
        let documented: toml::Value = toml::from_str(block).expect("the block is valid TOML");
        let defaults = toml::Value::try_from(Settings::default()).expect("settings serialise");
        assert_eq!(documented, defaults);
    }

    fn no_overrides() -> Overrides {
        Overrides {
            listen: None,
            database_url: None,
            log_level: None,
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's signature, not ours
    fn layers_file_env_and_flags_and_names_bad_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "iyagi.toml",
                "[server]\nlisten = \"127.0.0.1:9000\"\n[database]\nmax_connections = 3\n",
            )?;
            jail.set_env("IYAGI_DATABASE__MAX_CONNECTIONS", "7");
            jail.set_env("IYAGI_TEST_POSTGRES_URL", "postgres://ignored");
            let settings = load(Some(Path::new("iyagi.toml")), &no_overrides()).expect("loads");
            assert_eq!(settings.server.listen.port(), 9000);
            assert_eq!(settings.database.max_connections, 7, "env wins over file");

            let flags = Overrides {
                listen: Some("127.0.0.1:9100".into()),
                ..no_overrides()
            };
            assert_eq!(
                load(Some(Path::new("iyagi.toml")), &flags)
                    .expect("loads")
                    .server
                    .listen
                    .port(),
                9100
            );

            jail.set_env("IYAGI_DATABASE__MAX_CONNECTIONS", "many");
            let err = format!("{:#}", load(None, &no_overrides()).expect_err("bad value"));
            assert!(
                err.to_lowercase().contains("database.max_connections") && err.contains("many"),
                "{err}"
            );

            jail.set_env("IYAGI_DATABASE__MAX_CONNECTIONS", "7");
            jail.create_file("typo.toml", "[server]\nlisten_port = 1\n")?;
            let err = format!(
                "{:#}",
                load(Some(Path::new("typo.toml")), &no_overrides()).expect_err("unknown key")
            );
            assert!(err.contains("listen_port"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's signature, not ours
    fn every_section_takes_env_and_secrets_never_print() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("IYAGI_METRICS__TOKEN", "scrape-me");
            jail.set_env(
                "IYAGI_DATABASE__URL",
                "postgres://app:hunter2@db:5432/iyagi",
            );
            jail.set_env("IYAGI_SESSION__REDIS_URL", "redis://:hunter3@cache:6379");
            let settings = load(None, &no_overrides()).expect("loads");
            assert_eq!(settings.metrics.token.expose(), "scrape-me");
            assert_eq!(
                settings.database.url.expose(),
                "postgres://app:hunter2@db:5432/iyagi"
            );
            let printed = to_toml(&settings).expect("renders");
            assert!(
                printed.contains("postgres://app:***@db:5432/iyagi"),
                "{printed}"
            );
            for secret in ["hunter2", "hunter3", "scrape-me"] {
                assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
            }
            assert!(!format!("{settings:?}").contains("hunter2"));
            Ok(())
        });
    }
}
