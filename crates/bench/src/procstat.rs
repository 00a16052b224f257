//! CPU time and resident memory of a process, from `/proc` (Linux).

/// Clock ticks per second for `/proc/<pid>/stat`; 100 on every Linux this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
    /// The system (kernel) part of `cpu_seconds`. On loopback, a socket
    /// write also runs the receiving side's TCP stack, charged to the writer.
    pub kernel_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
}

pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields resume after ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' : state(3) ppid(4) ... utime(14) stime(15) => indices 11, 12
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(Sample {
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        kernel_seconds: stime / TICKS_PER_SECOND,
        rss_bytes: rss_kib * 1024,
    })
}

/// What the server used between two samples.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub kernel_seconds: f64,
}

impl Usage {
    /// The kernel's share of the CPU time, 0..=1.
    pub fn kernel_share(&self) -> f64 {
        if self.cpu_seconds > 0.0 {
            self.kernel_seconds / self.cpu_seconds
        } else {
            0.0
        }
    }
}

/// The server's CPU use between two samples.
pub fn delta(before: Option<Sample>, after: Option<Sample>) -> Option<Usage> {
    let (b, a) = (before?, after?);
    Some(Usage {
        cpu_seconds: a.cpu_seconds - b.cpu_seconds,
        kernel_seconds: a.kernel_seconds - b.kernel_seconds,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let s = super::sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
        assert!(s.kernel_seconds <= s.cpu_seconds);
    }
}
