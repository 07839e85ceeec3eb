//! What one coordinator process runs (`coordinator serve --role`), so that
//! builds scale on machines of their own and an API coordinator never runs
//! one.
//!
//! | role      | API + dashboard | QUIC for edges | background passes | builds |
//! |-----------|-----------------|----------------|-------------------|--------|
//! | `all`     | yes             | yes            | yes               | yes    |
//! | `api`     | yes             | yes            | yes               | never  |
//! | `builder` | health only     | no             | no                | yes    |
//!
//! Background passes (retention and GC, certificates, alerts, drains, DNS
//! checks, analytics upkeep) are leased in the database, so however many
//! `all`/`api` coordinators run, one does each at a time.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    All,
    Api,
    Builder,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Builder => "builder",
        }
    }

    /// Serves the API, the dashboard and edges' QUIC links.
    pub fn serves(self) -> bool {
        self != Role::Builder
    }

    /// Claims builds from the queue.
    pub fn builds(self) -> bool {
        self != Role::Api
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Role::All),
            "api" => Ok(Role::Api),
            "builder" => Ok(Role::Builder),
            other => Err(format!(
                "unknown role {other:?}: expected all, api or builder"
            )),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_say_what_they_run() {
        for (s, role, serves, builds) in [
            ("all", Role::All, true, true),
            ("api", Role::Api, true, false),
            ("builder", Role::Builder, false, true),
        ] {
            let r: Role = s.parse().unwrap();
            assert_eq!(
                (r, r.serves(), r.builds(), r.as_str()),
                (role, serves, builds, s)
            );
        }
        for bad in ["", "ALL", "worker", "api,builder"] {
            assert!(bad.parse::<Role>().is_err(), "{bad}");
        }
    }
}
