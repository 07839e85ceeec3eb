//! The per-request store data: WASI context (env, stdio → logs, no files,
//! no sockets), wasi-http context and hooks, and the resource limiter.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outbound::Hooks;

pub(crate) struct Host {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub hooks: Hooks,
    pub limiter: Limiter,
    /// The epoch ticks while this store exists.
    pub _ticking: super::ticker::Ticking,
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

/// Every interface of `wasi:cli/command` plus `wasi:http`: components built
/// with a standard library import environment, exit, filesystem types and
/// sockets even when they only serve HTTP. Filesystem calls find no
/// preopened directory and sockets refuse every address (see the context
/// built per request), so the extra interfaces grant nothing.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// What one request's two sides, the instance (its store and task) and the
/// connection serving it, tell each other: one allocation per request.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// A memory growth was refused (set by the limiter).
    pub memory_exceeded: AtomicBool,
    /// The call failed. Set by the instance's task before its store is
    /// dropped, because dropping it ends the response body as if complete.
    pub failed: AtomicBool,
    /// Epoch yields of the instance so far.
    pub yields: AtomicU32,
    /// The client's request body was read to its end.
    pub body_complete: AtomicBool,
}

/// Caps one instance's linear memory and tables. A refused growth makes
/// `memory.grow` fail (the guest's allocator then usually aborts, which is
/// a trap); the flag tells the caller why the instance died.
pub(crate) struct Limiter {
    pub memory_bytes: usize,
    pub table_elements: usize,
    pub signals: Arc<Signals>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes && maximum.is_none_or(|m| desired <= m);
        if !ok {
            self.signals.memory_exceeded.store(true, Ordering::Relaxed);
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements && maximum.is_none_or(|m| desired <= m))
    }
}
