//! Numbers the store reports about itself, for the service's metrics (docs/operations.md).
//!
//! The store does not depend on a metrics library: it calls the [`CommitObserver`] the
//! process installed once with [`set_commit_observer`] (the server's metrics), and nothing
//! when none is installed. The observer is process-wide because the group commit thread is
//! started deep inside a store's constructor; a process serves one store.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Hears about each group-commit batch (crates/store/src/sqlite/group_commit.rs).
pub trait CommitObserver: Send + Sync {
    /// A batch of `writes` login-path writes was committed (`ok`) or failed, taking `commit`
    /// from the start of its transaction to the end of its commit (the fsync included).
    fn batch(&self, writes: usize, commit: Duration, ok: bool);
}

static OBSERVER: OnceLock<Arc<dyn CommitObserver>> = OnceLock::new();

/// Installs the process's observer; `false` if one was installed already (it stays).
pub fn set_commit_observer(observer: Arc<dyn CommitObserver>) -> bool {
    OBSERVER.set(observer).is_ok()
}

/// Reports a batch to the observer, if any.
pub(crate) fn batch(writes: usize, commit: Duration, ok: bool) {
    if let Some(observer) = OBSERVER.get() {
        observer.batch(writes, commit, ok);
    }
}
