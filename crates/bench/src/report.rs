//! Results: a human summary and one JSON line with every figure.

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    /// Every figure, by name (units in the name).
    pub figures: Map<String, Value>,
    /// Things the reader must know (e.g. a limit stopped the ramp).
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, target: &str) -> Report {
        Report {
            scenario: scenario.to_owned(),
            target: target.to_owned(),
            figures: Map::new(),
            notes: Vec::new(),
        }
    }

    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.insert(name.to_owned(), value.into());
    }

    pub fn get_f64(&self, name: &str) -> Option<f64> {
        self.figures.get(name).and_then(Value::as_f64)
    }

    pub fn get_u64(&self, name: &str) -> Option<u64> {
        self.figures.get(name).and_then(Value::as_u64)
    }

    /// Latency percentiles in microseconds from a histogram of nanoseconds.
    pub fn latency(&mut self, prefix: &str, histogram: &Histogram<u64>) {
        if histogram.is_empty() {
            return;
        }
        for (name, q) in [("p50", 0.50), ("p99", 0.99), ("p999", 0.999)] {
            self.set(
                &format!("{prefix}_{name}_us"),
                histogram.value_at_quantile(q) as f64 / 1000.0,
            );
        }
        self.set(&format!("{prefix}_max_us"), histogram.max() as f64 / 1000.0);
    }

    pub fn human(&self) -> String {
        let mut out = format!("== {} against {}\n", self.scenario, self.target);
        for (name, value) in &self.figures {
            let shown = match value.as_f64() {
                Some(v) if v.fract() != 0.0 => format!("{v:.2}"),
                _ => value.to_string(),
            };
            out.push_str(&format!("  {name:<36} {shown}\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        out
    }

    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s in nanoseconds, 3 significant digits.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}
