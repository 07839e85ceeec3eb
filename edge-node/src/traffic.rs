//! Traffic analytics on the node: every request a site answered is counted
//! into the open minute (`analytics::recorder`); each closed minute is
//! written to the spool on disk and only then shipped to the coordinator,
//! oldest first, one record at a time; a record leaves the spool once the
//! coordinator acknowledged it. A coordinator outage therefore loses
//! nothing: the spool fills (coarsening old minutes into hours when it
//! reaches its size) and drains when the link is back.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use analytics::record::{Granularity, Record, RecordId};
use analytics::recorder::{Closed, Hit, Recorder};
use analytics::spool::{Entry, Spool};
use anyhow::{bail, Context};
use protocol::frame_io::{read_frame, write_frame};
use protocol::wire::{CoordinatorMessage, EdgeRequest, MAX_CONTROL_FRAME_BYTES};
use tokio::sync::watch;

use crate::config_state::Desired;

/// `--analytics-*` flags.
#[derive(Debug, Clone)]
pub struct AnalyticsOptions {
    pub enabled: bool,
    /// Distinct keys (paths, referrers, …) one minute may hold.
    pub max_keys: usize,
    /// The spool's size on disk before old minutes are coarsened.
    pub spool_bytes: u64,
    /// A MaxMind / DB-IP country database (`.mmdb`).
    pub geoip: Option<PathBuf>,
}

impl Default for AnalyticsOptions {
    fn default() -> Self {
        AnalyticsOptions {
            enabled: true,
            max_keys: analytics::recorder::DEFAULT_MAX_KEYS,
            spool_bytes: 256 * 1024 * 1024,
            geoip: None,
        }
    }
}

/// The node's analytics: the recorder requests count into, and the
/// country lookup when a database is configured.
pub struct Analytics {
    pub(crate) recorder: Recorder,
    geoip: Option<maxminddb::Reader<Vec<u8>>>,
    /// A salt of this node's own for days the config has none of yet (a
    /// node that starts without its coordinator): visitors then count per
    /// node until the day's shared salt arrives.
    fallback_salt: [u8; 32],
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Analytics {
    pub fn new(opts: &AnalyticsOptions) -> anyhow::Result<Analytics> {
        let geoip = match &opts.geoip {
            Some(p) => Some(maxminddb::Reader::open_readfile(p).with_context(|| {
                format!(
                    "reading the GeoIP database {} (a MaxMind or DB-IP .mmdb file)",
                    p.display()
                )
            })?),
            None => None,
        };
        let mut fallback_salt = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut fallback_salt[..]);
        Ok(Analytics {
            recorder: Recorder::new(opts.max_keys, now_secs()),
            geoip,
            fallback_salt,
        })
    }

    /// The ISO country code of `ip`, when the node has a database.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let reader = self.geoip.as_ref()?;
        let result = reader.lookup(ip).ok()?;
        let country: maxminddb::geoip2::Country = result.decode().ok()??;
        country
            .country
            .iso_code
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
            .map(str::to_string)
    }

    pub fn has_geoip(&self) -> bool {
        self.geoip.is_some()
    }

    pub fn record(&self, hit: &Hit<'_>) {
        self.recorder.record(hit);
    }

    fn set_salts(&self, desired: &Desired) {
        let mut salts: Vec<(i64, [u8; 32])> = desired.salts.iter().map(|(d, s)| (*d, *s)).collect();
        let today = now_secs().div_euclid(86_400);
        for day in [today - 1, today, today + 1] {
            if !desired.salts.contains_key(&day) {
                // Per day, so the fallback never links two days either.
                let mut k = blake3::Hasher::new_keyed(&self.fallback_salt);
                k.update(&day.to_le_bytes());
                salts.push((day, *k.finalize().as_bytes()));
            }
        }
        self.recorder.set_salts(salts);
    }
}

/// Record sequence numbers: this process's start in µs plus a counter, so
/// no two records of this node (across restarts) share an id.
struct Seq(u64);

impl Seq {
    fn new() -> Seq {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Seq(start << 8)
    }

    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// How often the minute is checked for closing and the spool for records
/// to send.
const TICK: Duration = Duration::from_secs(1);

pub async fn run(
    analytics: Arc<Analytics>,
    spool: Spool,
    mut desired: watch::Receiver<Arc<Desired>>,
    conn: watch::Receiver<Option<quinn::Connection>>,
    metrics: Arc<crate::metrics::EdgeMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seq = Seq::new();
    let mut in_flight: Option<RecordId> = None;
    let keys = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    metrics.register(
        "analytics_keys",
        "Distinct keys (paths, referrers, countries, function routes) the open analytics minute holds, at most --analytics-max-keys",
        keys.clone(),
    );
    let shipped = prometheus_client::metrics::counter::Counter::<u64>::default();
    metrics.register(
        "analytics_records_shipped",
        "Analytics records the coordinator acknowledged",
        shipped.clone(),
    );
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    analytics.set_salts(&desired.borrow_and_update());
    let mut last_salt_day = now_secs().div_euclid(86_400);
    // The spool's size is read again only when something entered or left it.
    let mut spool_changed = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = desired.changed() => {
                if r.is_err() {
                    return;
                }
                analytics.set_salts(&desired.borrow_and_update());
                continue;
            }
            _ = shutdown.changed() => {
                // The open minute is written as it is; it ships after the
                // restart if not now.
                let closed = analytics.recorder.close_now();
                spool_closed(&spool, closed, &mut seq);
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    ship(&spool, &conn, &mut in_flight, &shipped),
                )
                .await;
                return;
            }
        }
        let now = now_secs();
        if now.div_euclid(86_400) != last_salt_day {
            last_salt_day = now.div_euclid(86_400);
            analytics.set_salts(&desired.borrow());
        }
        if let Some(closed) = analytics.recorder.close(now) {
            spool_changed = true;
            spool_closed(&spool, closed, &mut seq);
            let (merged, dropped) = spool.shrink(in_flight, || seq.next());
            if merged + dropped > 0 {
                tracing::warn!(
                    merged,
                    dropped,
                    "analytics spool is full: old minutes merged into hours"
                );
            }
        }
        let before = shipped.get();
        if let Err(e) = ship(&spool, &conn, &mut in_flight, &shipped).await {
            tracing::debug!(error = %format!("{e:#}"), "shipping analytics deferred");
        }
        if std::mem::take(&mut spool_changed) || shipped.get() != before {
            let (records, bytes) = spool.usage();
            metrics.set_spool(records as u64, bytes);
        }
        keys.set(analytics.recorder.keys_in_use() as i64);
    }
}

fn spool_closed(spool: &Spool, closed: Closed, seq: &mut Seq) {
    if closed.dropped > 0 {
        tracing::warn!(
            dropped = closed.dropped,
            "analytics: requests of sites past this minute's key budget were not counted (raise --analytics-max-keys)"
        );
    }
    if closed.sites.is_empty() {
        return;
    }
    for r in Record::split(
        closed.start,
        Granularity::Minute,
        || seq.next(),
        closed.sites,
    ) {
        if let Err(e) = spool.write(&r) {
            tracing::error!(error = %e, "analytics: a closed minute could not be written to the spool; it is lost");
        }
    }
}

/// Sends what the spool holds, oldest first, until it is empty or the
/// coordinator cannot be reached, counting each acknowledged record in
/// `shipped`. A damaged record is logged and removed. Without a link the
/// spool is not even listed.
async fn ship(
    spool: &Spool,
    conn: &watch::Receiver<Option<quinn::Connection>>,
    in_flight: &mut Option<RecordId>,
    shipped: &prometheus_client::metrics::counter::Counter,
) -> anyhow::Result<()> {
    if conn.borrow().is_none() {
        return Ok(());
    }
    for entry in spool.list() {
        let record = match spool.read(&entry) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "analytics: skipping a damaged spool record");
                spool.remove(&entry);
                continue;
            }
        };
        *in_flight = Some(entry.id);
        send(conn, &record, &entry).await?;
        spool.remove(&entry);
        *in_flight = None;
        shipped.inc();
    }
    Ok(())
}

async fn send(
    conn: &watch::Receiver<Option<quinn::Connection>>,
    record: &Record,
    entry: &Entry,
) -> anyhow::Result<()> {
    let Some(c) = conn.borrow().clone() else {
        bail!("no coordinator connection");
    };
    let (mut send, mut recv) = c.open_bi().await?;
    write_frame(&mut send, &EdgeRequest::Analytics(record.encode())).await?;
    send.finish()?;
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        read_frame::<CoordinatorMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES),
    )
    .await
    .context("no answer to an analytics record within 30 s")??
    .context("no answer to an analytics record")?;
    match answer {
        CoordinatorMessage::Ack => Ok(()),
        CoordinatorMessage::Error(e) if e.code == protocol::wire::ErrorCode::BadRequest => {
            // Refused for what it is: it would be refused forever.
            tracing::warn!(error = %e.message, path = %entry.path.display(), "coordinator refused an analytics record; dropping it");
            Ok(())
        }
        CoordinatorMessage::Error(e) => bail!(
            "coordinator could not take an analytics record: {}",
            e.message
        ),
        other => bail!("unexpected answer to an analytics record: {other:?}"),
    }
}
