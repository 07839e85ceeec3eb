//! The join token's format, shared by `coordinator token create-join` and
//! `edge-node join`: `opj_<secret>_<cluster CA fingerprint>`.
//!
//! The fingerprint lets a node that has no certificate yet verify that it
//! talks to the right coordinator (the way kubeadm's discovery hash works).

pub const JOIN_TOKEN_PREFIX: &str = "opj_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// 64 hex characters; the coordinator stores only its hash.
    pub secret: String,
    /// blake3 of the cluster CA certificate (DER), 64 hex characters.
    pub ca_fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed join token: expected opj_<64 hex>_<64 hex> as printed by `coordinator token create-join`")]
pub struct JoinTokenFormatError;

impl JoinToken {
    pub fn parse(s: &str) -> Result<Self, JoinTokenFormatError> {
        let rest = s
            .trim()
            .strip_prefix(JOIN_TOKEN_PREFIX)
            .ok_or(JoinTokenFormatError)?;
        let (secret, fp) = rest.split_once('_').ok_or(JoinTokenFormatError)?;
        let hex64 = |x: &str| {
            x.len() == 64
                && x.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex64(secret) || !hex64(fp) {
            return Err(JoinTokenFormatError);
        }
        Ok(JoinToken {
            secret: secret.into(),
            ca_fingerprint: fp.into(),
        })
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{JOIN_TOKEN_PREFIX}{}_{}",
            self.secret, self.ca_fingerprint
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let a = "a".repeat(64);
        let b = "0".repeat(64);
        let good = format!("opj_{a}_{b}");
        assert_eq!(JoinToken::parse(&good).unwrap().to_string(), good);
        for bad in [
            String::new(),
            format!("opx_{a}_{b}"),
            format!("opj_{a}{b}"),
            format!("opj_{a}_{}", "0".repeat(63)),
            format!("opj_{}_{b}", "A".repeat(64)),
            format!("opj_{a}_{b}_extra"),
        ] {
            assert!(JoinToken::parse(&bad).is_err(), "{bad}");
        }
    }
}
