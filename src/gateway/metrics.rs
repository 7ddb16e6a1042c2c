//! Latency histograms and the queue-depth gauge of `GET /metrics`, in the
//! Prometheus text format.
//!
//! Label values come from a closed set only: plugin names from the rule
//! set, the fixed delivery states and attempt outcomes. Nothing read from
//! a request or a payload becomes a label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::QueueDepth;

/// Upper bounds, in seconds, of the latency buckets. A push attempt times
/// out after 10 s, so the last finite bucket holds every attempt that
/// ended in time.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with fixed buckets: one counter per bucket (not
/// cumulative; rendering adds them up), the sum and the count.
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    /// Observations above the last bound.
    overflow: AtomicU64,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .map_or(&self.overflow, |i| &self.buckets[i]);
        bucket.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `_bucket`, `_sum` and `_count` lines; `labels` is empty or
    /// `name="value",...` without braces.
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.overflow.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {cumulative}"
        );
        let braces = |labels: &str| {
            if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            }
        };
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// How a push attempt ended, as the delivery histogram labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttemptOutcome {
    /// A 2xx.
    Ok,
    /// Failed; tried again later.
    Retry,
    /// Failed for the last time.
    Dead,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Dead => "dead",
        }
    }
}

/// One histogram per push plugin and outcome, made on first use. Plugins
/// are those the workers run for, so the rule set bounds the keys.
#[derive(Default)]
pub struct DeliveryHistograms {
    by_plugin: Mutex<BTreeMap<(String, AttemptOutcome), Histogram>>,
}

impl DeliveryHistograms {
    pub fn observe(&self, plugin: &str, outcome: AttemptOutcome, elapsed: Duration) {
        let mut map = match self.by_plugin.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry((plugin.to_string(), outcome))
            .or_default()
            .observe(elapsed);
    }

    /// Every plugin's and outcome's histogram, under one HELP and TYPE.
    pub fn render(&self, out: &mut String) {
        let name = "phigate_delivery_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Push attempts, from signing the request to its answer, \
             by plugin and outcome.\n# TYPE {name} histogram"
        );
        let map = match self.by_plugin.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        for ((plugin, outcome), histogram) in map.iter() {
            let labels = format!(
                "plugin=\"{}\",outcome=\"{}\"",
                escape(plugin),
                outcome.as_str()
            );
            histogram.render(name, &labels, out);
        }
    }
}

/// Renders the publish histogram with its HELP and TYPE lines.
pub fn render_publish(histogram: &Histogram, out: &mut String) {
    let name = "phigate_publish_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Publishes, from the start of the request to the 202.\n\
         # TYPE {name} histogram"
    );
    histogram.render(name, "", out);
}

/// The queue-depth gauge: three lines (pending, leased, dead) for each
/// plugin of the rule set in force, and for any other plugin the store
/// still holds deliveries of (one removed by a reload).
pub fn render_queue_depth<'a>(
    plugins: impl Iterator<Item = &'a str>,
    depths: &[QueueDepth],
    out: &mut String,
) {
    let name = "phigate_queue_depth";
    let _ = writeln!(
        out,
        "# HELP {name} Deliveries per plugin: pending (incl. expired leases), leased, dead.\n\
         # TYPE {name} gauge"
    );
    let mut rows: BTreeMap<&str, [u64; 3]> = plugins.map(|plugin| (plugin, [0; 3])).collect();
    for depth in depths {
        rows.insert(&depth.plugin, [depth.pending, depth.leased, depth.dead]);
    }
    for (plugin, counts) in rows {
        for (state, count) in ["pending", "leased", "dead"].iter().zip(counts) {
            let _ = writeln!(
                out,
                "{name}{{plugin=\"{}\",state=\"{state}\"}} {count}",
                escape(plugin)
            );
        }
    }
}

/// Escapes a label value as the text format asks. Plugin names are
/// checked identifiers, so this is only a guard.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_everything() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(60));
        let mut out = String::new();
        histogram.render("h", "", &mut out);

        assert!(out.contains("h_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.025\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("h_count 3\n"), "{out}");
        assert!(out.contains("h_sum 60.0305\n"), "{out}");
        assert_eq!(histogram.count(), 3);
    }

    #[test]
    fn labels_come_before_le() {
        let histograms = DeliveryHistograms::default();
        histograms.observe("hook", AttemptOutcome::Retry, Duration::from_millis(2));
        let mut out = String::new();
        histograms.render(&mut out);
        assert!(
            out.contains(
                "phigate_delivery_duration_seconds_bucket{plugin=\"hook\",outcome=\"retry\",le=\"0.0025\"} 1\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "phigate_delivery_duration_seconds_count{plugin=\"hook\",outcome=\"retry\"} 1\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn every_plugin_of_the_rule_set_has_a_depth() {
        let depths = [QueueDepth {
            plugin: "hook".into(),
            pending: 2,
            leased: 1,
            dead: 3,
        }];
        let mut out = String::new();
        render_queue_depth(["hook", "puller"].into_iter(), &depths, &mut out);
        assert!(out.contains("phigate_queue_depth{plugin=\"hook\",state=\"pending\"} 2\n"));
        assert!(out.contains("phigate_queue_depth{plugin=\"hook\",state=\"leased\"} 1\n"));
        assert!(out.contains("phigate_queue_depth{plugin=\"hook\",state=\"dead\"} 3\n"));
        assert!(out.contains("phigate_queue_depth{plugin=\"puller\",state=\"dead\"} 0\n"));
    }
}
