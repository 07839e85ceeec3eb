//! `results/<timestamp>/report.json` and `report.md`: the figures, the
//! machine they were measured on and the exact command.

use std::path::PathBuf;

use serde::Serialize;

use crate::membership::MembershipReport;
use crate::propagate::PropagateReport;

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!(
        "{cpus} CPUs ({model}), {} GiB RAM, {}",
        mem_kb / (1 << 20),
        std::env::consts::OS
    )
}

/// Writes the report; returns its directory (plots go there too).
pub fn write<T: Serialize>(
    out: Option<PathBuf>,
    what: &str,
    argv: &[String],
    results: &[T],
    md: String,
) -> anyhow::Result<PathBuf> {
    write_with(out, what, argv, results, &[], md)
}

/// [`write`] with more top-level fields of `report.json` beside `results`.
pub fn write_with<T: Serialize>(
    out: Option<PathBuf>,
    what: &str,
    argv: &[String],
    results: &[T],
    extra: &[(&str, serde_json::Value)],
    md: String,
) -> anyhow::Result<PathBuf> {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    let dir = out.unwrap_or_else(|| PathBuf::from("results").join(format!("{stamp}-{what}")));
    std::fs::create_dir_all(&dir)?;
    let mut json = serde_json::json!({
        "benchmark": what,
        "command": argv.join(" "),
        "machine": machine(),
        "version": env!("CARGO_PKG_VERSION"),
        "results": results,
    });
    for (k, v) in extra {
        json[*k] = v.clone();
    }
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&json)?)?;
    let full = format!(
        "# bench {what}\n\n- command: `{}`\n- machine: {}\n- outpost {}\n\n{md}",
        argv.join(" "),
        machine(),
        env!("CARGO_PKG_VERSION")
    );
    std::fs::write(dir.join("report.md"), &full)?;
    println!("{full}");
    eprintln!("report: {}", dir.display());
    Ok(dir)
}

pub fn static_md(rs: &[crate::static_files::StaticRow]) -> String {
    let mut s = String::from(
        "| file | proto | load | edge req/s | nginx req/s | edge/nginx req/s | edge p50 | p90 | p99 | p99.9 | nginx p50 | p90 | p99 | p99.9 | edge/nginx p99 | errors e/n |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rs {
        let load = match r.mode {
            crate::load::Mode::Concurrency(c) => format!("{c} conns"),
            crate::load::Mode::Rate { rate, conns } => format!("{rate}/s on {conns} conns"),
        };
        s += &format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {}/{} |\n",
            r.file, proto_label(r.proto, r.reference_proto), load, r.edge.rps, r.nginx.rps, r.rps_ratio,
            r.edge.p50_ms, r.edge.p90_ms, r.edge.p99_ms, r.edge.p999_ms,
            r.nginx.p50_ms, r.nginx.p90_ms, r.nginx.p99_ms, r.nginx.p999_ms,
            r.p99_ratio, r.edge.errors, r.nginx.errors
        );
    }
    if let Some(r) = rs.first() {
        s += &format!(
            "\nEach side ran {} slices, the two taking turns; edge/nginx req/s is the median of the slices' own ratios, p99s are over all slices.\n",
            r.rounds
        );
    }
    s += "\nLatency CDFs: `static-<file>-<proto>.svg` next to this report (milliseconds).\n";
    if rs.iter().any(|r| r.proto != r.reference_proto) {
        s += "HTTP/3 rows: the edge over HTTP/3 (QUIC) against nginx over HTTP/2 (Debian's nginx has no HTTP/3).\n";
    }
    s
}

/// A static row's protocol: `H2`, or `HTTP/3 (nginx: HTTP/2)` where the
/// two sides differ.
fn proto_label(proto: crate::load::Proto, reference: crate::load::Proto) -> String {
    if proto == reference {
        format!("{proto:?}")
    } else {
        format!("{} (nginx: {})", proto.name(), reference.name())
    }
}

pub fn rss_md(r: &crate::static_files::RssReport) -> String {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    let mut s = format!(
        "\n## RSS\n\nVmRSS of the edge process and of nginx (master + {} workers, summed: pages they share count once per process).\n\n| | edge | nginx | edge/nginx |\n|---|---|---|---|\n| idle, edge serving {} sites (nginx: one root) | {} | {} | {:.2} |\n",
        r.nginx_processes.saturating_sub(1),
        r.sites,
        mib(r.edge_idle_bytes),
        mib(r.nginx_idle_bytes),
        r.edge_idle_bytes as f64 / r.nginx_idle_bytes.max(1) as f64,
    );
    for l in &r.under_load {
        s += &format!(
            "| peak under the 1 MB load ({}), {} | {} | {} | {:.2} |\n",
            l.file,
            if l.proto == l.reference_proto {
                l.proto.name().to_string()
            } else {
                proto_label(l.proto, l.reference_proto)
            },
            mib(l.edge_peak_bytes),
            mib(l.nginx_peak_bytes),
            l.edge_peak_bytes as f64 / l.nginx_peak_bytes.max(1) as f64,
        );
    }
    s += "\nIdle: each site's index requested once, then 2 s. Peaks: read every 100 ms during each side's own run.\n";
    s
}

pub fn analytics_md(r: &crate::static_files::AnalyticsRow) -> String {
    format!(
        "\n## Analytics on vs off\n\n{} over {:?} with a browser's user agent (every request a page view of a visitor), {} pairs of alternating short runs{}:\n\n| | req/s | p50 | p99 |\n|---|---|---|---|\n| analytics on | {:.0} | {:.2} ms | {:.2} ms |\n| analytics off (`--no-analytics`) | {:.0} | {:.2} ms | {:.2} ms |\n\non/off req/s: **{:.3}** over all runs (cost {:.1}%); median of the pairs' ratios {:.3}\n",
        r.file,
        r.proto,
        r.rounds,
        if r.pinned { ", nodes and load generator on separate CPUs" } else { "" },
        r.on.rps,
        r.on.p50_ms,
        r.on.p99_ms,
        r.off.rps,
        r.off.p50_ms,
        r.off.p99_ms,
        r.rps_ratio,
        (1.0 - r.rps_ratio) * 100.0,
        r.median_pair_ratio
    )
}

pub fn membership_md(rs: &[MembershipReport]) -> String {
    let mut s = String::from(
        "| nodes | rounds | down at a peer p50 | p99 | down at all peers p50 | max | rejoin seen by all p50 | max |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rs {
        s += &format!(
            "| {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |\n",
            r.nodes,
            r.rounds,
            r.detect_down.p50_ms,
            r.detect_down.p99_ms,
            r.detect_down_all.p50_ms,
            r.detect_down_all.max_ms,
            r.rejoin_all.p50_ms,
            r.rejoin_all.max_ms
        );
    }
    s
}

pub fn propagate_md(rs: &[PropagateReport]) -> String {
    let mut s = String::from(
        "| nodes | peer assist | deploys | changed per deploy | config at all nodes p50 | max | node serving p50 | p99 | all nodes serving p50 | max | coordinator egress / deploy | egress ÷ changed |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rs {
        s += &format!(
            "| {} | {} | {} | {} B | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} B | {:.2} |\n",
            r.nodes,
            if r.peer_assist { "yes" } else { "no" },
            r.deploys,
            r.changed_bytes_per_deploy,
            r.config_all_nodes.p50_ms,
            r.config_all_nodes.max_ms,
            r.per_node.p50_ms,
            r.per_node.p99_ms,
            r.all_nodes.p50_ms,
            r.all_nodes.max_ms,
            r.coordinator_egress_per_deploy,
            r.egress_ratio
        );
    }
    s += "\nPer-node times: `propagate-<N>-nodes-<assist|direct>.svg` next to this report.\n";
    s
}

pub fn probe_md(rs: &[crate::probe::ProbeReport]) -> String {
    let mut s = String::from(
        "| url | protocol | ok/failed | DNS p50 | connect p50 | TLS p50 | first byte p50 | p99 | total p50 | p99 |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let f = |v: f64| {
        if v.is_nan() {
            "-".to_string()
        } else {
            format!("{v:.2} ms")
        }
    };
    for r in rs {
        s += &format!(
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.url,
            r.protocol,
            r.samples,
            r.failures,
            f(r.dns.p50_ms),
            f(r.connect.p50_ms),
            f(r.tls.p50_ms),
            f(r.first_byte.p50_ms),
            f(r.first_byte.p99_ms),
            f(r.total.p50_ms),
            f(r.total.p99_ms)
        );
        if let Some(e) = &r.last_error {
            s += &format!("\nlast error for {}: {e}\n", r.url);
        }
    }
    if rs.iter().any(|r| r.protocol == "HTTP/3") {
        s += "\nHTTP/3: connect is the QUIC handshake, TLS 1.3 inside it (one round trip for both), so TLS is empty.\n";
    }
    s
}

pub fn function_md(r: &crate::function::FunctionReport) -> String {
    let mut s = format!(
        "| | edge | bare wasmtime-wasi-http host | edge/bare |\n|---|---|---|---|\n\
         | req/s | {:.0} | {:.0} | {:.2} |\n\
         | p50 | {:.2} ms | {:.2} ms | |\n\
         | p90 | {:.2} ms | {:.2} ms | |\n\
         | p99 | {:.2} ms | {:.2} ms | {:.2} |\n\
         | p99.9 | {:.2} ms | {:.2} ms | |\n\
         | errors | {} | {} | |\n\
         | server CPU per request | {:.1} µs | {:.1} µs | {:.2} |\n\n\
         - edge/bare req/s per round (the servers back to back, the idle ones stopped): {}\n\
         - component: `{}`, load: {:?}; CPUs: {}\n\
         - finalize → first 200 from the function: {:.1} ms (the edge compiles before switching)\n\
         - first request after the deploy: {:.2} ms\n\
         - first request after a restart (compiled artefact from the disk cache): {:.2} ms\n\n\
         Latency CDF: `function-hello-h1.svg`.\n",
        r.edge.rps,
        r.bare.rps,
        r.rps_ratio,
        r.edge.p50_ms,
        r.bare.p50_ms,
        r.edge.p90_ms,
        r.bare.p90_ms,
        r.edge.p99_ms,
        r.bare.p99_ms,
        r.p99_ratio,
        r.edge.p999_ms,
        r.bare.p999_ms,
        r.edge.errors,
        r.bare.errors,
        r.edge_cpu_us_per_request,
        r.bare_cpu_us_per_request,
        r.edge_cpu_us_per_request / r.bare_cpu_us_per_request.max(f64::MIN_POSITIVE),
        r.rps_ratio_rounds
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.component,
        r.mode,
        match &r.pinned {
            Some(p) => format!("servers on {:?}, load generator on {:?}", p.servers, p.load),
            None => "shared by the servers and the load generator".to_string(),
        },
        r.deploy_to_first_ok_ms,
        r.first_request_after_deploy_ms,
        r.first_request_after_restart_ms
    );
    if let Some(w) = &r.wasmtime_serve {
        s += &serve_md(r, w);
    }
    s
}

/// The edge against `wasmtime serve`, measured in the same rounds.
fn serve_md(r: &crate::function::FunctionReport, w: &crate::function::ServeReport) -> String {
    format!(
        "\n## Against `wasmtime serve`\n\n\
         `{}`, run as `wasmtime {}`; measured in the same rounds as the bare host.\n\n\
         | | edge | wasmtime serve | edge/wasmtime serve |\n|---|---|---|---|\n\
         | req/s | {:.0} | {:.0} | {:.2} |\n\
         | p50 | {:.2} ms | {:.2} ms | |\n\
         | p99 | {:.2} ms | {:.2} ms | {:.2} |\n\
         | errors | {} | {} | |\n\
         | server CPU per request | {:.1} µs | {:.1} µs | {:.2} |\n\n\
         - edge/wasmtime serve req/s per round: {}\n",
        w.version,
        w.args.join(" "),
        r.edge.rps,
        w.side.rps,
        w.rps_ratio,
        r.edge.p50_ms,
        w.side.p50_ms,
        r.edge.p99_ms,
        w.side.p99_ms,
        w.p99_ratio,
        r.edge.errors,
        w.side.errors,
        r.edge_cpu_us_per_request,
        w.cpu_us_per_request,
        r.edge_cpu_us_per_request / w.cpu_us_per_request.max(f64::MIN_POSITIVE),
        w.rps_ratio_rounds
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

pub fn build_md(r: &crate::build::BuildReport) -> String {
    let mb = |b: f64| format!("{:.2} MB", b / 1e6);
    let (cb, cr) = (&r.cold_build, &r.cold_reference);
    let mut s = format!(
        "Site: {} files, {} in the repository; bundle {} blobs (files + .br/.gz variants), {}. \
         Build command: {}. One edge node; {} warm rounds after one cold round, each changing one file (`index.html`).\n\n\
         | | build from git (p50) | max | clone --depth 1 + `coordinator deploy` (p50) | max | build / reference |\n|---|---|---|---|---|---|\n\
         | → ready | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} |\n\
         | → served at the edge | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} |\n\
         | cold → ready | {:.0} ms | | {:.0} ms | | {:.2} |\n\
         | cold → served at the edge | {:.0} ms | | {:.0} ms | | {:.2} |\n\n",
        r.files,
        mb(r.site_bytes as f64),
        r.bundle_blobs,
        mb(r.bundle_bytes as f64),
        if r.build_command.is_empty() {
            "none (the sandbox is not entered)".to_string()
        } else {
            format!("`{}` in the sandbox", r.build_command)
        },
        r.rounds,
        r.build_to_ready.p50_ms,
        r.build_to_ready.max_ms,
        r.reference_to_ready.p50_ms,
        r.reference_to_ready.max_ms,
        r.ratio_to_ready,
        r.build_to_edge.p50_ms,
        r.build_to_edge.max_ms,
        r.reference_to_edge.p50_ms,
        r.reference_to_edge.max_ms,
        r.ratio_to_edge,
        cb.to_ready_ms,
        cr.to_ready_ms,
        r.cold_ratio_to_ready,
        cb.to_edge_ms,
        cr.to_edge_ms,
        cb.to_edge_ms / cr.to_edge_ms,
    );
    s += "Where a warm build's time goes (build-log timestamps, ms resolution, p50 of each phase; they add up to POST → served at the edge):\n\n| phase | ms |\n|---|---|\n";
    for (k, v) in &r.phases_p50_ms {
        s += &format!("| {k} | {v:.0} |\n");
    }
    let gap =
        |rs: &mut dyn Iterator<Item = f64>| crate::stats::summarize(&rs.collect::<Vec<_>>()).p50_ms;
    s += &format!(
        "\n`ready` status seen → served at the edge (config push + blob fetch), p50: build {:.0} ms, reference {:.0} ms.\n",
        gap(&mut r.build_rounds[1..].iter().map(|b| b.to_edge_ms - b.to_ready_ms)),
        gap(&mut r.reference_rounds[1..].iter().map(|x| x.to_edge_ms - x.to_ready_ms)),
    );
    s += &format!(
        "\nCold build: clone {:.0} ms, collect {:.0} ms, store {:.0} ms. Reference warm p50: clone {:.0} ms, deploy {:.0} ms.\n\n",
        cb.phases.clone_ms,
        cb.phases.collect_ms,
        cb.phases.store_ms,
        crate::stats::summarize(&r.reference_rounds[1..].iter().map(|x| x.clone_ms).collect::<Vec<_>>()).p50_ms,
        crate::stats::summarize(&r.reference_rounds[1..].iter().map(|x| x.deploy_ms).collect::<Vec<_>>()).p50_ms,
    );
    s += &format!(
        "One-file change (warm rounds, mean): the build stored {:.1} new blobs, {:.0} B = {:.4}% of the bundle's {} B; \
         the coordinator sent the edge {:.0} B of blobs; the reference uploaded {:.0} B. \
         Cold: the build stored {} of {} blobs ({} B), the edge fetched {} B.\n\n",
        r.one_file_stored_blobs,
        r.one_file_stored_bytes,
        r.one_file_stored_fraction * 100.0,
        r.bundle_bytes,
        r.one_file_edge_fetched_bytes,
        r.reference_one_file_uploaded_bytes,
        cb.new_blobs,
        cb.blobs,
        cb.stored_bytes,
        cb.edge_fetched_bytes,
    );
    s += "| round | build → ready | → edge | stored blobs | stored B | edge fetched B | ref clone | ref deploy | ref → edge | ref uploaded B |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (b, x) in r.build_rounds.iter().zip(&r.reference_rounds) {
        s += &format!(
            "| {}{} | {:.0} ms | {:.0} ms | {}/{} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {} |\n",
            b.round,
            if b.round == 0 { " (cold)" } else { "" },
            b.to_ready_ms,
            b.to_edge_ms,
            b.new_blobs,
            b.blobs,
            b.stored_bytes,
            b.edge_fetched_bytes,
            x.clone_ms,
            x.deploy_ms,
            x.to_edge_ms,
            x.uploaded_bytes
        );
    }
    s
}
