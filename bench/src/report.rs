//! Renders one benchmark run ([`Report`]) for people:
//!
//! - [`markdown`]: the document committed next to the JSON — machine and
//!   baselines, the systems, one table per workload with Runnel ÷ best peer
//!   ratios, the targets ([`targets`]) and every place a peer beats
//!   `runnel`.
//! - [`svg`]: a self-contained chart (no fonts, scripts or crates): MB/s per
//!   workload and system on top, p99 latency at the fixed rate on a log
//!   scale below.
//!
//! Any phase may be missing (it failed, or the system was not run), so
//! every number is an `Option` here: a missing one prints as "–", is left
//! out of the chart and makes a target unevaluable rather than failed.

use std::fmt::Write as _;

use crate::results::{Latency, Phase, Report, SystemRun, WorkloadResult};

/// The system the targets are about: one broker, fsync every second.
const RUNNEL: &str = "runnel";
/// One broker, fsync per batch: the target against `dd conv=fdatasync`.
const RUNNEL_FSYNC: &str = "runnel-fsync";
/// What a missing number prints as.
const DASH: &str = "–";

/// `writeln!` into a `String`, which cannot fail, so the `Result` carries
/// nothing worth handling.
macro_rules! putln {
    ($out:expr) => {{
        let _ = writeln!($out);
    }};
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

// ---------------------------------------------------------------------------
// Metrics and comparisons

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// The four headline numbers compared between systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    /// `produce_max` MB/s.
    Produce,
    /// `consume_backlog` MB/s.
    Consume,
    /// `end_to_end` ack p99 (at the fixed rate).
    AckP99,
    /// `end_to_end` end-to-end p99 (at the fixed rate).
    E2eP99,
}

impl Metric {
    const ALL: [Metric; 4] = [
        Metric::Produce,
        Metric::Consume,
        Metric::AckP99,
        Metric::E2eP99,
    ];

    /// The value, or `None` when the phase is missing or the number is not
    /// a usable measurement (negative or not finite).
    fn value(self, run: &SystemRun) -> Option<f64> {
        let v = match self {
            Metric::Produce => run.produce_max.as_ref().map(|p| p.mb_per_sec),
            Metric::Consume => run.consume_backlog.as_ref().map(|p| p.mb_per_sec),
            Metric::AckP99 => p99(run.end_to_end.as_ref(), |p| p.ack_latency.as_ref()),
            Metric::E2eP99 => p99(run.end_to_end.as_ref(), |p| p.e2e_latency.as_ref()),
        };
        v.filter(|v| v.is_finite() && *v >= 0.0)
    }

    fn better(self) -> Better {
        match self {
            Metric::Produce | Metric::Consume => Better::Higher,
            Metric::AckP99 | Metric::E2eP99 => Better::Lower,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Metric::Produce => "produce",
            Metric::Consume => "consume",
            Metric::AckP99 => "p99 ack",
            Metric::E2eP99 => "p99 e2e",
        }
    }

    /// The value with its unit.
    fn show(self, v: f64) -> String {
        match self.better() {
            Better::Higher => format!("{} MB/s", fmt_mb(v)),
            Better::Lower => format!("{} ms", fmt_ms(v)),
        }
    }
}

fn p99(phase: Option<&Phase>, pick: impl Fn(&Phase) -> Option<&Latency>) -> Option<f64> {
    phase.and_then(pick).map(|l| l.p99_ms)
}

/// Whether `name` is a peer. A run whose system is not listed in
/// `report.systems` counts as Runnel: only declared peers are competitors.
fn is_peer(report: &Report, name: &str) -> bool {
    report.systems.iter().any(|s| s.name == name && s.peer)
}

fn run_of<'a>(workload: &'a WorkloadResult, system: &str) -> Option<&'a SystemRun> {
    workload.runs.iter().find(|r| r.system == system)
}

/// Every system name in table order: the declared systems, then any run of
/// an undeclared one (so nothing measured is silently dropped).
fn system_names(report: &Report) -> Vec<&str> {
    let mut names: Vec<&str> = report.systems.iter().map(|s| s.name.as_str()).collect();
    for w in &report.workloads {
        for r in &w.runs {
            if !names.contains(&r.system.as_str()) {
                names.push(&r.system);
            }
        }
    }
    names
}

fn metric_of(workload: &WorkloadResult, system: &str, metric: Metric) -> Option<f64> {
    run_of(workload, system).and_then(|r| metric.value(r))
}

/// The best peer's value for `metric` in `workload` (highest throughput,
/// lowest latency) and its name; `None` when no peer has the number.
fn best_peer<'a>(
    report: &'a Report,
    workload: &WorkloadResult,
    metric: Metric,
) -> Option<(&'a str, f64)> {
    let mut best: Option<(&str, f64)> = None;
    for s in report.systems.iter().filter(|s| s.peer) {
        let Some(v) = metric_of(workload, &s.name, metric) else {
            continue;
        };
        let better = match best {
            None => true,
            Some((_, b)) => match metric.better() {
                Better::Higher => v > b,
                Better::Lower => v < b,
            },
        };
        if better {
            best = Some((s.name.as_str(), v));
        }
    }
    best
}

/// Peers that were declared but have no value for `metric`: the "best
/// peer" is only the best of those that produced the number, and the
/// reader should know which ones did not.
fn peers_without<'a>(
    report: &'a Report,
    workload: &WorkloadResult,
    metric: Metric,
) -> Vec<&'a str> {
    report
        .systems
        .iter()
        .filter(|s| s.peer && metric_of(workload, &s.name, metric).is_none())
        .map(|s| s.name.as_str())
        .collect()
}

/// `a ÷ b`, or `None` when that is not a number (a zero denominator).
fn ratio(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    (b > 0.0 && r.is_finite()).then_some(r)
}

// ---------------------------------------------------------------------------
// Number formatting

/// Thousands separators: `1234567.4` → `1,234,567`.
fn fmt_int(v: f64) -> String {
    if !v.is_finite() {
        return DASH.to_string();
    }
    let rounded = v.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::new();
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with `decimals` decimals and thousands separators in the
/// integer part.
fn fmt_dec(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return DASH.to_string();
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let int_part: f64 = int.parse().unwrap_or(0.0);
    let mut out = fmt_int(int_part);
    if v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.insert(0, '-');
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// MB/s: one decimal.
fn fmt_mb(v: f64) -> String {
    fmt_dec(v, 1)
}

/// Milliseconds, about three significant digits but never more than the
/// histograms resolve: `150`, `12.3`, `2.05`, `0.84`, `0.084`.
fn fmt_ms(v: f64) -> String {
    if !v.is_finite() {
        return DASH.to_string();
    }
    let a = v.abs();
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 0.1 || a == 0.0 {
        2
    } else {
        // Two significant digits below 0.1 ms (0.084, 0.0084), capped at
        // microsecond-and-below precision.
        let lead = (-a.log10()).floor();
        (lead as usize + 2).min(4)
    };
    fmt_dec(v, decimals)
}

/// A ratio: `3.0×`, `12×`; below 1 two significant digits (`0.45×`,
/// `0.016×`), where one decimal would round most latency wins to the same
/// digit or to zero.
fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() || r < 0.0 {
        return DASH.to_string();
    }
    if r >= 10.0 {
        format!("{}×", fmt_dec(r, 0))
    } else if r >= 1.0 {
        format!("{r:.1}×")
    } else if r == 0.0 {
        "0×".to_string()
    } else {
        let decimals = ((-r.log10()).floor() as usize + 2).clamp(2, 4);
        format!("{r:.decimals$}×")
    }
}

/// Seconds without a pointless `.0`.
fn fmt_secs(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 {
        format!("{} s", fmt_int(v))
    } else {
        format!("{} s", fmt_dec(v, 1))
    }
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| DASH.to_string(), f)
}

/// Text from the report inside Markdown: no HTML, no table breaks, one
/// line.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A code fence longer than any run of backticks in `text`, so a command
/// line cannot close it early.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

// ---------------------------------------------------------------------------
// Targets

/// One goal from the benchmark plan and how this run did against it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// What is required, e.g. "`small`: runnel produce ≥ 3× best peer".
    pub target: String,
    /// The numbers behind the verdict (or what was missing).
    pub result: String,
    /// `None` when the data needed is missing (a phase failed or a system
    /// was not run), so it is neither met nor failed.
    pub met: Option<bool>,
}

/// The targets, in order: per workload `runnel` vs the best peer
/// (produce ≥ 3×, consume ≥ 3×, p99 ack ≤, p99 e2e ≤ at the fixed rate),
/// then the two machine targets on the best 1 KiB workload.
pub fn targets(report: &Report) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    for w in &report.workloads {
        for metric in Metric::ALL {
            out.push(peer_target(report, w, metric));
        }
    }
    out.push(page_cache_target(report));
    out.push(fdatasync_target(report));
    out
}

/// `runnel` against the best peer on one metric of one workload.
fn peer_target(report: &Report, w: &WorkloadResult, metric: Metric) -> TargetCheck {
    let target = match metric.better() {
        Better::Higher => format!("{}: {RUNNEL} {} ≥ 3× best peer", w.name, metric.label()),
        Better::Lower => format!(
            "{}: {RUNNEL} {} at {} msg/s ≤ best peer",
            w.name,
            metric.label(),
            fmt_int(w.latency_rate)
        ),
    };
    let ours = metric_of(w, RUNNEL, metric);
    let best = best_peer(report, w, metric);
    let missing = peers_without(report, w, metric);
    let mut note = String::new();
    if !missing.is_empty() && best.is_some() {
        note = format!(" (no data: {})", missing.join(", "));
    }
    let (result, met) = match (ours, best) {
        (None, _) => (format!("no {RUNNEL} {} result", metric.label()), None),
        (Some(_), None) => (format!("no peer {} result", metric.label()), None),
        (Some(v), Some((peer, b))) => match metric.better() {
            Better::Higher => match ratio(v, b) {
                Some(r) => (
                    format!(
                        "{} vs {} ({peer}) = {}{note}",
                        metric.show(v),
                        metric.show(b),
                        fmt_ratio(r)
                    ),
                    Some(r >= 3.0),
                ),
                None => (
                    format!("{peer} {} is {}: no ratio", metric.label(), metric.show(b)),
                    None,
                ),
            },
            Better::Lower => (
                format!("{} vs {} ({peer}){note}", metric.show(v), metric.show(b)),
                Some(v <= b),
            ),
        },
    };
    TargetCheck {
        target,
        result,
        met,
    }
}

/// The highest produce MB/s of `system` among the 1 KiB workloads, and
/// which workload it was.
fn best_1k_produce<'a>(report: &'a Report, system: &str) -> Option<(&'a str, f64)> {
    let mut best: Option<(&str, f64)> = None;
    for w in report.workloads.iter().filter(|w| w.message_size == 1024) {
        if let Some(v) = metric_of(w, system, Metric::Produce)
            && best.is_none_or(|(_, b)| v > b)
        {
            best = Some((w.name.as_str(), v));
        }
    }
    best
}

/// A baseline that can be a limit: present, finite and positive (a zero
/// would make any result "meet" it).
fn baseline(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v > 0.0)
}

/// "; the floor: F MB/s = X% of the baseline; runnel Y% of the floor", so
/// a target above what any design reaches here reads as such.
fn floor_note(ours: f64, floor: Option<f64>, base: f64) -> String {
    baseline(floor).map_or_else(String::new, |f| {
        format!(
            "; the produce floor here (`runnel-bench floor`) {} MB/s = {:.0}% of it, {RUNNEL} at {:.0}% of the floor",
            fmt_mb(f),
            100.0 * f / base,
            100.0 * ours / f
        )
    })
}

/// `runnel` ≥ 60% of min(iperf3 loopback, dd page cache).
fn page_cache_target(report: &Report) -> TargetCheck {
    let target = format!(
        "{RUNNEL} produce on the best 1 KiB workload ≥ 60% of min(iperf3 loopback, dd page cache)"
    );
    let b = &report.baselines;
    let ours = best_1k_produce(report, RUNNEL);
    let iperf = baseline(b.iperf3_loopback_mb_s);
    let dd = baseline(b.dd_page_cache_mb_s);
    let (result, met) = match (ours, iperf, dd) {
        (None, _, _) => (
            format!("no {RUNNEL} produce result on a 1 KiB workload"),
            None,
        ),
        (Some(_), None, _) => ("no iperf3 loopback baseline".to_string(), None),
        (Some(_), _, None) => ("no dd page cache baseline".to_string(), None),
        (Some((w, v)), Some(iperf), Some(dd)) => {
            let limit = 0.6 * iperf.min(dd);
            (
                format!(
                    "{} MB/s on {w} vs 60% × min({}, {}) = {} MB/s ({:.0}% of the min){}",
                    fmt_mb(v),
                    fmt_mb(iperf),
                    fmt_mb(dd),
                    fmt_mb(limit),
                    100.0 * v / iperf.min(dd),
                    floor_note(v, b.floor_page_cache_mb_s, iperf.min(dd))
                ),
                Some(v >= limit),
            )
        }
    };
    TargetCheck {
        target,
        result,
        met,
    }
}

/// `runnel-fsync` ≥ 70% of dd conv=fdatasync.
fn fdatasync_target(report: &Report) -> TargetCheck {
    let target =
        format!("{RUNNEL_FSYNC} produce on the best 1 KiB workload ≥ 70% of dd conv=fdatasync");
    let ours = best_1k_produce(report, RUNNEL_FSYNC);
    let dd = baseline(report.baselines.dd_fdatasync_mb_s);
    let (result, met) = match (ours, dd) {
        (None, _) => (
            format!("no {RUNNEL_FSYNC} produce result on a 1 KiB workload"),
            None,
        ),
        (Some(_), None) => ("no dd conv=fdatasync baseline".to_string(), None),
        (Some((w, v)), Some(dd)) => {
            let limit = 0.7 * dd;
            (
                format!(
                    "{} MB/s on {w} vs 70% × {} = {} MB/s ({:.0}% of dd){}",
                    fmt_mb(v),
                    fmt_mb(dd),
                    fmt_mb(limit),
                    100.0 * v / dd,
                    floor_note(v, report.baselines.floor_fsync_per_batch_mb_s, dd)
                ),
                Some(v >= limit),
            )
        }
    };
    TargetCheck {
        target,
        result,
        met,
    }
}

// ---------------------------------------------------------------------------
// Where a peer wins

/// One metric of one workload on which a peer beats `runnel`.
#[derive(Debug, Clone, PartialEq)]
struct PeerWin<'a> {
    workload: &'a str,
    metric: Metric,
    peer: &'a str,
    peer_value: f64,
    ours: f64,
}

/// Every (workload, metric, peer) where the peer is strictly better than
/// `runnel`. Metrics `runnel` has no number for cannot be compared and are
/// left out (the tables show the gap).
fn peer_wins(report: &Report) -> Vec<PeerWin<'_>> {
    let mut out = Vec::new();
    for w in &report.workloads {
        for metric in Metric::ALL {
            let Some(ours) = metric_of(w, RUNNEL, metric) else {
                continue;
            };
            for s in report.systems.iter().filter(|s| s.peer) {
                let Some(theirs) = metric_of(w, &s.name, metric) else {
                    continue;
                };
                let wins = match metric.better() {
                    Better::Higher => theirs > ours,
                    Better::Lower => theirs < ours,
                };
                if wins {
                    out.push(PeerWin {
                        workload: &w.name,
                        metric,
                        peer: &s.name,
                        peer_value: theirs,
                        ours,
                    });
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Markdown

/// The whole run as a Markdown document.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    putln!(out, "# Runnel benchmark, {}", md(&report.started));
    putln!(out);
    let fence = fence_for(&report.command);
    putln!(out, "{fence}sh\n{}\n{fence}", report.command.trim_end());
    putln!(out);
    let m = &report.machine;
    putln!(
        out,
        "**Machine:** {} CPUs ({}), {} GiB memory, kernel {}",
        m.cpus,
        md(&m.cpu_model),
        fmt_dec(m.memory_gib, 1),
        md(&m.kernel)
    );
    putln!(out);

    baselines_md(&mut out, report);
    systems_md(&mut out, report);

    putln!(out, "## Workloads");
    putln!(out);
    putln!(
        out,
        "MB = 10^6 bytes; latencies in ms. \"max\" columns: the producer alone as fast \
         as acknowledgements allow (ack latency under saturation); consume: a new \
         consumer reading that backlog; \"@ rate\" columns: the producer at the \
         workload's fixed rate with a consumer attached. Ratios are each Runnel system \
         ÷ the best peer: highest throughput, lowest latency (below 1× is better for \
         latency)."
    );
    putln!(out);
    for w in &report.workloads {
        workload_md(&mut out, report, w);
    }

    targets_md(&mut out, report);
    peer_wins_md(&mut out, report);
    out
}

fn baselines_md(out: &mut String, report: &Report) {
    let b = &report.baselines;
    putln!(out, "## Baselines");
    putln!(out);
    putln!(out, "| Baseline | MB/s |");
    putln!(out, "|---|---:|");
    for (baseline, mb_s) in [
        ("dd page cache (`bs=1M`)", b.dd_page_cache_mb_s),
        ("dd `conv=fdatasync`", b.dd_fdatasync_mb_s),
        ("iperf3 loopback (one stream)", b.iperf3_loopback_mb_s),
        (
            "produce floor, 1 KiB in 1 MiB batches (`runnel-bench floor`)",
            b.floor_page_cache_mb_s,
        ),
        (
            "produce floor, fdatasync per batch",
            b.floor_fsync_per_batch_mb_s,
        ),
    ] {
        putln!(out, "| {baseline} | {} |", opt(mb_s, fmt_mb));
    }
    putln!(out);
    if !b.notes.is_empty() {
        for note in &b.notes {
            putln!(out, "- {}", md(note));
        }
        putln!(out);
    }
}

fn systems_md(out: &mut String, report: &Report) {
    putln!(out, "## Systems");
    putln!(out);
    putln!(out, "| System | Version | Replicas | Durability | Client |");
    putln!(out, "|---|---|---:|---|---|");
    for s in &report.systems {
        let peer = if s.peer { " (peer)" } else { "" };
        putln!(
            out,
            "| {}{peer} | {} | {} | {} | {} |",
            md(&s.name),
            md(&s.version),
            s.replicas,
            md(&s.durability),
            md(&s.client)
        );
    }
    putln!(out);
}

fn workload_md(out: &mut String, report: &Report, w: &WorkloadResult) {
    putln!(out, "### {}", md(&w.name));
    putln!(out);
    if !w.description.trim().is_empty() {
        putln!(out, "{}", md(w.description.trim()));
        putln!(out);
    }
    putln!(
        out,
        "Partitions: {} · message size: {} B · phase duration: {} · fixed rate: {} msg/s",
        w.partitions,
        fmt_int(w.message_size as f64),
        fmt_secs(w.duration_s),
        fmt_int(w.latency_rate)
    );
    putln!(out);
    putln!(
        out,
        "| System | Produce msg/s | Produce MB/s | Ack p50 max | Ack p99 max | Ack p99.9 max \
         | Consume msg/s | Consume MB/s | Ack p50 @ rate | Ack p99 @ rate | E2E p50 @ rate \
         | E2E p99 @ rate |"
    );
    putln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let names = system_names(report);
    let mut problems = Vec::new();
    for name in &names {
        let run = run_of(w, name);
        // Undeclared systems that did not run this workload add nothing.
        if run.is_none() && !report.systems.iter().any(|s| s.name == *name) {
            continue;
        }
        let produce = run.and_then(|r| r.produce_max.as_ref());
        let consume = run.and_then(|r| r.consume_backlog.as_ref());
        let e2e = run.and_then(|r| r.end_to_end.as_ref());
        let ack_max = produce.and_then(|p| p.ack_latency.as_ref());
        let ack_rate = e2e.and_then(|p| p.ack_latency.as_ref());
        let e2e_rate = e2e.and_then(|p| p.e2e_latency.as_ref());
        putln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md(name),
            opt(produce.map(|p| p.msgs_per_sec), fmt_int),
            opt(produce.map(|p| p.mb_per_sec), fmt_mb),
            opt(ack_max.map(|l| l.p50_ms), fmt_ms),
            opt(ack_max.map(|l| l.p99_ms), fmt_ms),
            opt(ack_max.map(|l| l.p99_9_ms), fmt_ms),
            opt(consume.map(|p| p.msgs_per_sec), fmt_int),
            opt(consume.map(|p| p.mb_per_sec), fmt_mb),
            opt(ack_rate.map(|l| l.p50_ms), fmt_ms),
            opt(ack_rate.map(|l| l.p99_ms), fmt_ms),
            opt(e2e_rate.map(|l| l.p50_ms), fmt_ms),
            opt(e2e_rate.map(|l| l.p99_ms), fmt_ms),
        );
        match run {
            None => problems.push(format!("{}: not run", md(name))),
            Some(r) => {
                if let Some(e) = &r.error {
                    problems.push(format!("{}: {}", md(name), md(e)));
                }
                // Failed sends are not in the rates above; say how many.
                for (phase, p) in [
                    ("produce", produce),
                    ("consume", consume),
                    ("fixed rate", e2e),
                ] {
                    if let Some(p) = p.filter(|p| p.errors > 0) {
                        problems.push(format!(
                            "{}: {} failed in the {phase} phase",
                            md(name),
                            fmt_int(p.errors as f64)
                        ));
                    }
                }
            }
        }
    }
    putln!(out);

    for name in names.iter().filter(|n| !is_peer(report, n)) {
        if run_of(w, name).is_none() {
            continue;
        }
        let mut parts = Vec::new();
        for metric in Metric::ALL {
            let ours = metric_of(w, name, metric);
            let best = best_peer(report, w, metric);
            let shown = match (ours, best) {
                (Some(v), Some((peer, b))) => ratio(v, b).map_or_else(
                    || format!("{} {DASH}", metric.label()),
                    |r| format!("{} {} (vs {})", metric.label(), fmt_ratio(r), md(peer)),
                ),
                _ => format!("{} {DASH}", metric.label()),
            };
            parts.push(shown);
        }
        putln!(out, "- {} ÷ best peer: {}", md(name), parts.join(", "));
    }
    let cpu: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let run = run_of(w, name)?;
            let per_msg = |p: Option<&Phase>| {
                let p = p?;
                let us = |cpu: Option<f64>| Some(cpu? * 1e6 / p.messages.max(1) as f64);
                Some((us(p.server_cpu_s), us(p.client_cpu_s)))
            };
            let phases = [
                per_msg(run.produce_max.as_ref()),
                per_msg(run.consume_backlog.as_ref()),
                per_msg(run.end_to_end.as_ref()),
            ];
            phases.iter().flatten().any(|(s, _)| s.is_some()).then(|| {
                let shown: Vec<String> = phases
                    .iter()
                    .map(|v| {
                        let (server, client) = v.unwrap_or((None, None));
                        format!(
                            "{}+{}",
                            opt(server, |v| fmt_dec(v, 2)),
                            opt(client, |v| fmt_dec(v, 2))
                        )
                    })
                    .collect();
                format!("{} {}", md(name), shown.join(" / "))
            })
        })
        .collect();
    if !cpu.is_empty() {
        putln!(
            out,
            "- CPU µs per message, server+client (user + system; produce / consume / \
             fixed rate): {}",
            cpu.join(" · ")
        );
    }
    for p in &problems {
        putln!(out, "- {p}");
    }
    putln!(out);
}

fn targets_md(out: &mut String, report: &Report) {
    putln!(out, "## Targets");
    putln!(out);
    putln!(out, "| Target | Result | Met |");
    putln!(out, "|---|---|---|");
    for t in targets(report) {
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => DASH,
        };
        putln!(out, "| {} | {} | {met} |", md(&t.target), md(&t.result));
    }
    putln!(out);
}

fn peer_wins_md(out: &mut String, report: &Report) {
    putln!(out, "## Where a peer wins");
    putln!(out);
    let has_runnel = report.workloads.iter().any(|w| {
        Metric::ALL
            .iter()
            .any(|m| metric_of(w, RUNNEL, *m).is_some())
    });
    if !has_runnel {
        putln!(out, "{RUNNEL} has no results to compare.");
        return;
    }
    let wins = peer_wins(report);
    if wins.is_empty() {
        putln!(
            out,
            "Nowhere: {RUNNEL} is at least as good as every peer on produce and consume \
             MB/s and on p99 ack and e2e latency at the fixed rate."
        );
        return;
    }
    for win in wins {
        let at_rate = match win.metric.better() {
            Better::Higher => "",
            Better::Lower => " at the fixed rate",
        };
        putln!(
            out,
            "- {}, {}{at_rate}: {} {} vs {RUNNEL} {}",
            md(win.workload),
            win.metric.label(),
            md(win.peer),
            win.metric.show(win.peer_value),
            win.metric.show(win.ours)
        );
    }
}

// ---------------------------------------------------------------------------
// SVG

const SVG_W: f64 = 1000.0;
const MARGIN: f64 = 20.0;
const COL_GAP: f64 = 40.0;
/// One of the two charts side by side in a panel.
const CHART_W: f64 = (SVG_W - 2.0 * MARGIN - COL_GAP) / 2.0;
/// Room right of the longest bar for its value label.
const VALUE_ROOM: f64 = 64.0;
const PLOT_W: f64 = CHART_W - VALUE_ROOM;
const BAR_H: f64 = 11.0;
const BAR_GAP: f64 = 2.0;
const GROUP_LABEL_H: f64 = 16.0;
const GROUP_GAP: f64 = 8.0;
const AXIS_H: f64 = 40.0;
/// Distinguishable on white and in print; repeats past eight systems.
const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// Text and attribute values inside the SVG.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than whitespace are not XML.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate; never `NaN` or `inf` in the output.
fn n(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "0".to_string()
    }
}

/// Maps a value to a fraction of the plot width.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// 0 … `max`, ticks every `step`.
    Linear { max: f64, step: f64 },
    /// 10^`lo` … 10^`hi`, ticks at each decade.
    Log { lo: i32, hi: i32 },
}

impl Scale {
    /// A linear scale from 0 to a round number at or above the largest
    /// value.
    fn linear(values: &[f64]) -> Scale {
        let max = values.iter().copied().fold(0.0_f64, f64::max);
        if max <= 0.0 || !max.is_finite() {
            return Scale::Linear {
                max: 1.0,
                step: 0.2,
            };
        }
        let raw = max / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let f = raw / mag;
        let nice = if f <= 1.0 {
            1.0
        } else if f <= 2.0 {
            2.0
        } else if f <= 5.0 {
            5.0
        } else {
            10.0
        };
        let step = nice * mag;
        Scale::Linear {
            max: (max / step).ceil() * step,
            step,
        }
    }

    /// Whole decades around the values. Clamped to 1 µs … 10^7 ms so a
    /// stray sample cannot stretch the axis to nothing.
    fn log(values: &[f64]) -> Scale {
        let positive: Vec<f64> = values
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        if positive.is_empty() {
            return Scale::Log { lo: -1, hi: 3 };
        }
        let min = positive.iter().copied().fold(f64::INFINITY, f64::min);
        let max = positive.iter().copied().fold(0.0_f64, f64::max);
        let lo = (min.log10().floor() as i32).clamp(-3, 6);
        let hi = (max.log10().ceil() as i32).clamp(lo + 1, 7);
        Scale::Log { lo, hi }
    }

    /// Where `v` falls, 0 … 1; `None` for values this scale cannot show.
    fn frac(self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        let f = match self {
            Scale::Linear { max, .. } => {
                if v < 0.0 {
                    return None;
                }
                v / max
            }
            Scale::Log { lo, hi } => {
                if v <= 0.0 {
                    return None;
                }
                (v.log10() - f64::from(lo)) / f64::from(hi - lo)
            }
        };
        Some(f.clamp(0.0, 1.0))
    }

    /// Tick values and their labels.
    fn ticks(self) -> Vec<(f64, String)> {
        match self {
            Scale::Linear { max, step } => {
                let count = ((max / step).round() as usize).min(20);
                let decimals = if step >= 1.0 {
                    0
                } else {
                    (-step.log10()).ceil() as usize
                };
                (0..=count)
                    .map(|i| {
                        let v = step * i as f64;
                        (v, fmt_dec(v, decimals))
                    })
                    .collect()
            }
            Scale::Log { lo, hi } => (lo..=hi)
                .map(|e| {
                    let v = 10f64.powi(e);
                    let label = if e < 0 {
                        format!("{:.*}", e.unsigned_abs() as usize, v)
                    } else {
                        fmt_int(v)
                    };
                    (v, label)
                })
                .collect(),
        }
    }
}

/// What one chart shows: per workload, one value per system (index into
/// the legend), `None` where there is no bar.
struct ChartData<'a> {
    title: &'a str,
    axis: &'a str,
    scale: Scale,
    groups: Vec<(&'a str, Vec<Option<f64>>)>,
    fmt: fn(f64) -> String,
}

fn chart_height(groups: usize, systems: usize) -> f64 {
    let group = GROUP_LABEL_H + systems as f64 * (BAR_H + BAR_GAP) + GROUP_GAP;
    20.0 + groups as f64 * group + AXIS_H
}

/// Draws one chart with its top-left corner at (`x0`, `y0`).
fn chart_svg(out: &mut String, x0: f64, y0: f64, data: &ChartData<'_>, names: &[&str]) {
    putln!(
        out,
        r#"<text x="{}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
        n(x0),
        n(y0 + 13.0),
        xml(data.title)
    );
    let plot_top = y0 + 20.0;
    let plot_bottom = y0 + chart_height(data.groups.len(), names.len()) - AXIS_H;

    // Grid and tick labels first so the bars sit on top.
    for (v, label) in data.scale.ticks() {
        let Some(f) = data.scale.frac(v) else {
            continue;
        };
        let x = x0 + f * PLOT_W;
        putln!(
            out,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#ddd"/>"##,
            n(plot_top),
            n(plot_bottom),
            x = n(x)
        );
        putln!(
            out,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
            n(x),
            n(plot_bottom + 13.0),
            xml(&label)
        );
    }
    putln!(
        out,
        r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#333"/>"##,
        n(x0),
        n(x0 + PLOT_W),
        y = n(plot_bottom)
    );
    putln!(
        out,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
        n(x0 + PLOT_W / 2.0),
        n(plot_bottom + 30.0),
        xml(data.axis)
    );
    if data
        .groups
        .iter()
        .all(|(_, vs)| vs.iter().all(Option::is_none))
    {
        putln!(
            out,
            r##"<text x="{}" y="{}" font-size="11" fill="#888">no data</text>"##,
            n(x0 + 4.0),
            n(plot_top + 12.0)
        );
    }

    let mut y = plot_top;
    for (workload, values) in &data.groups {
        putln!(
            out,
            r#"<text x="{}" y="{}" font-size="11" font-style="italic">{}</text>"#,
            n(x0),
            n(y + 11.0),
            xml(workload)
        );
        y += GROUP_LABEL_H;
        for (i, v) in values.iter().enumerate() {
            let bar = v.and_then(|v| data.scale.frac(v).map(|f| (v, f)));
            if let Some((v, f)) = bar {
                // At least a sliver, so a tiny value still shows its color.
                let w = (f * PLOT_W).max(1.0);
                let name = names.get(i).copied().unwrap_or("");
                putln!(
                    out,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}, {}: {}</title></rect>"#,
                    n(x0),
                    n(y),
                    n(w),
                    n(BAR_H),
                    COLORS[i % COLORS.len()],
                    xml(name),
                    xml(workload),
                    xml(&(data.fmt)(v))
                );
                putln!(
                    out,
                    r#"<text x="{}" y="{}" font-size="10">{}</text>"#,
                    n(x0 + w + 3.0),
                    n(y + BAR_H - 2.0),
                    xml(&(data.fmt)(v))
                );
            }
            y += BAR_H + BAR_GAP;
        }
        y += GROUP_GAP;
    }
}

/// Legend items left to right, wrapping at the page width; returns the
/// height used.
fn legend_svg(out: &mut String, y0: f64, names: &[&str]) -> f64 {
    let mut x = MARGIN;
    let mut y = y0;
    for (i, name) in names.iter().enumerate() {
        // Rough text width at 12 px; good enough to avoid overlaps.
        let w = 22.0 + 7.0 * name.chars().count() as f64 + 18.0;
        if x + w > SVG_W - MARGIN && x > MARGIN {
            x = MARGIN;
            y += 18.0;
        }
        putln!(
            out,
            r#"<rect x="{}" y="{}" width="14" height="12" fill="{}"/>"#,
            n(x),
            n(y),
            COLORS[i % COLORS.len()]
        );
        putln!(
            out,
            r#"<text x="{}" y="{}" font-size="12">{}</text>"#,
            n(x + 20.0),
            n(y + 11.0),
            xml(name)
        );
        x += w;
    }
    y + 18.0 - y0
}

/// The run as a chart: throughput on top, p99 latency at the fixed rate
/// (log scale) below; one color per system.
pub fn svg(report: &Report) -> String {
    let names = system_names(report);
    let series = |metric: Metric| -> Vec<(&str, Vec<Option<f64>>)> {
        report
            .workloads
            .iter()
            .map(|w| {
                let values = names.iter().map(|s| metric_of(w, s, metric)).collect();
                (w.name.as_str(), values)
            })
            .collect()
    };
    let all = |groups: &[(&str, Vec<Option<f64>>)]| -> Vec<f64> {
        groups
            .iter()
            .flat_map(|(_, vs)| vs.iter().flatten().copied())
            .collect()
    };

    let produce = series(Metric::Produce);
    let consume = series(Metric::Consume);
    let ack = series(Metric::AckP99);
    let e2e = series(Metric::E2eP99);
    // Shared scales within a panel so the two charts compare by eye.
    let mut tput = all(&produce);
    tput.extend(all(&consume));
    let tput_scale = Scale::linear(&tput);
    let mut lat = all(&ack);
    lat.extend(all(&e2e));
    let lat_scale = Scale::log(&lat);
    let fmt_lat: fn(f64) -> String = fmt_ms;
    let panels = [
        (
            "Throughput, higher is better",
            [
                ChartData {
                    title: "Produce (max)",
                    axis: "MB/s (MB = 10^6 bytes)",
                    scale: tput_scale,
                    groups: produce,
                    fmt: fmt_mb,
                },
                ChartData {
                    title: "Consume (backlog)",
                    axis: "MB/s (MB = 10^6 bytes)",
                    scale: tput_scale,
                    groups: consume,
                    fmt: fmt_mb,
                },
            ],
        ),
        (
            "p99 latency at the fixed rate, lower is better",
            [
                ChartData {
                    title: "Ack p99",
                    axis: "ms, log scale",
                    scale: lat_scale,
                    groups: ack,
                    fmt: fmt_lat,
                },
                ChartData {
                    title: "End-to-end p99",
                    axis: "ms, log scale",
                    scale: lat_scale,
                    groups: e2e,
                    fmt: fmt_lat,
                },
            ],
        ),
    ];

    let mut body = String::new();
    putln!(
        body,
        r#"<text x="{}" y="28" font-size="18" font-weight="bold">{}</text>"#,
        n(MARGIN),
        xml(&format!("Runnel benchmark, {}", report.started))
    );
    let mut y = 42.0;
    y += legend_svg(&mut body, y, &names) + 10.0;
    let height = chart_height(report.workloads.len(), names.len());
    for (title, charts) in &panels {
        putln!(
            body,
            r#"<text x="{}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
            n(MARGIN),
            n(y + 15.0),
            xml(title)
        );
        y += 26.0;
        for (i, chart) in charts.iter().enumerate() {
            let x = MARGIN + i as f64 * (CHART_W + COL_GAP);
            chart_svg(&mut body, x, y, chart, &names);
        }
        y += height + 16.0;
    }

    let mut out = String::new();
    putln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">"#,
        w = n(SVG_W),
        h = n(y)
    );
    putln!(
        out,
        r##"<rect x="0" y="0" width="{}" height="{}" fill="#fff"/>"##,
        n(SVG_W),
        n(y)
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Baselines, Machine, SystemInfo};

    fn system(name: &str, kind: &str, peer: bool) -> SystemInfo {
        SystemInfo {
            name: name.to_string(),
            kind: kind.to_string(),
            version: "1.0".to_string(),
            replicas: 1,
            durability: "fsync every 1 s".to_string(),
            client: "batch 64 KiB, 8 in flight".to_string(),
            peer,
        }
    }

    fn phase(mb_per_sec: f64, ack_p99: Option<f64>, e2e_p99: Option<f64>) -> Phase {
        let latency = |p99: f64| Latency {
            samples: 1000,
            p50_ms: p99 / 2.0,
            p99_ms: p99,
            p99_9_ms: p99 * 2.0,
            max_ms: p99 * 3.0,
        };
        Phase {
            messages: 1_000_000,
            bytes: 1_024_000_000,
            seconds: 10.0,
            msgs_per_sec: mb_per_sec * 1e6 / 1024.0,
            mb_per_sec,
            errors: 0,
            ack_latency: ack_p99.map(latency),
            e2e_latency: e2e_p99.map(latency),
            server_cpu_s: None,
            client_cpu_s: None,
        }
    }

    /// (produce MB/s, consume MB/s, p99 ack @ rate, p99 e2e @ rate)
    fn run(system: &str, produce: f64, consume: f64, ack: f64, e2e: f64) -> SystemRun {
        SystemRun {
            system: system.to_string(),
            produce_max: Some(phase(produce, Some(ack * 10.0), None)),
            consume_backlog: Some(phase(consume, None, None)),
            end_to_end: Some(phase(1.0, Some(ack), Some(e2e))),
            error: None,
        }
    }

    fn workload(name: &str, message_size: usize, runs: Vec<SystemRun>) -> WorkloadResult {
        WorkloadResult {
            name: name.to_string(),
            description: format!("{name} test workload"),
            partitions: 4,
            message_size,
            duration_s: 30.0,
            latency_rate: 25_000.0,
            runs,
        }
    }

    /// Two workloads; in `small` the fixed-rate phase of `runnel` failed and
    /// redis was not run at all.
    fn sample() -> Report {
        let big = workload(
            "big",
            1024,
            vec![
                // Produce 300 vs best peer nats 100 → 3.0×, met.
                // Consume 200 vs best peer redis 100 → 2.0×, not met.
                // Ack p99 2.0 vs best (lowest) nats 1.0 → not met, nats wins.
                // E2E p99 3.0 vs best (lowest) redis 5.0 → met; 0.60×
                // (against nats' 6.0 it would read 0.50×).
                run(RUNNEL, 300.0, 200.0, 2.0, 3.0),
                run(RUNNEL_FSYNC, 80.0, 150.0, 9.0, 12.0),
                run("nats", 100.0, 50.0, 1.0, 6.0),
                run("red<is&", 80.0, 100.0, 4.0, 5.0),
            ],
        );
        let mut runnel_small = run(RUNNEL, 50.0, 400.0, 1.0, 1.0);
        runnel_small.end_to_end = None;
        runnel_small.error = Some("fixed-rate phase timed out".to_string());
        let small = workload(
            "small",
            100,
            vec![
                runnel_small,
                run(RUNNEL_FSYNC, 10.0, 100.0, 9.0, 12.0),
                run("nats", 60.0, 30.0, 1.5, 2.5),
            ],
        );
        Report {
            started: "2026-05-01T12:00:00Z".to_string(),
            command: "runnel-bench run --all".to_string(),
            machine: Machine {
                cpus: 8,
                cpu_model: "Test CPU".to_string(),
                memory_gib: 31.3,
                kernel: "6.8.0".to_string(),
            },
            baselines: Baselines {
                dd_page_cache_mb_s: Some(2000.0),
                dd_fdatasync_mb_s: Some(100.0),
                iperf3_loopback_mb_s: None,
                floor_page_cache_mb_s: None,
                floor_fsync_per_batch_mb_s: Some(160.0),
                notes: vec!["iperf3 not installed".to_string()],
            },
            systems: vec![
                system(RUNNEL, "runnel", false),
                system(RUNNEL_FSYNC, "runnel", false),
                system("nats", "nats", true),
                system("red<is&", "redis", true),
            ],
            workloads: vec![big, small],
        }
    }

    fn find<'a>(checks: &'a [TargetCheck], target: &str) -> &'a TargetCheck {
        checks
            .iter()
            .find(|t| t.target.starts_with(target))
            .unwrap_or_else(|| panic!("no target starting {target:?} in {checks:#?}"))
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(fmt_int(1_234_567.4), "1,234,567");
        assert_eq!(fmt_int(999.0), "999");
        assert_eq!(fmt_int(1000.0), "1,000");
        assert_eq!(fmt_mb(1234.56), "1,234.6");
        assert_eq!(fmt_mb(12.34), "12.3");
        assert_eq!(fmt_ms(0.8412), "0.84");
        assert_eq!(fmt_ms(0.0843), "0.084");
        assert_eq!(fmt_ms(2.0), "2.00");
        assert_eq!(fmt_ms(12.34), "12.3");
        assert_eq!(fmt_ms(150.2), "150");
        assert_eq!(fmt_ms(1520.0), "1,520");
        assert_eq!(fmt_ms(f64::NAN), DASH);
        assert_eq!(fmt_ratio(3.0), "3.0×");
        assert_eq!(fmt_ratio(0.6), "0.60×");
        assert_eq!(fmt_ratio(34.4), "34×");
        assert_eq!(fmt_ratio(0.0156), "0.016×");
    }

    #[test]
    fn best_peer_is_highest_throughput_and_lowest_latency() {
        let r = sample();
        let big = &r.workloads[0];
        assert_eq!(best_peer(&r, big, Metric::Produce), Some(("nats", 100.0)));
        assert_eq!(
            best_peer(&r, big, Metric::Consume),
            Some(("red<is&", 100.0))
        );
        assert_eq!(best_peer(&r, big, Metric::AckP99), Some(("nats", 1.0)));
        assert_eq!(best_peer(&r, big, Metric::E2eP99), Some(("red<is&", 5.0)));
    }

    #[test]
    fn peer_targets_ratios_and_direction() {
        let checks = targets(&sample());
        // 4 per workload × 2 workloads + 2 machine targets.
        assert_eq!(checks.len(), 10);

        let produce = find(&checks, "big: runnel produce");
        assert_eq!(produce.met, Some(true), "{produce:?}");
        assert!(produce.result.contains("3.0×"), "{produce:?}");
        assert!(produce.result.contains("nats"), "{produce:?}");

        let consume = find(&checks, "big: runnel consume");
        assert_eq!(consume.met, Some(false), "{consume:?}");
        assert!(consume.result.contains("2.0×"), "{consume:?}");

        // Higher latency than the best peer is a miss…
        let ack = find(&checks, "big: runnel p99 ack");
        assert_eq!(ack.met, Some(false), "{ack:?}");
        // …lower is met, compared with the lowest peer (redis 5.0), not nats.
        let e2e = find(&checks, "big: runnel p99 e2e");
        assert_eq!(e2e.met, Some(true), "{e2e:?}");
        assert!(e2e.result.contains("5.00 ms"), "{e2e:?}");
    }

    #[test]
    fn missing_data_gives_no_verdict() {
        let checks = targets(&sample());
        // runnel's fixed-rate phase failed in `small`.
        for t in ["small: runnel p99 ack", "small: runnel p99 e2e"] {
            let check = find(&checks, t);
            assert_eq!(check.met, None, "{check:?}");
        }
        // redis did not run `small`, but nats did: still evaluated, and the
        // missing peer is named.
        let produce = find(&checks, "small: runnel produce");
        assert_eq!(produce.met, Some(false), "{produce:?}");
        assert!(produce.result.contains("no data: red<is&"), "{produce:?}");
        // No iperf3 baseline.
        let page_cache = find(&checks, "runnel produce on the best 1 KiB");
        assert_eq!(page_cache.met, None, "{page_cache:?}");
        // runnel-fsync 80 MB/s on `big` vs 70% of dd 100 MB/s.
        let fsync = find(&checks, "runnel-fsync produce on the best 1 KiB");
        assert_eq!(fsync.met, Some(true), "{fsync:?}");
        assert!(fsync.result.contains("80.0 MB/s on big"), "{fsync:?}");
        // The floor is named next to the verdict, relative to dd and to us.
        assert!(
            fsync
                .result
                .contains("floor here (`runnel-bench floor`) 160.0 MB/s = 160% of it, runnel at 50% of the floor"),
            "{fsync:?}"
        );
    }

    #[test]
    fn page_cache_target_uses_the_lower_baseline() {
        let mut r = sample();
        // min(iperf3 400, dd 2000) = 400; 60% = 240 ≤ 300 → met.
        r.baselines.iperf3_loopback_mb_s = Some(400.0);
        assert_eq!(page_cache_target(&r).met, Some(true));
        // min = 600 → 360 > 300 → not met.
        r.baselines.iperf3_loopback_mb_s = Some(600.0);
        assert_eq!(page_cache_target(&r).met, Some(false));
        // Only the 100-byte workload left: no 1 KiB result.
        r.workloads.remove(0);
        assert_eq!(page_cache_target(&r).met, None);
        assert_eq!(fdatasync_target(&r).met, None);
    }

    #[test]
    fn where_a_peer_wins() {
        let r = sample();
        let wins = peer_wins(&r);
        let has = |w: &str, m: Metric, p: &str| {
            wins.iter()
                .any(|x| x.workload == w && x.metric == m && x.peer == p)
        };
        // nats 1.0 ms beats runnel 2.0 ms; redis 4.0 ms does not.
        assert!(has("big", Metric::AckP99, "nats"), "{wins:#?}");
        assert!(!has("big", Metric::AckP99, "red<is&"), "{wins:#?}");
        // nats 60 MB/s beats runnel 50 MB/s on small.
        assert!(has("small", Metric::Produce, "nats"), "{wins:#?}");
        // runnel's throughput on big beats both peers.
        assert!(!has("big", Metric::Produce, "nats"), "{wins:#?}");
        assert!(!has("big", Metric::Consume, "red<is&"), "{wins:#?}");
        assert_eq!(wins.len(), 2, "{wins:#?}");

        let doc = markdown(&r);
        let section = doc.split("## Where a peer wins").nth(1).unwrap_or_default();
        assert!(
            section.contains("- big, p99 ack at the fixed rate: nats 1.00 ms vs runnel 2.00 ms"),
            "{section}"
        );
        assert!(
            section.contains("- small, produce: nats 60.0 MB/s vs runnel 50.0 MB/s"),
            "{section}"
        );
    }

    #[test]
    fn no_peer_wins_is_said() {
        let mut r = sample();
        r.workloads.truncate(1);
        for sr in &mut r.workloads[0].runs {
            if sr.system == RUNNEL {
                *sr = run(RUNNEL, 1000.0, 1000.0, 0.1, 0.1);
            }
        }
        assert!(peer_wins(&r).is_empty());
        assert!(markdown(&r).contains("Nowhere:"));
    }

    #[test]
    fn markdown_tables_and_ratios() {
        let doc = markdown(&sample());
        assert!(doc.starts_with("# Runnel benchmark, 2026-05-01T12:00:00Z\n"));
        assert!(doc.contains("```sh\nrunnel-bench run --all\n```"));
        assert!(
            doc.contains("| iperf3 loopback (one stream) | – |"),
            "{doc}"
        );
        assert!(
            doc.contains("| dd page cache (`bs=1M`) | 2,000.0 |"),
            "{doc}"
        );
        assert!(doc.contains("### big"));
        assert!(doc.contains("### small"));
        // Ratio line for each Runnel system, none for peers.
        assert!(
            doc.contains(
                "- runnel ÷ best peer: produce 3.0× (vs nats), consume 2.0× (vs red&lt;is&amp;), \
                 p99 ack 2.0× (vs nats), p99 e2e 0.60× (vs red&lt;is&amp;)"
            ),
            "{doc}"
        );
        assert!(
            doc.contains("- runnel-fsync ÷ best peer: produce 0.80×"),
            "{doc}"
        );
        assert!(!doc.contains("- nats ÷ best peer"), "{doc}");
        // Missing fixed-rate phase prints dashes, the error is shown, and the
        // peer that was not run has a row saying so.
        assert!(doc.contains("p99 ack –, p99 e2e –"), "{doc}");
        assert!(
            doc.contains("- runnel: fixed-rate phase timed out"),
            "{doc}"
        );
        assert!(doc.contains("- red&lt;is&amp;: not run"), "{doc}");
        // Names are escaped for Markdown/HTML.
        assert!(!doc.contains("red<is&"), "{doc}");
        // Targets table with all three verdicts.
        assert!(doc.contains("| met |"));
        assert!(doc.contains("| NOT MET |"));
        assert!(doc.contains("| – |"));
    }

    /// Tags balance and every `&` starts an entity: enough of XML to catch
    /// unescaped text and broken markup.
    fn check_xmlish(s: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            check_text(text);
            let Some(end) = rest[start..].find('>') else {
                panic!("unclosed tag at {:?}", &rest[start..]);
            };
            let tag = &rest[start + 1..start + end];
            assert!(!tag.contains('<'), "'<' inside tag {tag:?}");
            check_text(tag);
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or_default();
                stack.push(name);
            }
            rest = &rest[start + end + 1..];
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
    }

    fn check_text(text: &str) {
        assert!(!text.contains('>'), "raw '>' in {text:?}");
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "bare '&' in {text:?}"
            );
        }
    }

    #[test]
    fn svg_is_wellformed_and_escaped() {
        let out = svg(&sample());
        assert!(out.starts_with("<svg"), "{out}");
        assert!(out.trim_end().ends_with("</svg>"), "{out}");
        assert!(!out.contains("NaN"), "{out}");
        assert!(!out.to_lowercase().contains("inf"), "{out}");
        check_xmlish(&out);
        assert!(out.contains("red&lt;is&amp;"), "{out}");
        assert!(!out.contains("red<is&"), "{out}");
        // One bar per present value: throughput 4 + 3 per metric, latency
        // 4 + 2 (runnel's fixed rate failed on small); each has a title.
        assert_eq!(out.matches("<title>").count(), 2 * 7 + 2 * 6, "{out}");
        // Log axis covers 1 ms … 12 ms with whole decades.
        assert!(out.contains(">100</text>"), "{out}");
    }

    #[test]
    fn svg_survives_degenerate_input() {
        let mut r = sample();
        r.workloads.clear();
        let out = svg(&r);
        check_xmlish(&out);
        assert!(out.contains("no data"));

        let mut r = sample();
        for w in &mut r.workloads {
            for run in &mut w.runs {
                if let Some(p) = &mut run.produce_max {
                    p.mb_per_sec = 0.0;
                }
                if let Some(p) = &mut run.end_to_end {
                    p.mb_per_sec = f64::NAN;
                    if let Some(l) = &mut p.ack_latency {
                        l.p99_ms = 0.0;
                    }
                    if let Some(l) = &mut p.e2e_latency {
                        l.p99_ms = f64::INFINITY;
                    }
                }
                if let Some(p) = &mut run.consume_backlog {
                    p.mb_per_sec = 0.0;
                }
            }
        }
        let out = svg(&r);
        check_xmlish(&out);
        assert!(!out.contains("NaN"), "{out}");
        assert!(!out.to_lowercase().contains("inf"), "{out}");
        // Zero throughput is a measurement (a sliver each); a zero or
        // infinite latency has no place on a log axis and is left out.
        assert_eq!(out.matches("<title>").count(), 2 * 7, "{out}");
        let doc = markdown(&r);
        assert!(!doc.contains("NaN") && !doc.contains("inf"), "{doc}");
    }
}
