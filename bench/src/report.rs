//! Timing statistics and the results table.

use std::time::Duration;

/// Durations of repeated runs.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Records one run.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// The `q`-quantile (nearest rank), 0 when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    /// How many runs were recorded.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The median.
    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    /// `median 1.23 ms (p10 … p90 …, n=50)`.
    pub fn summary(&self) -> String {
        format!(
            "median {} (p10 {}, p90 {}, n={})",
            ms(self.median()),
            ms(self.quantile(0.1)),
            ms(self.quantile(0.9)),
            self.0.len()
        )
    }
}

/// `1.234 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Whether a target is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Met {
    /// Met.
    Yes,
    /// Not met.
    No,
    /// No target (context figure).
    Info,
}

impl Met {
    /// `yes`/`no` from a condition.
    pub fn from(ok: bool) -> Met {
        if ok { Met::Yes } else { Met::No }
    }

    fn as_str(self) -> &'static str {
        match self {
            Met::Yes => "yes",
            Met::No => "NO",
            Met::Info => "-",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// What was measured.
    pub figure: String,
    /// The target.
    pub target: String,
    /// Whether it was met.
    pub met: Met,
}

impl Row {
    /// A row.
    pub fn new(scenario: &str, figure: String, target: &str, met: Met) -> Row {
        Row {
            scenario: scenario.to_owned(),
            figure,
            target: target.to_owned(),
            met,
        }
    }
}

/// The rows as a Markdown table (readable on a terminal, pasteable into BENCHMARKS.md).
pub fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| scenario | figure | target | met? |\n| --- | --- | --- | --- |\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.scenario,
            row.figure,
            row.target,
            row.met.as_str()
        ));
    }
    out
}

/// `VmHWM` (peak resident set) and `VmRSS` of this process, in KiB.
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// User + system CPU seconds of the process whose `/proc/PID/stat` is `stat`.
pub fn cpu_seconds(stat: &std::path::Path) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // After the parenthesised command the fields start at 3 (state); utime is 14 and
    // stime 15, in clock ticks (100 per second on Linux).
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

/// CPU seconds of this process.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::path::Path::new("/proc/self/stat"))
}
