//! CPU time and resident memory of a process, from `/proc` (Linux).

/// Clock ticks per second for `/proc/<pid>/stat`; 100 on every Linux this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
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
        rss_bytes: rss_kib * 1024,
    })
}

/// The server's CPU seconds and RSS between two samples.
pub fn delta(before: Option<Sample>, after: Option<Sample>) -> Option<(f64, i64)> {
    let (b, a) = (before?, after?);
    Some((
        a.cpu_seconds - b.cpu_seconds,
        a.rss_bytes as i64 - b.rss_bytes as i64,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let s = super::sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
    }
}
