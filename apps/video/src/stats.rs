//! Per-stage timing: fixed-size histograms (10 µs buckets up to 2 s), a one-line status each
//! second and a p50/p99 table at the end. Recording allocates nothing.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The pipeline's stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Capture,
    Decode,
    Preprocess,
    Network,
    Postprocess,
    Render,
    Display,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Capture,
        Stage::Decode,
        Stage::Preprocess,
        Stage::Network,
        Stage::Postprocess,
        Stage::Render,
        Stage::Display,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Stage::Capture => "capture",
            Stage::Decode => "decode",
            Stage::Preprocess => "preprocess",
            Stage::Network => "network",
            Stage::Postprocess => "postprocess",
            Stage::Render => "render",
            Stage::Display => "display",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Stage::Capture => "cap",
            Stage::Decode => "dec",
            Stage::Preprocess => "pre",
            Stage::Network => "net",
            Stage::Postprocess => "post",
            Stage::Render => "render",
            Stage::Display => "disp",
        }
    }
}

const BUCKET_NS: u64 = 10_000;
const BUCKETS: usize = 200_000;

/// Durations in 10 µs buckets; longer than 2 s go to the last bucket (the max is kept exactly).
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Box<[u32]>,
    count: u64,
    sum_ns: u64,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum_ns: 0,
            max_ns: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, ns: u64) {
        let b = ((ns / BUCKET_NS) as usize).min(BUCKETS - 1);
        self.buckets[b] += 1;
        self.count += 1;
        self.sum_ns += ns;
        self.max_ns = self.max_ns.max(ns);
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.count as f64 / 1e6
        }
    }
    pub fn max_ms(&self) -> f64 {
        self.max_ns as f64 / 1e6
    }
    /// The `q` quantile in ms (bucket centre; at most 5 µs off), 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                if i == BUCKETS - 1 {
                    return self.max_ms();
                }
                return ((i as u64 * BUCKET_NS + BUCKET_NS / 2) as f64 / 1e6).min(self.max_ms());
            }
        }
        self.max_ms()
    }
    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
        self.count += o.count;
        self.sum_ns += o.sum_ns;
        self.max_ns = self.max_ns.max(o.max_ns);
    }
}

/// Timing of every stage, with a status line each second.
#[derive(Debug)]
pub struct Stats {
    hist: [Histogram; 7],
    window: [(u64, u64); 7],
    frames: u64,
    window_frames: u64,
    started: Instant,
    window_start: Instant,
    stopped: Option<Instant>,
    line: String,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            hist: Default::default(),
            window: [(0, 0); 7],
            frames: 0,
            window_frames: 0,
            started: now,
            window_start: now,
            stopped: None,
            line: String::with_capacity(256),
        }
    }

    /// Restarts the clocks (after warm-up) and clears everything.
    pub fn reset(&mut self) {
        for h in &mut self.hist {
            *h = Histogram::default();
        }
        self.window = [(0, 0); 7];
        self.frames = 0;
        self.window_frames = 0;
        self.started = Instant::now();
        self.window_start = self.started;
        self.stopped = None;
    }

    /// Stops the clock: [`Stats::fps`] and [`Stats::elapsed`] no longer advance.
    pub fn stop(&mut self) {
        self.stopped.get_or_insert_with(Instant::now);
    }

    pub fn record(&mut self, stage: Stage, ns: u64) {
        let i = stage as usize;
        self.hist[i].record(ns);
        self.window[i].0 += 1;
        self.window[i].1 += ns;
    }

    /// One more frame finished.
    pub fn frame_done(&mut self) {
        self.frames += 1;
        self.window_frames += 1;
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }
    pub fn histogram(&self, s: Stage) -> &Histogram {
        &self.hist[s as usize]
    }
    pub fn histogram_mut(&mut self, s: Stage) -> &mut Histogram {
        &mut self.hist[s as usize]
    }
    pub fn elapsed(&self) -> Duration {
        self.stopped.unwrap_or_else(Instant::now) - self.started
    }
    /// Frames per second since the start (or the last reset).
    pub fn fps(&self) -> f64 {
        let s = self.elapsed().as_secs_f64();
        if s > 0.0 {
            self.frames as f64 / s
        } else {
            0.0
        }
    }

    /// The status line when a second has passed since the last one (and resets the window).
    /// `extra` is appended (drop counts and the like). Formats into a reused buffer.
    pub fn status_line(&mut self, extra: std::fmt::Arguments<'_>) -> Option<&str> {
        let dt = self.window_start.elapsed();
        if dt < Duration::from_secs(1) {
            return None;
        }
        self.line.clear();
        let fps = self.window_frames as f64 / dt.as_secs_f64();
        let _ = write!(self.line, "frame {:>5} | {:6.1} fps |", self.frames, fps);
        for s in Stage::ALL {
            let (n, ns) = self.window[s as usize];
            if n > 0 {
                let _ = write!(
                    self.line,
                    " {} {:.1}",
                    s.short(),
                    ns as f64 / n as f64 / 1e6
                );
            }
        }
        let _ = write!(self.line, " ms | {extra}");
        self.window = [(0, 0); 7];
        self.window_frames = 0;
        self.window_start = Instant::now();
        Some(&self.line)
    }

    /// The table printed at exit.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<12} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "stage", "frames", "mean ms", "p50 ms", "p99 ms", "max ms"
        );
        let mut total = 0.0;
        for s in Stage::ALL {
            let h = &self.hist[s as usize];
            if h.count() == 0 {
                continue;
            }
            total += h.mean_ms();
            let _ = writeln!(
                t,
                "{:<12} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                s.name(),
                h.count(),
                h.mean_ms(),
                h.quantile_ms(0.5),
                h.quantile_ms(0.99),
                h.max_ms()
            );
        }
        let _ = write!(
            t,
            "{:<12} {:>8} {:>9.2}   ({:.1} fps over {:.1} s)",
            "sum",
            self.frames,
            total,
            self.fps(),
            self.elapsed().as_secs_f64()
        );
        t
    }
}

/// Nanoseconds since `t`.
pub fn ns_since(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for i in 1..=100u64 {
            h.record(i * 1_000_000); // 1..100 ms
        }
        assert!(
            (h.quantile_ms(0.5) - 50.005).abs() < 0.01,
            "{}",
            h.quantile_ms(0.5)
        );
        assert!((h.quantile_ms(0.99) - 99.005).abs() < 0.01);
        assert!((h.mean_ms() - 50.5).abs() < 1e-9);
        h.record(5_000_000_000);
        assert_eq!(h.quantile_ms(1.0), 5000.0);
        assert_eq!(Histogram::default().quantile_ms(0.5), 0.0);
    }

    #[test]
    fn table_lists_recorded_stages() {
        let mut s = Stats::new();
        s.record(Stage::Network, 2_000_000);
        s.record(Stage::Decode, 1_000_000);
        s.frame_done();
        let t = s.table();
        assert!(
            t.contains("network") && t.contains("decode") && !t.contains("display"),
            "{t}"
        );
    }
}
