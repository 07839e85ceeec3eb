//! A bare wasi:http host: the reference the edge's function path is
//! measured against (`bench/functions.sh`).
//!
//! `bare_host <component.wasm> <listen addr>` serves the component over
//! HTTP/1.1 the way `wasmtime serve` does for a WASIp2 component: hyper on
//! tokio, a `ProxyPre` built once, then per request a fresh `Store` and
//! instance, `incoming-handler.handle` called in a task of its own while
//! the connection waits for the response. The engine has the edge
//! runtime's settings (pooling allocator with the same pool, epoch
//! interruption with a 1 ms ticker and a yield every tick) and the linker
//! the same worlds (`wasi:cli/command` + `wasi:http`), so every fixture
//! runs. The engine is the edge's own (`edge_node::functions::engine`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use edge_node::functions::TABLE_ELEMENTS;

const MAX_RESOURCES: usize = 10_000;
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// The memory limit of a function that sets none.
const MEMORY_LIMIT: usize = 128 * 1024 * 1024;

struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoOutbound,
    limits: StoreLimits,
}

/// The default hooks, less outbound HTTP (the benchmark needs none, and
/// the edge refuses it unless a project lists hosts).
struct NoOutbound;

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for NoOutbound {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

struct Server {
    pre: ProxyPre<Host>,
    next_id: AtomicU64,
}

impl Server {
    fn new_store(&self) -> Store<Host> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let host = Host {
            table,
            wasi: WasiCtxBuilder::new()
                .env("REQUEST_ID", id.to_string())
                .inherit_stdout()
                .inherit_stderr()
                .build(),
            http: WasiHttpCtx::new(),
            hooks: NoOutbound,
            limits: StoreLimitsBuilder::new()
                .memory_size(MEMORY_LIMIT)
                .table_elements(TABLE_ELEMENTS)
                .build(),
        };
        let mut store = Store::new(self.pre.engine(), host);
        store.limiter(|h| &mut h.limits);
        // Yield to the executor every tick, as the edge does.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        store
    }

    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
        let mut store = self.new_store();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(tx)?;
        let pre = self.pre.clone();
        // Its own task: the instance may go on after the response head
        // (streaming the body, logging).
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match rx.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => match task.await {
                Ok(Ok(())) => bail!("guest never invoked `response-outparam::set`"),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("guest failed before responding")),
                Err(e) => Err(e.into()),
            },
        }
    }
}

fn internal_error() -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(b"500 Internal Server Error\n"))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    resp
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(wasm), Some(addr), None) = (args.next(), args.next(), args.next()) else {
        bail!("usage: bare_host <component.wasm> <listen addr>");
    };
    let addr: SocketAddr = addr.parse().context("invalid listen address")?;

    // The edge runtime's own engine and pool settings: its defaults, and
    // the same pool size setting as `edge-node` (e.g. a small pool to run
    // under valgrind, which cannot reserve the default's address space).
    let mut config = edge_node::functions::RuntimeConfig::new(&std::env::temp_dir());
    if let Ok(n) = std::env::var("OUTPOST_EDGE_MAX_INSTANCES") {
        config.max_concurrent = n
            .parse()
            .context("OUTPOST_EDGE_MAX_INSTANCES is not a number")?;
    }
    let engine = edge_node::functions::engine(&config)?;
    let mut linker = Linker::<Host>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    let component = Component::from_file(&engine, &wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {wasm}"))?;
    let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
    let server = Arc::new(Server {
        pre,
        next_id: AtomicU64::new(0),
    });

    let ticker = engine.clone();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            ticker.increment_epoch();
        })?;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let server = server.clone();
        tokio::task::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move {
                    Ok::<_, Infallible>(server.handle(req).await.unwrap_or_else(|e| {
                        eprintln!("error: {e:?}");
                        internal_error()
                    }))
                }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e:?}");
            }
        });
    }
}
