//! `iyagi-bench`: drives a running iyagi server (or the bare relay in
//! [`relay`]) over its real protocol and reports throughput, latency,
//! losses, duplicates, and the server's CPU time and memory (read from
//! `/proc/<pid>`).

pub mod client;
pub mod procstat;
pub mod relay;
pub mod report;
pub mod scenarios;
pub mod setup;

pub use report::Report;
