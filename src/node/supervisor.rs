//! The daemon's long-lived tasks under one owner. Each has a name; one that ends while the
//! node runs — it returned, or it panicked — stops the node, and the reason is logged and
//! returned (`cod node run` then exits non-zero, so a service manager restarts it). A node
//! stopping gives its tasks a grace period to finish what they are doing, then aborts the
//! rest, so the caller can close the store knowing no task still uses it.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

/// A task that ended while the node ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {task} task {how}; the node stopped")]
pub struct Ended {
    pub task: &'static str,
    /// "returned", or "panicked: " and the panic's message.
    pub how: String,
}

/// Named tasks, and the token that stops them all.
pub struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    shutdown: CancellationToken,
}

impl Supervisor {
    /// Tasks that stop when `shutdown` is cancelled (each must watch it).
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            shutdown,
        }
    }

    /// Starts a task that runs as long as the node does.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Runs until the shutdown token is cancelled or a task ends, whichever comes first; then
    /// cancels the token, waits up to `grace` for every task to end, and aborts the others.
    /// `Err`: the first task that ended on its own, and how.
    pub async fn run(mut self, grace: Duration) -> Result<(), Ended> {
        let mut ended = None;
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => {}
            Some(result) = self.tasks.join_next_with_id() => {
                // (One that ends because the node is stopping ended as it should.)
                if !self.shutdown.is_cancelled() {
                    ended = Some(self.ended(result));
                }
            }
        }
        self.shutdown.cancel();
        let (tasks, names) = (&mut self.tasks, &mut self.names);
        let drain = async {
            while let Some(r) = tasks.join_next_with_id().await {
                names.remove(&r.map_or_else(|e| e.id(), |(id, ())| id));
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            let mut late: Vec<&str> = self.names.values().copied().collect();
            late.sort();
            tracing::warn!(
                "tasks still running {} s after the stop, aborted: {}",
                grace.as_secs_f64(),
                late.join(", ")
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        match ended {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn ended(&self, result: Result<(Id, ()), JoinError>) -> Ended {
        let (id, how) = match result {
            Ok((id, ())) => (id, "returned".to_string()),
            Err(e) => {
                let id = e.id();
                let how = match e.try_into_panic() {
                    Ok(payload) => format!("panicked: {}", panic_message(payload.as_ref())),
                    Err(_) => "was cancelled".to_string(),
                };
                (id, how)
            }
        };
        Ended {
            task: self.names.get(&id).copied().unwrap_or("unnamed"),
            how,
        }
    }
}

/// The message a panic carried, if it was a string.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that runs until the node stops.
    async fn until(token: CancellationToken) {
        token.cancelled().await;
    }

    #[tokio::test]
    async fn a_stop_ends_every_task_and_is_no_error() {
        let token = CancellationToken::new();
        let mut s = Supervisor::new(token.clone());
        s.spawn("a", until(token.clone()));
        s.spawn("b", until(token.clone()));
        let stop = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stop.cancel();
        });
        assert_eq!(s.run(Duration::from_secs(60)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_task_that_panics_stops_the_node_and_is_named() {
        let token = CancellationToken::new();
        let mut s = Supervisor::new(token.clone());
        s.spawn("quiet", until(token.clone()));
        s.spawn("sync", async { panic!("the peer table is inconsistent") });
        let ended = s.run(Duration::from_secs(60)).await.unwrap_err();
        assert_eq!(ended.task, "sync");
        assert_eq!(ended.how, "panicked: the peer table is inconsistent");
        assert!(token.is_cancelled(), "the others were told to stop");
        assert!(ended.to_string().contains("sync task panicked"), "{ended}");
    }

    #[tokio::test]
    async fn a_task_that_returns_early_stops_the_node() {
        let token = CancellationToken::new();
        let mut s = Supervisor::new(token.clone());
        s.spawn("api", until(token.clone()));
        s.spawn("mirror", async {});
        let ended = s.run(Duration::from_secs(60)).await.unwrap_err();
        assert_eq!((ended.task, ended.how.as_str()), ("mirror", "returned"));
    }

    /// A task that ignores the stop is aborted once the grace period is over.
    #[tokio::test]
    async fn a_task_that_outstays_the_grace_period_is_aborted() {
        let token = CancellationToken::new();
        let mut s = Supervisor::new(token.clone());
        s.spawn("stubborn", std::future::pending());
        token.cancel();
        let run = s.run(Duration::from_millis(50));
        let result = tokio::time::timeout(Duration::from_secs(60), run).await;
        assert_eq!(result.expect("aborted, not waited for"), Ok(()));
    }
}
