//! The decode pool: `media.decode_concurrency` threads of its own that
//! run every image and voice decode.
//!
//! Not tokio's blocking pool: that pool starts a new thread whenever none
//! is idle, and glibc gives each thread its own malloc arena, which keeps
//! the memory a 12 MP decode freed (tens of MB) for that thread's next
//! use. Decodes spread over many threads made the server's resident
//! memory grow with the number of uploads at once (the media benchmark:
//! 186 MiB at 4, 240 MiB at 16, with 2 decodes running in either case).
//! A fixed set of threads keeps it to `decode_concurrency` arenas. A
//! channel and a few threads is all it takes; a pool crate would add
//! work stealing we do not need.

use std::sync::{Arc, Mutex, mpsc};

type Job = Box<dyn FnOnce() + Send>;

pub struct DecodePool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl DecodePool {
    pub fn new(threads: usize) -> DecodePool {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads.max(1) {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("media-decode-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking a job.
                        let job = match receiver.lock() {
                            Ok(jobs) => jobs.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            // The pool was dropped: no more jobs.
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a media decode thread");
            }
        }
        DecodePool {
            jobs: Mutex::new(sender),
        }
    }

    /// Runs `work` on a pool thread; its result, or `None` if it panicked
    /// or the pool is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (answer, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // Its request was dropped while it waited: nobody wants it.
            if answer.is_closed() {
                return;
            }
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            if let Ok(value) = outcome {
                let _ = answer.send(value);
            }
        });
        self.jobs.lock().ok()?.send(job).ok()?;
        result.await.ok()
    }
}
