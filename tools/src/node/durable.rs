//! Group commit at the node: one thread waits for durability on behalf of every request in
//! flight. A synced write appends on the request's own task, registers its LSN here and
//! awaits a oneshot; the waiter takes every LSN registered, waits once for the highest
//! (`Engine::wait_durable`, which seals the stripe being filled), and answers all of them.
//! One thread woken per flush instead of one blocking thread per request: the node spent
//! most of a synced put's CPU in thread hand-offs before (docs/performance.md, "The storage
//! node").

use super::routes::ApiError;
use anyhow::{Context, Result};
use ectable_engine::Engine;
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::oneshot;

type Answer = oneshot::Sender<std::result::Result<u64, ApiError>>;

#[derive(Default)]
struct Queue {
    waiting: Vec<(u64, Answer)>,
    stopped: bool,
}

/// The waiter thread and its queue.
pub struct Waiter {
    shared: Arc<(Mutex<Queue>, Condvar)>,
}

impl Waiter {
    /// Starts the thread; it stops when the `Waiter` is dropped.
    pub fn start(engine: Arc<Engine>) -> Result<Waiter> {
        let shared: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("ectable-node-durable".into())
            .spawn(move || run(&engine, &s))
            .context("starting the durability waiter")?;
        Ok(Waiter { shared })
    }

    /// Resolves once `lsn` (and everything before it) is durable.
    pub async fn wait(&self, lsn: u64) -> std::result::Result<u64, ApiError> {
        let (tx, rx) = oneshot::channel();
        {
            let (q, cv) = &*self.shared;
            let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
            q.waiting.push((lsn, tx));
            cv.notify_one();
        }
        rx.await
            .unwrap_or_else(|_| Err(ApiError::from(ectable_engine::Error::Closed)))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let (q, cv) = &*self.shared;
        q.lock().unwrap_or_else(|p| p.into_inner()).stopped = true;
        cv.notify_all();
    }
}

fn run(engine: &Engine, shared: &(Mutex<Queue>, Condvar)) {
    let (q, cv) = shared;
    loop {
        let batch = {
            let mut g = q.lock().unwrap_or_else(|p| p.into_inner());
            while g.waiting.is_empty() && !g.stopped {
                g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            if g.waiting.is_empty() {
                return;
            }
            std::mem::take(&mut g.waiting)
        };
        let highest = batch.iter().map(|(l, _)| *l).max().unwrap_or(0);
        let r = engine.wait_durable(highest).map_err(ApiError::from);
        for (_, tx) in batch {
            let _ = tx.send(r.clone());
        }
    }
}
