//! The checker: reads a chaos run's history and says what went wrong.
//!
//! [`check`] is a pure function of the history; [`render`] turns its
//! [`Report`] into the summary a person reads. Start at [`check`]: it builds
//! one [`Index`] over the history (hash maps keyed by value and by
//! `(partition, offset)`, borrowing the values from the entries, so a history
//! of millions of entries costs a few passes and no quadratic scans), then runs
//! one small function per anomaly kind, each appending to the report in a
//! fixed order.
//!
//! What counts as an anomaly, and why:
//! - `lost`, `wrong_offset`: an acknowledged (acks=all) value must be in the
//!   final log, at the offset it was acknowledged at.
//! - `no_final_read`: acks on a partition the history never read back, so
//!   nothing about it could be checked.
//! - `duplicate`, `order`: producers are idempotent, so each value is written
//!   once, and one producer's values on one partition keep their send order.
//! - `offset_conflict`: one `(partition, offset)` holds one record; acks,
//!   consumer reads and the final read must agree on it.
//! - `phantom`: a read of a value nobody sent.
//! - `read_not_in_log`: a consumer read a record the final log no longer
//!   has (served above the high watermark, later truncated).
//! - `commit_backwards`: a group's committed offset went back.
//! - `replica_divergence`: replicas disagree on the batches below the high
//!   watermark.
//! - `final_read_above_hw`: the final read returned a record at or above the
//!   high watermark it reported.
//! - `stalled`: liveness. Once the last fault has healed the cluster must
//!   work again by itself: every producer still sending gets an
//!   acknowledgement, and every consumer group reads, before the workload
//!   stops (the harness gives them `RECOVERY`).
//! - `process_crashed`: a broker or etcd member died without a nemesis.
//!
//! A failed send is indeterminate (it may or may not have been written), so a
//! failed value is never an anomaly by itself, and a value that failed once
//! and was acknowledged on a retry counts as acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::history::{Entry, NemesisAction, Op};

/// At most this many history lines are cited per anomaly: enough to show it,
/// few enough to print.
const MAX_LINES: usize = 10;

/// At most this many anomalies are printed by [`render`]; the rest are in
/// `summary.json`.
const MAX_RENDERED: usize = 20;

/// What the checker found; written as `DIR/summary.json`.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Report {
    /// `Send` entries (a retried value counts once per send).
    pub sent: u64,
    /// `Ack` entries.
    pub acknowledged: u64,
    /// `SendFailed` entries: indeterminate, not errors of the system.
    pub send_failed: u64,
    /// Consumer `Read` entries.
    pub reads: u64,
    /// Acknowledged `Commit` entries.
    pub commits: u64,
    /// `CommitFailed` entries.
    pub commit_failed: u64,
    /// `FinalRead` entries: records read back after the faults healed.
    pub final_records: u64,
    /// How many times each nemesis started a fault.
    pub nemeses: BTreeMap<String, u64>,
    /// Empty when the run is clean.
    pub anomalies: Vec<Anomaly>,
}

/// One thing that should not have happened.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// `lost`, `wrong_offset`, `duplicate`, ... (see the module docs).
    pub kind: String,
    /// The partition it is about, when it is about one.
    pub partition: Option<u32>,
    /// One line a person can act on: which value, offsets, brokers.
    pub message: String,
    /// History line numbers that show it, ascending, at most [`MAX_LINES`].
    pub lines: Vec<usize>,
}

impl Anomaly {
    /// `lines` lists the most telling lines first: past [`MAX_LINES`] the
    /// rest are dropped before sorting.
    fn new(kind: &str, partition: Option<u32>, message: String, mut lines: Vec<usize>) -> Self {
        let mut seen = HashSet::new();
        lines.retain(|l| seen.insert(*l));
        lines.truncate(MAX_LINES);
        lines.sort_unstable();
        Self {
            kind: kind.to_owned(),
            partition,
            message,
            lines,
        }
    }
}

/// Check a history (as from [`super::history::load`]) for anomalies.
pub fn check(history: &[(usize, Entry)]) -> Report {
    let mut report = counts(history);
    let idx = Index::build(history, &report);
    let out = &mut report.anomalies;
    no_final_read(history, &idx, out);
    lost_and_wrong_offset(history, &idx, out);
    duplicates(&idx, out);
    order(&idx, out);
    offset_conflicts(history, report.final_records, out);
    phantoms(history, &idx, out);
    reads_not_in_log(history, &idx, out);
    commits_backwards(history, out);
    replica_divergence(&idx, out);
    final_reads_above_hw(history, &idx, out);
    stalled(history, out);
    processes_crashed(history, out);
    report
}

/// A human summary of `report`, citing the history lines each anomaly names.
pub fn render(report: &Report, history: &[(usize, Entry)]) -> String {
    let mut s = String::new();
    let r = report;
    let _ = writeln!(s, "history: {} entries", history.len());
    let _ = writeln!(
        s,
        "sends: {} sent, {} acknowledged, {} failed (indeterminate)",
        r.sent, r.acknowledged, r.send_failed
    );
    let _ = writeln!(
        s,
        "reads: {} consumer reads, {} commits ({} failed), {} records in the final read",
        r.reads, r.commits, r.commit_failed, r.final_records
    );
    let nemeses: Vec<String> = r.nemeses.iter().map(|(n, c)| format!("{n} x{c}")).collect();
    let nemeses = if nemeses.is_empty() {
        "none".to_owned()
    } else {
        nemeses.join(", ")
    };
    let _ = writeln!(s, "nemeses: {nemeses}");
    if r.anomalies.is_empty() {
        let _ = writeln!(s, "no anomalies");
        return s;
    }
    let _ = writeln!(s, "{} anomalies:", r.anomalies.len());
    let shown = &r.anomalies[..r.anomalies.len().min(MAX_RENDERED)];
    let cited = cited_entries(shown, history);
    for a in shown {
        let p = a.partition.map(|p| format!(" p{p}")).unwrap_or_default();
        let _ = writeln!(s, "- {}{p}: {}", a.kind, a.message);
        for line in &a.lines {
            if let Some(e) = cited.get(line) {
                let json = serde_json::to_string(e).expect("history entries serialise");
                let _ = writeln!(s, "    {line}: {json}");
            }
        }
    }
    if r.anomalies.len() > shown.len() {
        let _ = writeln!(s, "... and {} more", r.anomalies.len() - shown.len());
    }
    s
}

/// The entries at the lines `anomalies` cite, found in one pass (the
/// history need not be sorted by line).
fn cited_entries<'a>(
    anomalies: &[Anomaly],
    history: &'a [(usize, Entry)],
) -> HashMap<usize, &'a Entry> {
    let wanted: HashSet<usize> = anomalies
        .iter()
        .flat_map(|a| a.lines.iter().copied())
        .collect();
    history
        .iter()
        .filter(|(l, _)| wanted.contains(l))
        .map(|(l, e)| (*l, e))
        .collect()
}

fn counts(history: &[(usize, Entry)]) -> Report {
    let mut r = Report::default();
    for (_, e) in history {
        match &e.op {
            Op::Send { .. } => r.sent += 1,
            Op::Ack { .. } => r.acknowledged += 1,
            Op::SendFailed { .. } => r.send_failed += 1,
            Op::Read { .. } => r.reads += 1,
            Op::Commit { .. } => r.commits += 1,
            Op::CommitFailed { .. } => r.commit_failed += 1,
            Op::FinalRead { .. } => r.final_records += 1,
            Op::Nemesis {
                name,
                action: NemesisAction::Start,
                ..
            } => *r.nemeses.entry(name.clone()).or_default() += 1,
            _ => {}
        }
    }
    r
}

/// Which kind of entry placed a value at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Ack,
    Read,
    Final,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Ack => "ack",
            Source::Read => "read",
            Source::Final => "final read",
        }
    }
}

/// A value at an offset, as one history line claims it.
#[derive(Debug, Clone, Copy)]
struct Rec<'a> {
    line: usize,
    /// Who wrote the entry, for messages.
    process: &'a str,
    source: Source,
    partition: u32,
    offset: i64,
    value: &'a str,
}

impl Rec<'_> {
    fn at(&self) -> String {
        format!("p{}@{}", self.partition, self.offset)
    }
}

/// Every `Ack`, `Read` and `FinalRead` as a [`Rec`], in history order.
fn recs(history: &[(usize, Entry)]) -> impl Iterator<Item = Rec<'_>> {
    history.iter().filter_map(|(line, e)| {
        let (source, partition, offset, value) = match &e.op {
            Op::Ack {
                partition,
                value,
                offset,
            } => (Source::Ack, partition, offset, value),
            Op::Read {
                partition,
                offset,
                value,
            } => (Source::Read, partition, offset, value),
            Op::FinalRead {
                partition,
                offset,
                value,
            } => (Source::Final, partition, offset, value),
            _ => return None,
        };
        Some(Rec {
            line: *line,
            process: &e.process,
            source,
            partition: *partition,
            offset: *offset,
            value,
        })
    })
}

fn recs_of(history: &[(usize, Entry)], source: Source) -> impl Iterator<Item = Rec<'_>> {
    recs(history).filter(move |r| r.source == source)
}

/// How often a value was sent, and where first.
#[derive(Debug, Clone, Copy)]
struct Sent {
    line: usize,
    count: u32,
}

/// The lookups the checks share, built in one pass.
#[derive(Default)]
struct Index<'a> {
    sends: HashMap<&'a str, Sent>,
    /// Each value's first place in the final read.
    final_first: HashMap<&'a str, Rec<'a>>,
    /// Further distinct places of a value in the final read: only
    /// duplicates land here, so it stays small.
    final_extra: HashMap<&'a str, Vec<Rec<'a>>>,
    /// Each partition's final high watermark and its line (the last one
    /// recorded wins).
    hw: BTreeMap<u32, (i64, usize)>,
    /// Partitions with a `FinalRead` or `FinalHighWatermark`: the only ones
    /// whose final log we know.
    finals: HashSet<u32>,
    /// Per partition, per broker: the line and the batches of its last
    /// `ReplicaBatches` entry.
    replicas: BTreeMap<u32, BTreeMap<i32, (usize, &'a [Batch])>>,
    /// Per partition, per broker: who wrote each of those batches.
    writers: BTreeMap<u32, BTreeMap<i32, &'a [Writer]>>,
}

impl<'a> Index<'a> {
    /// Who wrote the batch holding `offset` of `partition`, from the first
    /// replica that has it.
    fn writer_of(&self, partition: u32, offset: i64) -> Option<Writer> {
        let replicas = self.replicas.get(&partition)?;
        let writers = self.writers.get(&partition)?;
        replicas.iter().find_map(|(broker, (_, batches))| {
            let i = batches
                .iter()
                .position(|b| b.0 <= offset && offset <= b.1)?;
            writers.get(broker)?.get(i).copied()
        })
    }

    /// `counts` sizes the maps up front: growing them entry by entry was a
    /// fifth of the checker's time on a history of millions.
    fn build(history: &'a [(usize, Entry)], counts: &Report) -> Self {
        let mut idx = Self::default();
        idx.sends.reserve(counts.sent as usize);
        idx.final_first.reserve(counts.final_records as usize);
        for (line, e) in history {
            let line = *line;
            match &e.op {
                Op::Send { value, .. } => {
                    idx.sends
                        .entry(value)
                        .or_insert(Sent { line, count: 0 })
                        .count += 1;
                }
                Op::FinalHighWatermark { partition, offset } => {
                    idx.hw.insert(*partition, (*offset, line));
                    idx.finals.insert(*partition);
                }
                Op::ReplicaBatches {
                    broker,
                    partition,
                    batches,
                    writers,
                } => {
                    let brokers = idx.replicas.entry(*partition).or_default();
                    brokers.insert(*broker, (line, batches.as_slice()));
                    if writers.len() == batches.len() {
                        let brokers = idx.writers.entry(*partition).or_default();
                        brokers.insert(*broker, writers.as_slice());
                    }
                }
                _ => {}
            }
        }
        for r in recs_of(history, Source::Final) {
            idx.add_final(r);
        }
        idx
    }

    fn add_final(&mut self, r: Rec<'a>) {
        self.finals.insert(r.partition);
        let same = |o: &Rec<'_>| o.partition == r.partition && o.offset == r.offset;
        match self.final_first.get(r.value) {
            None => {
                self.final_first.insert(r.value, r);
            }
            Some(first) if same(first) => {}
            Some(_) => {
                let extra = self.final_extra.entry(r.value).or_default();
                if !extra.iter().any(same) {
                    extra.push(r);
                }
            }
        }
    }

    /// Every distinct place of `value` in the final read, first seen first.
    fn final_places(&self, value: &str) -> Vec<Rec<'a>> {
        let mut places: Vec<Rec<'a>> = self.final_first.get(value).copied().into_iter().collect();
        places.extend(self.final_extra.get(value).into_iter().flatten().copied());
        places
    }

    fn hw_text(&self, partition: u32) -> String {
        match self.hw.get(&partition) {
            Some((hw, _)) => format!("hw {hw}"),
            None => "no hw recorded".to_owned(),
        }
    }

    /// The send line (if any) followed by `lines`: the usual citation.
    fn with_send(&self, value: &str, lines: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut out: Vec<usize> = self.sends.get(value).map(|s| s.line).into_iter().collect();
        out.extend(lines);
        out
    }

    fn hw_line(&self, partition: u32) -> Option<usize> {
        self.hw.get(&partition).map(|(_, l)| *l)
    }
}

/// Occurrences grouped by key in order of first occurrence, counting them
/// all but keeping only the first few lines of each.
struct Groups<K, V> {
    index: HashMap<K, usize>,
    groups: Vec<Group<K, V>>,
}

struct Group<K, V> {
    key: K,
    /// The first occurrence.
    first: V,
    count: u64,
    lines: Vec<usize>,
}

impl<K: std::hash::Hash + Eq + Copy, V> Groups<K, V> {
    fn new() -> Self {
        Self {
            index: HashMap::new(),
            groups: Vec::new(),
        }
    }

    fn add(&mut self, key: K, line: usize, value: V) {
        let i = *self.index.entry(key).or_insert_with(|| {
            self.groups.push(Group {
                key,
                first: value,
                count: 0,
                lines: Vec::new(),
            });
            self.groups.len() - 1
        });
        let g = &mut self.groups[i];
        g.count += 1;
        if g.lines.len() < MAX_LINES {
            g.lines.push(line);
        }
    }
}

/// Acks on a partition whose final log the history never recorded.
fn no_final_read(history: &[(usize, Entry)], idx: &Index<'_>, out: &mut Vec<Anomaly>) {
    let mut unread = Groups::new();
    for ack in recs_of(history, Source::Ack).filter(|a| !idx.finals.contains(&a.partition)) {
        unread.add(ack.partition, ack.line, ());
    }
    for g in unread.groups {
        let msg = format!(
            "p{} has {} acknowledged values but the history has no final read or high \
             watermark for it, so none of them could be checked (did the final read fail?)",
            g.key, g.count
        );
        // The first ack is enough to show it.
        out.push(Anomaly::new(
            "no_final_read",
            Some(g.key),
            msg,
            vec![g.lines[0]],
        ));
    }
}

/// Each acknowledged value must be in its partition's final log at the
/// acknowledged offset. Reported once per value.
fn lost_and_wrong_offset(history: &[(usize, Entry)], idx: &Index<'_>, out: &mut Vec<Anomaly>) {
    let mut reported = HashSet::new();
    for ack in recs_of(history, Source::Ack).filter(|a| idx.finals.contains(&a.partition)) {
        // A negative offset: acknowledged without one (see `Op::Ack`), so
        // only its presence in the partition can be checked.
        let at_ack = |r: &Rec<'_>| {
            r.partition == ack.partition && (ack.offset < 0 || r.offset == ack.offset)
        };
        // The common case, without building the list of places.
        if idx.final_first.get(ack.value).is_some_and(at_ack) {
            continue;
        }
        let places = idx.final_places(ack.value);
        let here: Vec<&Rec<'_>> = places
            .iter()
            .filter(|p| p.partition == ack.partition)
            .collect();
        if here.iter().any(|r| at_ack(r)) || !reported.insert(ack.value) {
            continue;
        }
        let p = ack.partition;
        let anomaly = if here.is_empty() {
            let elsewhere: Vec<String> = places.iter().map(Rec::at).collect();
            let elsewhere = if elsewhere.is_empty() {
                String::new()
            } else {
                format!("; it is in the final log at {}", elsewhere.join(", "))
            };
            let msg = format!(
                "value {} acknowledged at {} (line {}) is not in the final read of p{p} ({}){elsewhere}",
                ack.value,
                ack.at(),
                ack.line,
                idx.hw_text(p),
            );
            let mut lines = idx.with_send(ack.value, [ack.line]);
            lines.extend(idx.hw_line(p));
            lines.extend(places.iter().map(|r| r.line));
            Anomaly::new("lost", Some(p), msg, lines)
        } else {
            let found: Vec<String> = here.iter().map(|r| r.offset.to_string()).collect();
            let msg = format!(
                "value {} acknowledged at {} (line {}) is at offset {} in the final log",
                ack.value,
                ack.at(),
                ack.line,
                found.join(", ")
            );
            let lines = idx.with_send(
                ack.value,
                [ack.line].into_iter().chain(here.iter().map(|r| r.line)),
            );
            Anomaly::new("wrong_offset", Some(p), msg, lines)
        };
        out.push(anomaly);
    }
}

/// A value at more than one place in the final log.
fn duplicates(idx: &Index<'_>, out: &mut Vec<Anomaly>) {
    // Values in order of their first final read, so the report is stable.
    let mut dups: Vec<(&str, Vec<Rec<'_>>)> = idx
        .final_extra
        .keys()
        .map(|v| (*v, idx.final_places(v)))
        .collect();
    dups.sort_by_key(|(_, places)| places[0].line);
    for (value, places) in dups {
        let at: Vec<String> = places.iter().map(Rec::at).collect();
        let sends = idx.sends.get(value).map_or(0, |s| s.count);
        let partitions: BTreeSet<u32> = places.iter().map(|r| r.partition).collect();
        let partition = (partitions.len() == 1).then(|| places[0].partition);
        let mut msg = format!(
            "value {value} is in the final log {} times: {} (sent {sends} time{})",
            places.len(),
            at.join(", "),
            if sends == 1 { "" } else { "s" },
        );
        let writers: Vec<Option<Writer>> = places
            .iter()
            .map(|r| idx.writer_of(r.partition, r.offset))
            .collect();
        if writers.iter().all(Option::is_some) {
            let named: Vec<String> = writers
                .iter()
                .flatten()
                .map(|(id, epoch, seq)| format!("producer {id} epoch {epoch} seq {seq}"))
                .collect();
            let epochs: BTreeSet<(i64, i16)> = writers
                .iter()
                .flatten()
                .map(|(id, e, _)| (*id, *e))
                .collect();
            let verdict = if epochs.len() < writers.len() {
                "two copies under one producer epoch: the broker did not de-duplicate a retry"
            } else {
                "each copy under another producer id or epoch: the client resent already \
                 written records after starting a new epoch, which no broker de-duplicates \
                 (librdkafka does so after some failures: confluentinc/librdkafka#4953)"
            };
            let _ = write!(msg, "; batches by {}: {verdict}", named.join(", "));
        }
        let lines = idx.with_send(value, places.iter().map(|r| r.line));
        out.push(Anomaly::new("duplicate", partition, msg, lines));
    }
}

/// Split `"<client>-<seq>"` at the last dash (client names contain dashes).
fn parse_value(value: &str) -> Option<(&str, u64)> {
    let (client, seq) = value.rsplit_once('-')?;
    Some((client, seq.parse().ok()?))
}

/// Per producer and partition, values taken in seq order must sit at
/// strictly increasing offsets. Reports the first inversion of each.
fn order(idx: &Index<'_>, out: &mut Vec<Anomaly>) {
    let mut by_client: BTreeMap<(&str, u32), Vec<(u64, Rec<'_>)>> = BTreeMap::new();
    for (value, rec) in &idx.final_first {
        // A value sent more than once was resent by the workload after its
        // send failed, possibly after later values: its place says nothing
        // about order. Unsent values are phantoms, reported as such.
        if idx.sends.get(value).is_none_or(|s| s.count != 1) {
            continue;
        }
        if let Some((client, seq)) = parse_value(value) {
            by_client
                .entry((client, rec.partition))
                .or_default()
                .push((seq, *rec));
        }
    }
    for ((client, partition), mut recs) in by_client {
        recs.sort_unstable_by_key(|(seq, _)| *seq);
        let Some(w) = recs.windows(2).find(|w| w[1].1.offset <= w[0].1.offset) else {
            continue;
        };
        let ((s0, r0), (s1, r1)) = (w[0], w[1]);
        let msg = format!(
            "producer {client} on p{partition}: seq {s0} ({}) is at offset {} but seq {s1} ({}), \
             sent after it, is at offset {}",
            r0.value, r0.offset, r1.value, r1.offset
        );
        let lines = vec![r0.line, r1.line];
        out.push(Anomaly::new("order", Some(partition), msg, lines));
    }
}

/// Acks, reads and the final read must agree on what each offset holds.
/// Reported once per `(partition, offset)`, citing the first line of each
/// value claimed there.
fn offset_conflicts(history: &[(usize, Entry)], final_records: u64, out: &mut Vec<Anomaly>) {
    // First pass: the first value claimed at each offset; remember the
    // offsets where a later line claims another.
    // Sized for the final log: most claims are of offsets in it.
    let mut first: HashMap<(u32, i64), &str> = HashMap::with_capacity(final_records as usize);
    let mut conflicted: HashSet<(u32, i64)> = HashSet::new();
    // Acknowledgements without an offset claim none.
    for r in recs(history).filter(|r| r.offset >= 0) {
        let v = *first.entry((r.partition, r.offset)).or_insert(r.value);
        if v != r.value {
            conflicted.insert((r.partition, r.offset));
        }
    }
    drop(first);
    // Second pass, only for those offsets: the first claim of each value
    // (a few values per offset at most, so a list).
    let mut claims: HashMap<(u32, i64), Vec<Rec<'_>>> = HashMap::new();
    for r in recs(history).filter(|r| conflicted.contains(&(r.partition, r.offset))) {
        let c = claims.entry((r.partition, r.offset)).or_default();
        if c.len() < MAX_LINES && !c.iter().any(|c| c.value == r.value) {
            c.push(r);
        }
    }
    let mut claims: Vec<_> = claims.into_iter().collect();
    claims.sort_unstable_by_key(|(_, c)| c[0].line);
    for ((p, offset), c) in claims {
        let said: Vec<String> = c
            .iter()
            .map(|c| format!("{} ({} line {})", c.value, c.source.name(), c.line))
            .collect();
        let msg = format!(
            "p{p} offset {offset} holds different values: {}",
            said.join(", ")
        );
        let lines = c.iter().map(|c| c.line).collect();
        out.push(Anomaly::new("offset_conflict", Some(p), msg, lines));
    }
}

/// A read (during the run or final) of a value no `Send` carried.
fn phantoms(history: &[(usize, Entry)], idx: &Index<'_>, out: &mut Vec<Anomaly>) {
    let mut found = Groups::new();
    for r in recs(history).filter(|r| r.source != Source::Ack && !idx.sends.contains_key(r.value)) {
        found.add(r.value, r.line, r);
    }
    for g in found.groups {
        let r = g.first;
        let msg = format!(
            "value {} was never sent, yet {} at {} (line {}){}",
            g.key,
            if r.source == Source::Read {
                "a consumer read it"
            } else {
                "the final read has it"
            },
            r.at(),
            r.line,
            if g.count > 1 {
                format!("; read {} times in all", g.count)
            } else {
                String::new()
            },
        );
        out.push(Anomaly::new("phantom", Some(r.partition), msg, g.lines));
    }
}

/// A consumer read a value the final log does not have anywhere.
fn reads_not_in_log(history: &[(usize, Entry)], idx: &Index<'_>, out: &mut Vec<Anomaly>) {
    let mut found = Groups::new();
    let missing = |r: &Rec<'_>| {
        idx.finals.contains(&r.partition)
            && idx.sends.contains_key(r.value)
            && !idx.final_first.contains_key(r.value)
    };
    for r in recs_of(history, Source::Read).filter(missing) {
        found.add(r.value, r.line, r);
    }
    for g in found.groups {
        let r = g.first;
        let p = r.partition;
        let msg = format!(
            "{} read value {} at {} (line {}), but it is not in the final log ({}): served \
             above the high watermark and truncated later?",
            r.process,
            g.key,
            r.at(),
            r.line,
            idx.hw_text(p),
        );
        // Keep room for the send and hw lines among the cited ones.
        let reads = g.lines.into_iter().take(MAX_LINES - 2);
        let mut lines = idx.with_send(g.key, reads);
        lines.extend(idx.hw_line(p));
        out.push(Anomaly::new("read_not_in_log", Some(p), msg, lines));
    }
}

/// Per group and partition, an acknowledged commit must not go below an
/// earlier one. Reported once per `(group, partition)`: the first commit
/// that went back.
fn commits_backwards(history: &[(usize, Entry)], out: &mut Vec<Anomaly>) {
    #[derive(Default)]
    struct State {
        /// The highest commit so far: offset, line.
        max: Option<(i64, usize)>,
        /// The first commit below it: offset, line, and the max then.
        first_back: Option<((i64, usize), (i64, usize))>,
        backs: u64,
    }
    let mut groups: BTreeMap<(&str, u32), State> = BTreeMap::new();
    for (line, e) in history {
        let Op::Commit {
            group,
            partition,
            offset,
        } = &e.op
        else {
            continue;
        };
        let s = groups.entry((group, *partition)).or_default();
        match s.max {
            Some(max) if *offset < max.0 => {
                s.backs += 1;
                s.first_back.get_or_insert(((*offset, *line), max));
            }
            Some(max) if *offset == max.0 => {}
            _ => s.max = Some((*offset, *line)),
        }
    }
    for ((group, p), s) in groups {
        let Some(((offset, line), (max, max_line))) = s.first_back else {
            continue;
        };
        let msg = format!(
            "group {group} on p{p} committed offset {offset} (line {line}) after offset {max} \
             (line {max_line}); {} backward commit{} in all",
            s.backs,
            if s.backs == 1 { "" } else { "s" },
        );
        out.push(Anomaly::new(
            "commit_backwards",
            Some(p),
            msg,
            vec![max_line, line],
        ));
    }
}

/// Below the final high watermark every replica of a partition must hold
/// the same batches. Each replica is compared with the one that has the
/// most batches there (lowest broker id on a tie).
fn replica_divergence(idx: &Index<'_>, out: &mut Vec<Anomaly>) {
    for (p, brokers) in &idx.replicas {
        let Some(&(hw, hw_line)) = idx.hw.get(p) else {
            continue;
        };
        let below: Vec<Replica> = brokers
            .iter()
            .map(|(broker, (line, batches))| {
                let mut batches: Vec<Batch> =
                    batches.iter().copied().filter(|b| b.1 < hw).collect();
                batches.sort_unstable();
                Replica {
                    broker: *broker,
                    line: *line,
                    batches,
                }
            })
            .collect();
        // max_by_key returns the last maximum; iterate brokers in reverse so
        // ties go to the lowest broker id.
        let Some(reference) = below.iter().rev().max_by_key(|r| r.batches.len()) else {
            continue;
        };
        for other in below.iter().filter(|o| o.broker != reference.broker) {
            if let Some(msg) = diverge(reference, other, hw) {
                let lines = vec![reference.line, other.line, hw_line];
                out.push(Anomaly::new("replica_divergence", Some(*p), msg, lines));
            }
        }
    }
}

/// `(base_offset, last_offset, crc)`, as in `ReplicaBatches`.
type Batch = (i64, i64, u32);

/// `(producer_id, producer_epoch, base_sequence)`, as in `ReplicaBatches`.
type Writer = (i64, i16, i32);

/// One replica's batches below the high watermark, sorted.
struct Replica {
    broker: i32,
    /// Its `ReplicaBatches` line.
    line: usize,
    batches: Vec<Batch>,
}

/// How `other`'s batches below `hw` first differ from `reference`'s, if
/// they do. `reference` has at least as many.
fn diverge(reference: &Replica, other: &Replica, hw: i64) -> Option<String> {
    let (rb, rv) = (reference.broker, &reference.batches);
    let (ob, ov) = (other.broker, &other.batches);
    let i = (0..rv.len()).find(|&i| ov.get(i) != Some(&rv[i]))?;
    let batch = |(base, last, crc): Batch| format!("{base}..{last} crc {crc:#010x}");
    Some(match ov.get(i) {
        Some(&o) => format!(
            "below hw {hw}, broker {rb} has batch {} where broker {ob} has {} (batch {i} of each)",
            batch(rv[i]),
            batch(o)
        ),
        None => format!(
            "below hw {hw}, broker {ob} is missing batch {} and {} more that broker {rb} has \
             (it has {} batches there, broker {rb} has {})",
            batch(rv[i]),
            rv.len() - i - 1,
            ov.len(),
            rv.len()
        ),
    })
}

/// The final read returned records at or above the high watermark it
/// recorded: the leader served uncommitted data.
fn final_reads_above_hw(history: &[(usize, Entry)], idx: &Index<'_>, out: &mut Vec<Anomaly>) {
    let mut found = Groups::new();
    for r in recs_of(history, Source::Final) {
        if idx
            .hw
            .get(&r.partition)
            .is_some_and(|(hw, _)| r.offset >= *hw)
        {
            found.add(r.partition, r.line, r);
        }
    }
    for g in found.groups {
        let (p, r) = (g.key, g.first);
        let msg = format!(
            "the final read of p{p} returned {} record{} at or above {}, the first value {} at \
             offset {} (line {})",
            g.count,
            if g.count == 1 { "" } else { "s" },
            idx.hw_text(p),
            r.value,
            r.offset,
            r.line
        );
        let mut lines: Vec<usize> = idx.hw_line(p).into_iter().collect();
        lines.extend(g.lines);
        out.push(Anomaly::new("final_read_above_hw", Some(p), msg, lines));
    }
}

/// A process died that no nemesis killed: every fault must leave the
/// brokers and etcd running (a full disk included).
/// Producers and consumer groups that made no progress after the last
/// fault healed (see the module docs).
fn stalled(history: &[(usize, Entry)], out: &mut Vec<Anomaly>) {
    #[derive(Default)]
    struct Progress {
        /// The first send, read or commit after the heal: the client was
        /// still at work.
        active: Option<usize>,
        /// The first acknowledgement (producers) or read (groups) after it.
        progressed: Option<usize>,
        /// The last acknowledgement or read before it.
        last_before: Option<usize>,
    }
    // About recovery from faults: without one there is nothing to check.
    let Some(healed) = history
        .iter()
        .rev()
        .find(|(_, e)| {
            matches!(
                &e.op,
                Op::Nemesis {
                    action: NemesisAction::Stop,
                    ..
                }
            )
        })
        .map(|(line, e)| (*line, e.t))
    else {
        return;
    };
    // Consumers by group, from their commits: reads do not name one.
    let mut group_of: HashMap<&str, &str> = HashMap::new();
    for (_, e) in history {
        if let Op::Commit { group, .. } | Op::CommitFailed { group, .. } = &e.op {
            group_of.entry(e.process.as_str()).or_insert(group.as_str());
        }
    }
    let mut producers: BTreeMap<&str, Progress> = BTreeMap::new();
    let mut groups: BTreeMap<&str, Progress> = BTreeMap::new();
    for (line, e) in history {
        let (progress, is_progress) = match &e.op {
            Op::Send { .. } => (producers.entry(e.process.as_str()).or_default(), false),
            Op::Ack { .. } => (producers.entry(e.process.as_str()).or_default(), true),
            Op::Read { .. } | Op::Commit { .. } | Op::CommitFailed { .. } => {
                let Some(group) = group_of.get(e.process.as_str()) else {
                    continue;
                };
                (
                    groups.entry(group).or_default(),
                    matches!(e.op, Op::Read { .. }),
                )
            }
            _ => continue,
        };
        if *line < healed.0 {
            if is_progress {
                progress.last_before = Some(*line);
            }
            continue;
        }
        progress.active.get_or_insert(*line);
        if is_progress {
            progress.progressed.get_or_insert(*line);
        }
    }
    let (heal_line, heal_t) = healed;
    let stall = |kind: &str, name: &str, what: &str, p: &Progress| {
        let (Some(active), None) = (p.active, p.progressed) else {
            return None;
        };
        let since = p.last_before.map_or_else(
            || "none".to_owned(),
            |l| format!("line {l} ({} ms)", history_t(history, l)),
        );
        let mut lines = vec![heal_line, active];
        lines.extend(p.last_before);
        Some(Anomaly::new(
            "stalled",
            None,
            format!(
                "{kind} {name}: no {what} after the last fault healed (line {heal_line}, {heal_t} ms), although it was still at work (line {active}); the last one before: {since}"
            ),
            lines,
        ))
    };
    for (name, p) in &producers {
        out.extend(stall("producer", name, "acknowledgement", p));
    }
    for (name, p) in &groups {
        out.extend(stall("consumer group", name, "read", p));
    }
}

/// The time of history line `line`.
fn history_t(history: &[(usize, Entry)], line: usize) -> u64 {
    history
        .binary_search_by_key(&line, |(l, _)| *l)
        .map_or(0, |i| history[i].1.t)
}

fn processes_crashed(history: &[(usize, Entry)], out: &mut Vec<Anomaly>) {
    for (line, entry) in history {
        if let Op::ProcessExited { name, status } = &entry.op {
            out.push(Anomaly::new(
                "process_crashed",
                None,
                format!("{name} went down without a nemesis ({status}); its log is in the run's cluster/"),
                vec![*line],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history of `ops`, numbered from line 1 as `load` does.
    fn hist(ops: Vec<Op>) -> Vec<(usize, Entry)> {
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| {
                let process = "test".to_owned();
                (
                    i + 1,
                    Entry {
                        t: i as u64,
                        process,
                        op,
                    },
                )
            })
            .collect()
    }

    fn send(partition: u32, value: &str) -> Op {
        let value = value.to_owned();
        Op::Send { partition, value }
    }

    fn ack(partition: u32, value: &str, offset: i64) -> Op {
        let value = value.to_owned();
        Op::Ack {
            partition,
            value,
            offset,
        }
    }

    fn failed(partition: u32, value: &str) -> Op {
        let (value, error) = (value.to_owned(), "timed out".to_owned());
        Op::SendFailed {
            partition,
            value,
            error,
        }
    }

    fn read(partition: u32, offset: i64, value: &str) -> Op {
        let value = value.to_owned();
        Op::Read {
            partition,
            offset,
            value,
        }
    }

    fn fin(partition: u32, offset: i64, value: &str) -> Op {
        let value = value.to_owned();
        Op::FinalRead {
            partition,
            offset,
            value,
        }
    }

    fn hw(partition: u32, offset: i64) -> Op {
        Op::FinalHighWatermark { partition, offset }
    }

    fn commit(group: &str, partition: u32, offset: i64) -> Op {
        let group = group.to_owned();
        Op::Commit {
            group,
            partition,
            offset,
        }
    }

    fn commit_failed(group: &str, partition: u32, offset: i64) -> Op {
        let (group, error) = (group.to_owned(), "not coordinator".to_owned());
        Op::CommitFailed {
            group,
            partition,
            offset,
            error,
        }
    }

    fn nemesis(name: &str, action: NemesisAction) -> Op {
        let (name, detail) = (name.to_owned(), String::new());
        Op::Nemesis {
            name,
            action,
            detail,
        }
    }

    fn replica(broker: i32, partition: u32, batches: &[(i64, i64, u32)]) -> Op {
        let batches = batches.to_vec();
        Op::ReplicaBatches {
            broker,
            partition,
            batches,
            writers: Vec::new(),
        }
    }

    /// Checks `ops` and asserts exactly one anomaly, of `kind`, citing
    /// `lines`; returns it for further asserts on the message.
    fn only(ops: Vec<Op>, kind: &str, lines: &[usize]) -> Anomaly {
        let report = check(&hist(ops));
        assert_eq!(report.anomalies.len(), 1, "{:#?}", report.anomalies);
        let a = report.anomalies[0].clone();
        assert_eq!(a.kind, kind, "{a:#?}");
        assert_eq!(a.lines, lines, "{a:#?}");
        a
    }

    fn clean(ops: Vec<Op>) -> Report {
        let report = check(&hist(ops));
        assert!(report.anomalies.is_empty(), "{:#?}", report.anomalies);
        report
    }

    #[test]
    fn clean_history_has_no_anomalies_and_counts_everything() {
        use NemesisAction::{Start, Stop};
        let r = clean(vec![
            send(0, "grpc-p0-0"),
            send(0, "grpc-p0-1"),
            send(1, "kafka-p1-0"),
            nemesis("kill", Start),
            ack(0, "grpc-p0-0", 0),
            ack(0, "grpc-p0-1", 1),
            ack(1, "kafka-p1-0", 0),
            read(0, 0, "grpc-p0-0"),
            read(0, 1, "grpc-p0-1"),
            // A re-read after a rebalance is fine.
            read(0, 0, "grpc-p0-0"),
            commit("g", 0, 2),
            commit("g", 0, 2),
            commit_failed("g", 0, 1),
            nemesis("kill", Stop),
            nemesis("kill", Start),
            nemesis("partition", Start),
            Op::Info {
                message: "healed".to_owned(),
            },
            fin(0, 0, "grpc-p0-0"),
            fin(0, 1, "grpc-p0-1"),
            hw(0, 2),
            fin(1, 0, "kafka-p1-0"),
            hw(1, 1),
            // Broker 1's batch at 2..2 is above the hw: not compared.
            replica(1, 0, &[(0, 1, 7), (2, 2, 9)]),
            replica(2, 0, &[(0, 1, 7)]),
            // One replica alone: nothing to compare.
            replica(1, 1, &[(0, 0, 5)]),
        ]);
        assert_eq!(
            (r.sent, r.acknowledged, r.send_failed, r.reads),
            (3, 3, 0, 3)
        );
        assert_eq!((r.commits, r.commit_failed, r.final_records), (2, 1, 3));
        let nemeses: Vec<(&str, u64)> = r.nemeses.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(nemeses, [("kill", 2), ("partition", 1)]);
    }

    #[test]
    fn summary_json_field_names() {
        let v = serde_json::to_value(Report::default()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "sent",
            "acknowledged",
            "send_failed",
            "reads",
            "commits",
            "commit_failed",
            "final_records",
            "nemeses",
            "anomalies",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn values_split_at_the_last_dash() {
        assert_eq!(parse_value("grpc-p0-17"), Some(("grpc-p0", 17)));
        assert_eq!(parse_value("x"), None);
        assert_eq!(parse_value("x-y"), None);
    }

    #[test]
    fn lost() {
        let ops = vec![send(0, "a-0"), ack(0, "a-0", 0), hw(0, 0)];
        let a = only(ops, "lost", &[1, 2, 3]);
        assert_eq!(a.partition, Some(0));
        assert!(
            a.message.contains("a-0") && a.message.contains("hw 0"),
            "{}",
            a.message
        );
    }

    #[test]
    fn acks_without_a_final_read() {
        let ops = vec![
            send(0, "a-0"),
            ack(0, "a-0", 0),
            send(0, "a-1"),
            ack(0, "a-1", 1),
        ];
        let a = only(ops, "no_final_read", &[2]);
        assert!(a.message.contains("2 acknowledged"), "{}", a.message);
    }

    #[test]
    fn an_acknowledgement_without_an_offset_is_checked_for_presence_only() {
        // librdkafka's implied acknowledgements carry offset -1001.
        let present = vec![
            send(0, "a-0"),
            ack(0, "a-0", -1001),
            fin(0, 7, "a-0"),
            hw(0, 8),
        ];
        assert!(check(&hist(present)).anomalies.is_empty());
        let gone = vec![
            send(0, "a-0"),
            ack(0, "a-0", -1001),
            fin(0, 7, "b-0"),
            hw(0, 8),
        ];
        let kinds: Vec<String> = check(&hist(gone))
            .anomalies
            .into_iter()
            .map(|a| a.kind)
            .collect();
        assert!(kinds.contains(&"lost".to_owned()), "{kinds:?}");
    }

    #[test]
    fn wrong_offset() {
        let ops = vec![send(0, "a-0"), ack(0, "a-0", 0), fin(0, 3, "a-0"), hw(0, 4)];
        let a = only(ops, "wrong_offset", &[1, 2, 3]);
        assert!(a.message.contains("offset 3"), "{}", a.message);
    }

    #[test]
    fn duplicate() {
        let ops = vec![
            send(0, "a-0"),
            ack(0, "a-0", 0),
            fin(0, 0, "a-0"),
            fin(0, 1, "a-0"),
            // Reading the same record twice is not a duplicate.
            fin(0, 1, "a-0"),
            hw(0, 2),
        ];
        let a = only(ops, "duplicate", &[1, 3, 4]);
        assert!(a.message.contains("p0@0, p0@1"), "{}", a.message);
    }

    #[test]
    fn a_duplicate_names_its_writers_and_who_is_to_blame() {
        let with_writers = |writers: Vec<(i64, i16, i32)>| {
            let ops = vec![
                send(0, "a-0"),
                ack(0, "a-0", 0),
                fin(0, 0, "a-0"),
                fin(0, 1, "a-0"),
                hw(0, 2),
                Op::ReplicaBatches {
                    broker: 1,
                    partition: 0,
                    batches: vec![(0, 0, 7), (1, 1, 8)],
                    writers,
                },
            ];
            let report = check(&hist(ops));
            let dups: Vec<_> = report
                .anomalies
                .into_iter()
                .filter(|a| a.kind == "duplicate")
                .collect();
            assert_eq!(dups.len(), 1, "{dups:?}");
            dups[0].message.clone()
        };
        let bumped = with_writers(vec![(1000, 2, 40), (1000, 3, 0)]);
        assert!(
            bumped.contains("producer 1000 epoch 2 seq 40, producer 1000 epoch 3 seq 0")
                && bumped.contains("new epoch"),
            "{bumped}"
        );
        let same = with_writers(vec![(1000, 2, 40), (1000, 2, 40)]);
        assert!(same.contains("the broker did not de-duplicate"), "{same}");
    }

    #[test]
    fn order() {
        let ops = vec![
            send(0, "a-0"),
            send(0, "a-1"),
            send(0, "b-0"),
            ack(0, "a-1", 0),
            ack(0, "a-0", 1),
            ack(0, "b-0", 2),
            fin(0, 0, "a-1"),
            fin(0, 1, "a-0"),
            fin(0, 2, "b-0"),
            hw(0, 3),
        ];
        let a = only(ops, "order", &[7, 8]);
        assert!(
            a.message.starts_with("producer a on p0: seq 0"),
            "{}",
            a.message
        );
    }

    #[test]
    fn offset_conflict() {
        let ops = vec![
            send(0, "p-0"),
            send(0, "q-0"),
            read(0, 0, "q-0"),
            fin(0, 0, "p-0"),
            fin(0, 1, "q-0"),
            hw(0, 2),
        ];
        let a = only(ops, "offset_conflict", &[3, 4]);
        assert!(a.message.contains("p0 offset 0"), "{}", a.message);
    }

    #[test]
    fn phantom() {
        let ops = vec![read(0, 0, "ghost-0"), fin(0, 0, "ghost-0"), hw(0, 1)];
        let a = only(ops, "phantom", &[1, 2]);
        assert!(
            a.message.contains("ghost-0 was never sent"),
            "{}",
            a.message
        );
    }

    #[test]
    fn read_not_in_log() {
        let ops = vec![send(0, "a-0"), read(0, 0, "a-0"), hw(0, 0)];
        let a = only(ops, "read_not_in_log", &[1, 2, 3]);
        assert!(a.message.contains("a-0 at p0@0"), "{}", a.message);
    }

    #[test]
    fn commit_backwards() {
        let ops = vec![
            commit("g", 0, 5),
            commit("g", 0, 3),
            commit("g", 0, 2),
            // Another group, and a failed commit: neither counts.
            commit("h", 0, 1),
            commit_failed("g", 0, 1),
            commit("g", 1, 1),
        ];
        let a = only(ops, "commit_backwards", &[1, 2]);
        assert!(a.message.contains("2 backward commits"), "{}", a.message);
    }

    #[test]
    fn replica_divergence_in_a_crc() {
        let ops = vec![
            hw(0, 4),
            replica(1, 0, &[(0, 1, 7), (2, 3, 8)]),
            replica(2, 0, &[(0, 1, 7), (2, 3, 9)]),
            replica(3, 0, &[(0, 1, 7), (2, 3, 8), (4, 4, 1)]),
        ];
        let a = only(ops, "replica_divergence", &[1, 2, 3]);
        assert!(
            a.message.contains("broker 1 has batch 2..3 crc 0x00000008"),
            "{}",
            a.message
        );
        assert!(
            a.message.contains("broker 2 has 2..3 crc 0x00000009"),
            "{}",
            a.message
        );
    }

    #[test]
    fn replica_divergence_missing_batches() {
        let ops = vec![
            hw(0, 4),
            replica(1, 0, &[(0, 1, 7), (2, 3, 8)]),
            replica(2, 0, &[(0, 1, 7)]),
        ];
        let a = only(ops, "replica_divergence", &[1, 2, 3]);
        assert!(
            a.message.contains("broker 2 is missing batch 2..3"),
            "{}",
            a.message
        );
    }

    #[test]
    fn final_read_above_hw() {
        let ops = vec![send(0, "a-0"), fin(0, 1, "a-0"), hw(0, 1)];
        only(ops, "final_read_above_hw", &[2, 3]);
    }

    #[test]
    fn failed_send_missing_from_the_log_is_fine() {
        let r = clean(vec![send(0, "a-0"), failed(0, "a-0"), hw(0, 0)]);
        assert_eq!((r.sent, r.send_failed), (1, 1));
    }

    #[test]
    fn acked_after_a_failed_send_is_fine() {
        let r = clean(vec![
            send(0, "a-0"),
            failed(0, "a-0"),
            send(0, "a-1"),
            ack(0, "a-1", 0),
            // The workload resends a-0 after a-1: its place after a-1 is
            // not an order anomaly.
            send(0, "a-0"),
            ack(0, "a-0", 1),
            fin(0, 0, "a-1"),
            fin(0, 1, "a-0"),
            hw(0, 2),
        ]);
        assert_eq!((r.sent, r.acknowledged, r.send_failed), (3, 2, 1));
    }

    #[test]
    fn render_totals_anomalies_and_cited_lines() {
        let h = hist(vec![
            nemesis("pause", NemesisAction::Start),
            send(0, "a-0"),
            hw(0, 0),
        ]);
        let text = render(&check(&h), &h);
        assert!(text.contains("nemeses: pause x1"), "{text}");
        assert!(text.contains("no anomalies"), "{text}");

        let h = hist(vec![send(0, "a-0"), ack(0, "a-0", 0), hw(0, 0)]);
        let text = render(&check(&h), &h);
        assert!(
            text.contains("1 anomalies:\n- lost p0: value a-0"),
            "{text}"
        );
        let json = serde_json::to_string(&h[1].1).unwrap();
        assert!(text.contains(&format!("    2: {json}\n")), "{text}");
    }

    #[test]
    fn render_caps_the_anomalies_it_prints() {
        let mut ops = vec![hw(0, 0)];
        for i in 0..25 {
            let v = format!("a-{i}");
            ops.extend([send(0, &v), ack(0, &v, i)]);
        }
        let h = hist(ops);
        let report = check(&h);
        assert_eq!(report.anomalies.len(), 25);
        let text = render(&report, &h);
        assert_eq!(text.matches("\n- lost").count(), 20, "{text}");
        assert!(text.ends_with("... and 5 more\n"), "{text}");
    }

    #[test]
    fn process_crashed() {
        let a = only(
            vec![Op::ProcessExited {
                name: "b2".into(),
                status: "signal: 7 (SIGBUS)".into(),
            }],
            "process_crashed",
            &[1],
        );
        assert!(
            a.message.contains("b2") && a.message.contains("SIGBUS"),
            "{}",
            a.message
        );
    }

    fn by(process: &str, t: u64, op: Op) -> Entry {
        let process = process.to_owned();
        Entry { t, process, op }
    }

    fn healed() -> Op {
        Op::Nemesis {
            name: "majority-minority".into(),
            action: NemesisAction::Stop,
            detail: String::new(),
        }
    }

    fn stalled_of(entries: Vec<Entry>) -> Vec<Anomaly> {
        let history: Vec<(usize, Entry)> = (1..).zip(entries).collect();
        check(&history)
            .anomalies
            .into_iter()
            .filter(|a| a.kind == "stalled")
            .collect()
    }

    #[test]
    fn a_producer_never_acknowledged_after_the_last_heal_is_stalled() {
        let a = stalled_of(vec![
            by("kafka-p0", 1, send(0, "kafka-p0-0")),
            by("kafka-p0", 2, ack(0, "kafka-p0-0", 0)),
            by("grpc-p0", 3, send(0, "grpc-p0-0")),
            by("nemesis", 10, healed()),
            by("kafka-p0", 11, send(0, "kafka-p0-1")),
            by("grpc-p0", 12, ack(0, "grpc-p0-0", 1)),
            by("kafka-p0", 20, failed(0, "kafka-p0-1")),
            by("harness", 30, fin(0, 0, "kafka-p0-0")),
            by("harness", 30, fin(0, 1, "grpc-p0-0")),
        ]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(
            a[0].lines,
            [2, 4, 5],
            "last ack, the heal, the send after it"
        );
        assert!(
            a[0].message.contains("producer kafka-p0") && a[0].message.contains("before: line 2"),
            "{}",
            a[0].message
        );
    }

    #[test]
    fn a_group_that_reads_nothing_after_the_last_heal_is_stalled() {
        let stalled_group = vec![
            by("c0", 1, read(0, 0, "p-0")),
            by("c0", 2, commit("g", 0, 1)),
            by("nemesis", 10, healed()),
            by("c0", 11, commit("g", 0, 1)),
        ];
        let a = stalled_of(stalled_group.clone());
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(
            a[0].message.contains("consumer group g"),
            "{}",
            a[0].message
        );
        // Reading again is progress; so is a client idle after the heal.
        let mut read_again = stalled_group;
        read_again.push(by("c0", 12, read(0, 1, "p-1")));
        assert!(stalled_of(read_again).is_empty());
        assert!(
            stalled_of(vec![
                by("p", 1, send(0, "p-0")),
                by("nemesis", 10, healed()),
                by("p", 11, ack(0, "p-0", 0)),
            ])
            .is_empty(),
            "an acknowledgement after the heal of a send before it is progress"
        );
    }
}
