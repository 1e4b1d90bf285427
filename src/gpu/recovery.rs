//! Surviving a lost device: the GPU context of a `Runtime`, replaced by a new one when the
//! device is lost (a driver reset, a removed GPU, `wgpu::Device::destroy`).
//!
//! A [`ContextSlot`] holds the context in use and every one it replaced, newest last. The
//! call during which the device is lost fails with [`Error::DeviceLost`]; the next call of any
//! model of the runtime (`Model::run`, or `Runtime::recover` explicitly) asks the slot
//! to [`recover`](ContextSlot::recover): the first caller creates a new context on the same
//! adapter with the same options ([`GpuContext::reopen`]: the adapter chosen from a list, as
//! the desktop app does, stays chosen), later callers take that one, and each model rebuilds its
//! pipelines and buffers on it from the weights it keeps on the host. Contexts that were
//! replaced stay allocated until the runtime is dropped (a lost device holds no device
//! memory), which is what lets [`ContextSlot::current`] hand out plain references.

use super::context::GpuContext;
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex, OnceLock};

/// Most devices one slot creates after losses: a device that is lost again and again (a GPU
/// that is gone) makes every call an error after this many.
pub const MAX_RECOVERIES: usize = 16;

struct Generation {
    ctx: Arc<GpuContext>,
    next: OnceLock<Box<Generation>>,
}

/// The GPU context in use, and the ones lost devices left behind.
pub struct ContextSlot {
    first: Generation,
    /// Serialises the creation of a replacement.
    recovering: Mutex<()>,
}

impl std::fmt::Debug for ContextSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ContextSlot({:?}, {} recoveries)",
            self.current(),
            self.recoveries()
        )
    }
}

impl ContextSlot {
    /// A slot starting with `ctx`.
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        Self {
            first: Generation {
                ctx,
                next: OnceLock::new(),
            },
            recovering: Mutex::new(()),
        }
    }

    fn last(&self) -> &Generation {
        let mut g = &self.first;
        while let Some(n) = g.next.get() {
            g = n;
        }
        g
    }

    /// The context in use (the newest).
    pub fn current(&self) -> &Arc<GpuContext> {
        &self.last().ctx
    }

    /// How many times the device was recreated.
    pub fn recoveries(&self) -> usize {
        let (mut n, mut g) = (0, &self.first);
        while let Some(next) = g.next.get() {
            (n, g) = (n + 1, next);
        }
        n
    }

    /// The context to use now: the current one when its device is alive, else a new one
    /// (created here by the first caller; [`Error::DeviceLost`] after [`MAX_RECOVERIES`], or
    /// the error of creating it, e.g. [`Error::NoAdapter`] when the GPU is gone).
    pub fn recover(&self) -> Result<&Arc<GpuContext>> {
        let last = self.last();
        let Some(why) = last.ctx.lost() else {
            return Ok(&last.ctx);
        };
        let _one = self.recovering.lock().unwrap_or_else(|p| p.into_inner());
        // Another caller may have replaced it while we waited.
        let last = self.last();
        if last.ctx.lost().is_none() {
            return Ok(&last.ctx);
        }
        if self.recoveries() >= MAX_RECOVERIES {
            return Err(Error::DeviceLost(format!(
                "the device ({}) is lost ({why}) and was recreated {MAX_RECOVERIES} times \
                 already; giving up",
                last.ctx.info.name
            )));
        }
        let ctx = Arc::new(last.ctx.reopen()?);
        log::warn!(
            "the device ({}) was lost ({why}); recreated it ({})",
            last.ctx.info.name,
            ctx.describe()
        );
        let next = last.next.get_or_init(|| {
            Box::new(Generation {
                ctx,
                next: OnceLock::new(),
            })
        });
        Ok(&next.ctx)
    }
}
