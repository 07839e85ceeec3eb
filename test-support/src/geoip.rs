//! A tiny MaxMind DB (`.mmdb`) country database for tests: the edges'
//! `--geoip` reads it like GeoLite2-Country.

use std::path::Path;

use maxminddb_writer::paths::IpAddrWithMask;
use maxminddb_writer::Database;
use serde::Serialize;

#[derive(Serialize)]
struct CountryRecord {
    country: Country,
}

#[derive(Serialize)]
struct Country {
    iso_code: String,
}

/// Writes a country database mapping each IPv4 network (`127.0.0.0/8`)
/// to its ISO code (`DE`) at `path`.
pub fn write_country_db(path: &Path, networks: &[(&str, &str)]) -> std::io::Result<()> {
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let mut db = Database::default();
    db.metadata.database_type = "GeoLite2-Country".into();
    db.metadata.binary_format_major_version = 2;
    db.metadata.languages = vec!["en".into()];
    for (net, code) in networks {
        let data = db
            .insert_value(CountryRecord {
                country: Country {
                    iso_code: code.to_string(),
                },
            })
            .map_err(|e| bad(format!("{e:?}")))?;
        let net: IpAddrWithMask = net.parse().map_err(|e| bad(format!("{net}: {e:?}")))?;
        db.insert_node(net, data);
    }
    let f = std::fs::File::create(path)?;
    let mut w = db
        .write_to(std::io::BufWriter::new(f))
        .map_err(|e| bad(format!("{e:?}")))?;
    std::io::Write::flush(&mut w)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_edges_reader_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.mmdb");
        super::write_country_db(&p, &[("127.0.0.0/8", "DE"), ("10.0.0.0/8", "FR")]).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 0);
    }
}
