//! ONNX Runtime's profiler output (a Chrome-trace JSON array), read into per-node and
//! per-op-type times.
//!
//! ORT writes one `"cat": "Node"` event per node execution (`<node>_kernel_time`, plus
//! `_fence_before`/`_fence_after` markers of zero length), with the node's op type and provider
//! in `args`, and one `"cat": "Session"` `model_run` event per run. Durations are microseconds.

use super::{OnnxError, Result};
use std::collections::BTreeMap;

/// One node's kernel execution.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelEvent {
    pub node: String,
    pub op_type: String,
    pub provider: String,
    pub micros: f64,
    /// Start, microseconds since the profile began.
    pub start: f64,
}

/// The events of a profile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub kernels: Vec<KernelEvent>,
    /// Durations of each `model_run`, microseconds.
    pub runs: Vec<f64>,
    /// Start of each `model_run`, microseconds since the profile began.
    pub run_starts: Vec<f64>,
}

/// Time of one (op type, provider) pair in a profile.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OpTypeTime {
    pub op_type: String,
    pub provider: String,
    /// Distinct nodes of this op type and provider.
    pub nodes: usize,
    /// Kernel time per run, milliseconds (total over the profiled runs / runs).
    pub ms_per_run: f64,
    /// Share of all kernel time, in percent.
    pub percent: f64,
}

impl Profile {
    /// Parses the profiler's JSON text; `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let bad = |d: String| OnnxError::Runtime(format!("profile {what}: {d}"));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let events = v
            .as_array()
            .ok_or_else(|| bad("not a JSON array of events".into()))?;
        let mut p = Profile::default();
        for ev in events {
            let dur = ev["dur"].as_f64().unwrap_or(0.0);
            let start = ev["ts"].as_f64().unwrap_or(0.0);
            let name = ev["name"].as_str().unwrap_or("");
            match ev["cat"].as_str() {
                Some("Session") if name == "model_run" => {
                    p.runs.push(dur);
                    p.run_starts.push(start);
                }
                Some("Node") => {
                    let Some(node) = name.strip_suffix("_kernel_time") else {
                        continue;
                    };
                    let args = &ev["args"];
                    let (Some(op), Some(provider)) =
                        (args["op_name"].as_str(), args["provider"].as_str())
                    else {
                        continue;
                    };
                    p.kernels.push(KernelEvent {
                        node: node.to_string(),
                        op_type: op.to_string(),
                        provider: provider.to_string(),
                        micros: dur,
                        start,
                    });
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// The profile without its first `n` runs (e.g. a warm-up run, which allocates).
    pub fn skip_runs(&self, n: usize) -> Profile {
        let Some(&from) = self.run_starts.get(n) else {
            return Profile::default();
        };
        Profile {
            kernels: self
                .kernels
                .iter()
                .filter(|k| k.start >= from)
                .cloned()
                .collect(),
            runs: self.runs[n..].to_vec(),
            run_starts: self.run_starts[n..].to_vec(),
        }
    }

    /// Kernel time summed per (op type, provider), per run (`runs` profiled runs), largest first.
    pub fn by_op_type(&self, runs: usize) -> Vec<OpTypeTime> {
        let runs = runs.max(1) as f64;
        let mut acc: BTreeMap<(&str, &str), (f64, std::collections::BTreeSet<&str>)> =
            BTreeMap::new();
        for k in &self.kernels {
            let e = acc
                .entry((k.op_type.as_str(), k.provider.as_str()))
                .or_default();
            e.0 += k.micros;
            e.1.insert(k.node.as_str());
        }
        let total: f64 = acc.values().map(|(t, _)| t).sum();
        let mut out: Vec<OpTypeTime> = acc
            .into_iter()
            .map(|((op, provider), (t, nodes))| OpTypeTime {
                op_type: op.to_string(),
                provider: provider.to_string(),
                nodes: nodes.len(),
                ms_per_run: t / runs / 1e3,
                percent: if total > 0.0 { 100.0 * t / total } else { 0.0 },
            })
            .collect();
        out.sort_by(|a, b| b.ms_per_run.total_cmp(&a.ms_per_run));
        out
    }

    /// Node → (op type, provider), as the profiler saw them.
    pub fn placement(&self) -> BTreeMap<String, (String, String)> {
        let mut m = BTreeMap::new();
        for k in &self.kernels {
            m.entry(k.node.clone())
                .or_insert_with(|| (k.op_type.clone(), k.provider.clone()));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[
      {"cat":"Session","pid":1,"tid":1,"dur":900,"ts":1,"ph":"X","name":"model_run","args":{}},
      {"cat":"Node","pid":1,"tid":1,"dur":0,"ts":2,"ph":"X","name":"conv1_fence_before","args":{"op_name":"Conv"}},
      {"cat":"Node","pid":1,"tid":1,"dur":300,"ts":2,"ph":"X","name":"conv1_kernel_time","args":{"op_name":"Conv","provider":"CPUExecutionProvider"}},
      {"cat":"Node","pid":1,"tid":1,"dur":100,"ts":3,"ph":"X","name":"conv2_kernel_time","args":{"op_name":"Conv","provider":"CPUExecutionProvider"}},
      {"cat":"Node","pid":1,"tid":1,"dur":400,"ts":4,"ph":"X","name":"up_kernel_time","args":{"op_name":"DySample","provider":"CPUExecutionProvider"}},
      {"cat":"Session","pid":1,"tid":1,"dur":700,"ts":5,"ph":"X","name":"model_run","args":{}},
      {"cat":"Node","pid":1,"tid":1,"dur":200,"ts":6,"ph":"X","name":"conv1_kernel_time","args":{"op_name":"Conv","provider":"CPUExecutionProvider"}},
      {"cat":"Node","pid":1,"tid":1,"dur":400,"ts":7,"ph":"X","name":"up_kernel_time","args":{"op_name":"DySample","provider":"CPUExecutionProvider"}}
    ]"#;

    #[test]
    fn sums_per_op_type_and_run() {
        let p = Profile::parse(SAMPLE, "x.json").unwrap();
        assert_eq!(p.runs, vec![900.0, 700.0]);
        assert_eq!(p.kernels.len(), 5);
        let t = p.by_op_type(2);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].op_type.as_str(), t[0].nodes, t[0].ms_per_run),
            ("DySample", 1, 0.4)
        );
        assert_eq!(
            (t[1].op_type.as_str(), t[1].nodes, t[1].ms_per_run),
            ("Conv", 2, 0.3)
        );
        assert!((t[0].percent + t[1].percent - 100.0).abs() < 1e-9);
        assert_eq!(p.placement()["up"].0, "DySample");
        let second = p.skip_runs(1);
        assert_eq!(
            (second.runs.clone(), second.kernels.len()),
            (vec![700.0], 2)
        );
        assert_eq!(second.by_op_type(1)[0].ms_per_run, 0.4);
        assert!(p.skip_runs(2).kernels.is_empty());
    }

    #[test]
    fn garbage_names_the_file() {
        let e = Profile::parse("{", "p.json").unwrap_err().to_string();
        assert!(e.contains("profile p.json"), "{e}");
        let e = Profile::parse("{}", "p.json").unwrap_err().to_string();
        assert!(e.contains("not a JSON array"), "{e}");
    }
}
