//! One named thread that runs the log's slow chores in order, off the
//! threads that append and serve requests: page-cache drops
//! (`drop_behind`) and deleting the files of removed partitions.
//!
//! Started on first use. A job must not fail the caller: if the thread
//! cannot be started the job runs on the caller's thread instead, which is
//! slower but loses nothing.

use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

use tracing::warn;

type Job = Box<dyn FnOnce() + Send>;

/// A background thread, declared as a `static` per chore.
pub(crate) struct Background {
    name: &'static str,
    jobs: OnceLock<Option<Sender<Job>>>,
}

impl Background {
    pub(crate) const fn new(name: &'static str) -> Background {
        Background {
            name,
            jobs: OnceLock::new(),
        }
    }

    /// Run `job` on the thread, after the jobs submitted before it.
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'static) {
        let jobs = self.jobs.get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name(self.name.to_owned())
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                });
            match spawned {
                Ok(_) => Some(tx),
                Err(e) => {
                    warn!(thread = self.name, error = %e, "cannot start a background thread; its jobs run inline");
                    None
                }
            }
        });
        match jobs {
            // The thread never exits while the sender lives, so this cannot fail.
            Some(tx) => {
                let _ = tx.send(Box::new(job));
            }
            None => job(),
        }
    }
}
