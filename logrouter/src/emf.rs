//! CloudWatch Embedded Metric Format: the services' counters as JSON lines
//! on stdout, which CloudWatch Logs turns into metrics.
//!
//! On Lambda nothing can scrape a port, and on ECS nothing scrapes one by
//! default; both send a process's stdout to CloudWatch Logs, which extracts
//! the metrics of every line shaped as the EMF specification says. So the
//! same `metrics` macros that feed `/metrics` feed this recorder instead
//! (one recorder per process), with the same names, and each label as a
//! dimension. One dimension is added: `service` (`router` or `loader`),
//! which a Prometheus scrape adds as its job label.
//!
//! [`EmfRecorder::flush`] writes what changed since the last flush:
//! - counters as their increase (CloudWatch sums them), only when non-zero;
//! - gauges as their current value;
//! - histograms as the values recorded (`Values` and `Counts`, values
//!   rounded to three significant digits, at most 100 a document).
//!
//! One document per label set (its dimension values), at most 100 metrics a
//! document, as the specification allows.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use serde_json::{json, Map, Value};

/// A metric's labels, sorted: its dimensions' names and values.
type Labels = Vec<(String, String)>;

/// The most metrics (and histogram values) one document may hold.
const MAX_PER_DOCUMENT: usize = 100;

/// A histogram's values since the last flush.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(value);
    }
}

enum Slot {
    /// The running total, and the total at the last flush.
    Counter(Arc<AtomicU64>, u64),
    /// `f64` bits, as `metrics` stores a gauge in an `AtomicU64`.
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<Samples>),
}

/// The recorder; see the module documentation.
pub struct EmfRecorder {
    namespace: String,
    service: &'static str,
    slots: Mutex<HashMap<Key, Slot>>,
    units: Mutex<HashMap<String, Unit>>,
}

impl EmfRecorder {
    pub fn new(namespace: &str, service: &'static str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            service,
            slots: Mutex::default(),
            units: Mutex::default(),
        }
    }

    /// Writes one line per document (see the module documentation) and
    /// flushes `out`. `timestamp_ms`: milliseconds since the epoch.
    pub fn flush(&self, out: &mut impl Write, timestamp_ms: i64) -> std::io::Result<()> {
        for doc in self.documents(timestamp_ms) {
            serde_json::to_writer(&mut *out, &doc)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Flushes to stdout, logging (not failing on) an error: a metric is
    /// never worth a failed invocation.
    pub fn flush_stdout(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        if let Err(e) = self.flush(&mut std::io::stdout().lock(), now) {
            tracing::warn!(error = %e, "writing EMF metrics to stdout failed");
        }
    }

    fn documents(&self, timestamp_ms: i64) -> Vec<Value> {
        // Label set -> (metric name, value), in a stable order.
        let mut groups: BTreeMap<Labels, Vec<(String, Value)>> = BTreeMap::new();
        {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            for (key, slot) in slots.iter_mut() {
                let values: Vec<Value> = match slot {
                    Slot::Counter(total, flushed) => {
                        let now = total.load(Ordering::Relaxed);
                        let delta = now.saturating_sub(*flushed);
                        *flushed = now;
                        if delta == 0 {
                            continue;
                        }
                        vec![json!(delta)]
                    }
                    Slot::Gauge(bits) => {
                        let v = f64::from_bits(bits.load(Ordering::Relaxed));
                        if !v.is_finite() {
                            continue;
                        }
                        vec![json!(v)]
                    }
                    Slot::Histogram(samples) => {
                        let taken = std::mem::take(
                            &mut *samples.0.lock().unwrap_or_else(|p| p.into_inner()),
                        );
                        histogram_values(&taken)
                    }
                };
                let mut labels: Vec<(String, String)> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                let entry = groups.entry(labels).or_default();
                for v in values {
                    entry.push((key.name().to_owned(), v));
                }
            }
        }
        let units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        let mut docs = Vec::new();
        for (labels, mut metrics) in groups {
            metrics.sort_by(|a, b| a.0.cmp(&b.0));
            // A histogram's values beyond 100 go in further documents: one
            // document cannot name a metric twice.
            let mut batches: Vec<Vec<(String, Value)>> = Vec::new();
            for (name, value) in metrics {
                let fits = batches
                    .iter_mut()
                    .find(|b| b.len() < MAX_PER_DOCUMENT && !b.iter().any(|(n, _)| *n == name));
                match fits {
                    Some(b) => b.push((name, value)),
                    None => batches.push(vec![(name, value)]),
                }
            }
            for batch in batches {
                let mut dims = vec![Value::from("service")];
                let mut doc = Map::new();
                doc.insert("service".into(), Value::from(self.service));
                for (k, v) in &labels {
                    dims.push(Value::from(k.as_str()));
                    doc.insert(k.clone(), Value::from(v.as_str()));
                }
                let defs: Vec<Value> = batch
                    .iter()
                    .map(|(name, _)| json!({"Name": name, "Unit": unit_of(name, units.get(name))}))
                    .collect();
                for (name, value) in batch {
                    doc.insert(name, value);
                }
                doc.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": self.namespace,
                            "Dimensions": [dims],
                            "Metrics": defs,
                        }],
                    }),
                );
                docs.push(Value::Object(doc));
            }
        }
        docs
    }

    fn slot<T>(
        &self,
        key: &Key,
        make: impl FnOnce() -> Slot,
        get: impl Fn(&Slot) -> Option<T>,
    ) -> T {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = slots.get(key).and_then(&get) {
            return found;
        }
        // A name registered before as another kind: the new kind replaces it.
        let slot = make();
        let handle = get(&slot).expect("made of the kind asked for");
        slots.insert(key.clone(), slot);
        handle
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        if let Some(unit) = unit {
            self.units
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.as_str().to_owned(), unit);
        }
    }
}

/// Values and counts of a histogram's samples (three significant digits),
/// as one or more EMF value objects of at most 100 distinct values.
fn histogram_values(samples: &[f64]) -> Vec<Value> {
    let mut counts: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    for &v in samples.iter().filter(|v| v.is_finite()) {
        let r = round3(v);
        counts.entry(r.to_bits()).or_insert((r, 0)).1 += 1;
    }
    let pairs: Vec<(f64, u64)> = counts.into_values().collect();
    pairs
        .chunks(MAX_PER_DOCUMENT)
        .map(|chunk| {
            json!({
                "Values": chunk.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
                "Counts": chunk.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn round3(v: f64) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let digits = 2 - v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// CloudWatch's unit for a metric: the described one, else from its name.
fn unit_of(name: &str, described: Option<&Unit>) -> &'static str {
    match described {
        Some(Unit::Seconds) => "Seconds",
        Some(Unit::Bytes) => "Bytes",
        Some(Unit::Count) => "Count",
        Some(_) => "None",
        None if name.ends_with("_seconds") => "Seconds",
        None if name.contains("bytes") => "Bytes",
        None if name.ends_with("_total") => "Count",
        None => "None",
    }
}

/// What the process installs: the recorder is shared with whoever flushes.
#[derive(Clone)]
pub struct EmfHandle(pub Arc<EmfRecorder>);

impl Recorder for EmfHandle {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.0.describe(key, unit);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.0.describe(key, unit);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.0.describe(key, unit);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.slot(
            key,
            || Slot::Counter(Arc::default(), 0),
            |s| match s {
                Slot::Counter(c, _) => Some(c.clone()),
                _ => None,
            },
        ))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.slot(
            key,
            || Slot::Gauge(Arc::new(AtomicU64::new(0f64.to_bits()))),
            |s| match s {
                Slot::Gauge(g) => Some(g.clone()),
                _ => None,
            },
        ))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.0.slot(
            key,
            || Slot::Histogram(Arc::default()),
            |s| match s {
                Slot::Histogram(h) => Some(h.clone()),
                _ => None,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: &EmfRecorder) -> Vec<Value> {
        let mut out = Vec::new();
        r.flush(&mut out, 1_700_000_000_000).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn counters_are_written_as_increases_with_their_labels_as_dimensions() {
        let r = Arc::new(EmfRecorder::new("logrouter", "router"));
        let h = EmfHandle(r.clone());
        metrics::with_local_recorder(&h, || {
            metrics::counter!("logrouter_router_lines_read_total").increment(7);
            metrics::counter!("logrouter_router_lines_routed_total", "type" => "click")
                .increment(5);
            metrics::counter!("logrouter_router_lines_routed_total", "type" => "play").increment(2);
            metrics::counter!("logrouter_queue_errors_total", "op" => "delete").increment(0);
            metrics::histogram!("logrouter_router_source_seconds").record(0.12345);
            metrics::histogram!("logrouter_router_source_seconds").record(0.1234);
            metrics::gauge!("logrouter_queue_objects_in_flight").set(3.0);
        });
        let docs = lines(&r);
        // No labels (read, seconds, in flight), click, play; the zero
        // counter is not written.
        assert_eq!(docs.len(), 3, "{docs:#?}");
        let plain = &docs[0];
        assert_eq!(plain["service"], "router");
        assert_eq!(plain["logrouter_router_lines_read_total"], 7);
        assert_eq!(plain["logrouter_queue_objects_in_flight"], 3.0);
        assert_eq!(
            plain["logrouter_router_source_seconds"],
            json!({"Values": [0.123], "Counts": [2]})
        );
        let directive = &plain["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "logrouter");
        assert_eq!(directive["Dimensions"], json!([["service"]]));
        assert_eq!(plain["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let units: BTreeMap<String, String> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["Name"].as_str().unwrap().to_owned(),
                    m["Unit"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(units["logrouter_router_lines_read_total"], "Count");
        assert_eq!(units["logrouter_router_source_seconds"], "Seconds");
        let click = &docs[1];
        assert_eq!(click["type"], "click");
        assert_eq!(click["logrouter_router_lines_routed_total"], 5);
        assert_eq!(
            click["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["service", "type"]])
        );
        assert_eq!(docs[2]["type"], "play");

        // Only what changed since: the counter's increase, the gauge again.
        metrics::with_local_recorder(&h, || {
            metrics::counter!("logrouter_router_lines_routed_total", "type" => "click")
                .increment(4);
        });
        let docs = lines(&r);
        assert_eq!(docs.len(), 2, "{docs:#?}");
        assert_eq!(docs[0].get("logrouter_router_lines_read_total"), None);
        assert_eq!(docs[1]["logrouter_router_lines_routed_total"], 4);
    }

    #[test]
    fn a_histogram_of_many_values_spreads_over_documents() {
        let r = Arc::new(EmfRecorder::new("ns", "loader"));
        let h = EmfHandle(r.clone());
        metrics::with_local_recorder(&h, || {
            for i in 0..250 {
                metrics::histogram!("x_seconds").record(f64::from(i) + 1.0);
            }
        });
        let docs = lines(&r);
        assert_eq!(docs.len(), 3);
        let total: u64 = docs
            .iter()
            .flat_map(|d| d["x_seconds"]["Counts"].as_array().unwrap().clone())
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(total, 250);
        assert!(docs
            .iter()
            .all(|d| d["x_seconds"]["Values"].as_array().unwrap().len() <= 100));
    }

    #[test]
    fn rounding_keeps_three_significant_digits() {
        assert_eq!(round3(0.0), 0.0);
        assert_eq!(round3(123456.0), 123000.0);
        assert_eq!(round3(0.0012345), 0.00123);
        assert_eq!(round3(-9.876), -9.88);
    }
}
