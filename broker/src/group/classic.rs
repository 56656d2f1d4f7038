//! Kafka's classic group protocol (JoinGroup / SyncGroup / Heartbeat /
//! LeaveGroup with client-side assignment), for one group, as Apache Kafka's
//! `GroupCoordinator` / `GroupMetadata` run it.
//!
//! Two parts:
//! - [`ClassicGroup`], the pure state machine: no I/O and no clock of its
//!   own (callers pass `now`), so every rule is unit-tested. Answers to
//!   requests that wait (a JoinGroup until the join phase completes, a
//!   follower's SyncGroup until the leader's) are not returned but queued as
//!   [`Reply`]s for whoever waits for them.
//! - [`Classic`], the waiting part: the group plus one oneshot sender per
//!   parked request, delivering the queued replies; and [`wait`], which parks
//!   a request until its reply comes, waking at the group's deadlines to
//!   complete a join phase whose rebalance timeout passed. The reaper
//!   (`GroupCoordinator::run_reaper`) calls [`ClassicGroup::tick`] too, for
//!   expired sessions and for deadlines nobody is waiting on.
//!
//! The states are Kafka's:
//! - `Empty`: no members (maybe committed offsets).
//! - `PreparingRebalance`: members must (re)join; JoinGroups park until
//!   every known member has joined, or the rebalance timeout (the longest
//!   of the members') passes and those that did not rejoin are removed. The
//!   first rebalance of an empty group waits `group.initial.rebalance.delay.ms`
//!   ([`INITIAL_REBALANCE_DELAY`]), extended while new members keep coming, so
//!   a fleet of consumers starting together does not rebalance once per member.
//! - `CompletingRebalance`: the generation is bumped and the join answers
//!   sent (the leader, the first member to join, gets every member's
//!   metadata); the leader's SyncGroup brings the assignments, followers'
//!   SyncGroups park until then.
//! - `Stable`: everyone has its assignment; heartbeats keep sessions alive.
//! - `Dead`: the group's state was dropped (deleted, or the claim lost).
//!
//! Not supported (each kept minimal on purpose): `group.max.size` (no limit),
//! Kafka's 5-minute join timeout for brand-new members (they wait like the
//! others), and persisting the group's membership — as with Runnel's own
//! groups, after a coordinator move members simply join again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::GroupEntry;
use super::join::{MAX_SESSION, MIN_SESSION};
use crate::{Error, Result};

/// Kafka's `group.initial.rebalance.delay.ms` default: how long the first
/// rebalance of an empty group waits for more members to join.
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::from_secs(3);

/// A JoinGroup, as the Kafka front end decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicJoin {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// `group.instance.id`: static membership (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    /// How long a rebalance may wait for this member to rejoin. JoinGroup
    /// v0 has none: zero means the session timeout, as in Kafka.
    pub rebalance_timeout: Duration,
    /// `consumer` for consumers; the group's first member sets it.
    pub protocol_type: String,
    /// Assignors the member supports, most preferred first, with the
    /// member's metadata (its subscription) for each.
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394: JoinGroup v4+ — a member without an id is given one with
    /// `MEMBER_ID_REQUIRED` and joins again with it.
    pub require_known_member_id: bool,
}

/// One member as the leader sees it in its JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicJoined {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member's metadata; only for the leader, empty for followers.
    pub members: Vec<ClassicMemberMetadata>,
    /// KIP-814: a static leader that rejoined without a rebalance learns it
    /// leads but must not compute a new assignment.
    pub skip_assignment: bool,
}

/// A SyncGroup, as the Kafka front end decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicSync {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation: i32,
    /// SyncGroup v5+: checked against the group's when given.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment, member id → bytes; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer: the member's assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicSynced {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

/// A group as Kafka's DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicDescription {
    pub group_id: String,
    /// Kafka's state names: "Empty", "PreparingRebalance",
    /// "CompletingRebalance", "Stable", "Dead".
    pub state: String,
    pub protocol_type: String,
    /// Only while `Stable`, as Kafka does; else empty.
    pub protocol_name: String,
    pub members: Vec<ClassicMemberDescription>,
}

/// A member as Kafka's DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the chosen protocol, and the assignment: only while
    /// `Stable`, as Kafka does; else empty.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group's state in Kafka's classic protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl ClassicState {
    /// Kafka's name, as DescribeGroups and ListGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// One member.
#[derive(Debug, Clone)]
pub struct ClassicMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// What the leader assigned it this generation.
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    /// Joined in this rebalance and waits for the JoinGroup answer.
    pub awaiting_join: bool,
    /// Sent SyncGroup and waits for the leader's.
    pub awaiting_sync: bool,
    /// Order of joining: a new leader is the earliest remaining member.
    seq: u64,
}

impl ClassicMember {
    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }

    fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// What a JoinGroup does next.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinStep {
    /// Parked: the answer comes as a [`Reply::Join`] for this member.
    Wait { member_id: String },
    /// Answered at once (a known member rejoining a settled group).
    Done(ClassicJoined),
}

/// What a SyncGroup does next.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncStep {
    /// Parked: the answer comes as a [`Reply::Sync`] for this member.
    Wait,
    Done(ClassicSynced),
}

/// An answer for a parked request.
#[derive(Debug)]
pub enum Reply {
    Join {
        member_id: String,
        result: Result<ClassicJoined>,
    },
    Sync {
        member_id: String,
        result: Result<ClassicSynced>,
    },
}

/// Kafka's `InitialDelayedJoin`: the first rebalance of an empty group.
#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    /// How much longer the delay may still be extended (the rebalance
    /// timeout minus what was waited).
    remaining: Duration,
    /// A member joined during the current delay: wait one more.
    new_member_added: bool,
}

/// One classic group.
#[derive(Debug)]
pub struct ClassicGroup {
    group_id: String,
    state: ClassicState,
    generation: i32,
    /// Set by the first member; kept when the group empties, as Kafka does
    /// (describing an empty consumer group still says `consumer`).
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, ClassicMember>,
    /// group.instance.id → member id.
    static_members: BTreeMap<String, String>,
    /// KIP-394: ids handed out with MEMBER_ID_REQUIRED, until when they
    /// may be used. A rebalance waits for them like for members.
    pending: BTreeMap<String, Instant>,
    /// Members sent a join answer that have not sent SyncGroup yet.
    pending_sync: BTreeSet<String>,
    /// PreparingRebalance: when the join phase completes at the latest.
    join_deadline: Option<Instant>,
    initial: Option<InitialDelay>,
    /// CompletingRebalance/Stable: when members still in `pending_sync`
    /// are removed (Kafka's pending-sync timeout: else a leader that never
    /// syncs would hold its followers forever).
    sync_deadline: Option<Instant>,
    /// `group.initial.rebalance.delay.ms`; shorter in tests.
    initial_delay: Duration,
    next_seq: u64,
    outbox: Vec<Reply>,
}

impl ClassicGroup {
    pub fn new(group_id: &str, initial_delay: Duration) -> Self {
        ClassicGroup {
            group_id: group_id.to_owned(),
            state: ClassicState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline: None,
            initial: None,
            sync_deadline: None,
            initial_delay,
            next_seq: 0,
            outbox: Vec::new(),
        }
    }

    pub fn state(&self) -> ClassicState {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn member(&self, member_id: &str) -> Option<&ClassicMember> {
        self.members.get(member_id)
    }

    /// Members in the order they joined.
    pub fn members(&self) -> Vec<&ClassicMember> {
        let mut members: Vec<&ClassicMember> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        members
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Answers for parked requests, to deliver.
    pub fn take_replies(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.outbox)
    }

    /// The next time [`tick`](Self::tick) has a deadline to act on (session
    /// expiry aside, which the reaper looks for).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.state == ClassicState::Dead {
            return None;
        }
        let join = self
            .join_deadline
            .filter(|_| self.state == ClassicState::PreparingRebalance);
        match (join, self.sync_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The longest rebalance timeout of the members: how long a join phase
    /// waits for them.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    // ------------------------------------------------------------ JoinGroup

    /// A JoinGroup. Errors are answers too: `MEMBER_ID_REQUIRED` carries the
    /// new member's id.
    pub fn join(&mut self, req: &ClassicJoin, now: Instant) -> Result<JoinStep> {
        self.check_alive()?;
        if !(MIN_SESSION..=MAX_SESSION).contains(&req.session_timeout) {
            return Err(Error::InvalidSessionTimeout {
                group: self.group_id.clone(),
                timeout_ms: req.session_timeout.as_millis() as u64,
                min_ms: MIN_SESSION.as_millis() as u64,
                max_ms: MAX_SESSION.as_millis() as u64,
            });
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(self.inconsistent(
                "the JoinGroup names no protocol type or no protocols (partition.assignment.strategy)"
                    .into(),
            ));
        }
        self.check_protocols(req)?;
        if req.member_id.is_empty() {
            self.join_new(req, now)
        } else {
            self.join_known(req, now)
        }
    }

    /// The member's protocol type must be the group's, and one of its
    /// protocols supported by every other member. Unlike Kafka, which
    /// counts the joining member's old protocols too, a member is not
    /// checked against itself: a lone member may change assignor.
    fn check_protocols(&self, req: &ClassicJoin) -> Result<()> {
        let itself = if req.member_id.is_empty() {
            req.group_instance_id
                .as_ref()
                .and_then(|i| self.static_members.get(i))
                .map(String::as_str)
        } else {
            Some(req.member_id.as_str())
        };
        let others: Vec<&ClassicMember> = self
            .members
            .values()
            .filter(|m| Some(m.member_id.as_str()) != itself)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        if let Some(t) = self
            .protocol_type
            .as_deref()
            .filter(|t| *t != req.protocol_type)
        {
            return Err(self.inconsistent(format!(
                "its members use protocol type {t:?}, this member {:?}",
                req.protocol_type
            )));
        }
        let shared = |p: &str| others.iter().all(|m| m.supports(p));
        if !req.protocols.iter().any(|(p, _)| shared(p)) {
            let common: Vec<&str> = others[0]
                .protocols
                .iter()
                .map(|(p, _)| p.as_str())
                .filter(|p| shared(p))
                .collect();
            let asked: Vec<&str> = req.protocols.iter().map(|(p, _)| p.as_str()).collect();
            return Err(self.inconsistent(format!(
                "none of this member's protocols {asked:?} is supported by every member (they \
                 share {common:?}); configure a partition.assignment.strategy they have in common"
            )));
        }
        Ok(())
    }

    fn join_new(&mut self, req: &ClassicJoin, now: Instant) -> Result<JoinStep> {
        let member_id = new_member_id(&req.client_id);
        if let Some(instance) = &req.group_instance_id {
            // Static members skip KIP-394: their instance id names them.
            if let Some(old) = self.static_members.get(instance).cloned() {
                return Ok(self.replace_static_member(&old, member_id, req, now));
            }
            return Ok(self.add_member_and_rebalance(member_id, req, now));
        }
        if req.require_known_member_id {
            self.pending
                .insert(member_id.clone(), now + req.session_timeout);
            return Err(Error::MemberIdRequired {
                group: self.group_id.clone(),
                member: member_id,
            });
        }
        Ok(self.add_member_and_rebalance(member_id, req, now))
    }

    fn join_known(&mut self, req: &ClassicJoin, now: Instant) -> Result<JoinStep> {
        let id = req.member_id.as_str();
        if self.pending.remove(id).is_some() {
            return Ok(self.add_member_and_rebalance(id.to_owned(), req, now));
        }
        self.check_fenced(req.group_instance_id.as_deref(), id)?;
        let leader = self.leader.as_deref() == Some(id);
        let Some(member) = self.members.get_mut(id) else {
            return Err(self.unknown(id));
        };
        member.last_heartbeat = now;
        let same = member.protocols == req.protocols;
        match self.state {
            ClassicState::PreparingRebalance => Ok(self.update_member_and_rebalance(id, req, now)),
            // It lost the join answer: give it again.
            ClassicState::CompletingRebalance if same => {
                Ok(JoinStep::Done(self.join_response(id, false)))
            }
            // A follower rejoining unchanged gets the current generation; a
            // leader rejoining means it wants a new assignment.
            ClassicState::Stable if same && !leader => {
                Ok(JoinStep::Done(self.join_response(id, false)))
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                Ok(self.update_member_and_rebalance(id, req, now))
            }
            ClassicState::Empty | ClassicState::Dead => Err(self.unknown(id)),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: &ClassicJoin,
        now: Instant,
    ) -> JoinStep {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        // Kafka extends only the very first rebalance of a new group.
        if self.state == ClassicState::PreparingRebalance
            && self.generation == 0
            && let Some(initial) = &mut self.initial
        {
            initial.new_member_added = true;
        }
        self.next_seq += 1;
        if let Some(instance) = &req.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            ClassicMember {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: req.session_timeout,
                rebalance_timeout: rebalance_timeout_of(req),
                protocol_type: req.protocol_type.clone(),
                protocols: req.protocols.clone(),
                assignment: Bytes::new(),
                last_heartbeat: now,
                awaiting_join: true,
                awaiting_sync: false,
                seq: self.next_seq,
            },
        );
        tracing::info!(group = %self.group_id, member = %member_id, "classic member joined");
        self.maybe_prepare_rebalance(now);
        self.try_complete_join(now);
        JoinStep::Wait { member_id }
    }

    fn update_member_and_rebalance(
        &mut self,
        id: &str,
        req: &ClassicJoin,
        now: Instant,
    ) -> JoinStep {
        let member = self.members.get_mut(id).expect("checked by the caller");
        member.protocols = req.protocols.clone();
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = rebalance_timeout_of(req);
        member.awaiting_join = true;
        member.last_heartbeat = now;
        self.maybe_prepare_rebalance(now);
        self.try_complete_join(now);
        JoinStep::Wait {
            member_id: id.to_owned(),
        }
    }

    /// A static member back with a new member id takes its old slot over
    /// (its assignment too); the old id is fenced. A `Stable` group does
    /// not rebalance if the member's protocols (names and metadata) are
    /// unchanged. Kafka rebalances only when the group's chosen protocol
    /// would change, so a restarted static member with a new subscription
    /// keeps its old assignment there; here a changed subscription gets a
    /// new one.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: &ClassicJoin,
        now: Instant,
    ) -> JoinStep {
        let instance = req.group_instance_id.clone().expect("static");
        let mut member = self
            .members
            .remove(old_id)
            .expect("static members are members");
        let same = member.protocols == req.protocols;
        let fenced = || Error::FencedInstanceId {
            group: self.group_id.clone(),
            instance: instance.clone(),
            member: old_id.to_owned(),
            current: new_id.clone(),
        };
        if member.awaiting_join {
            self.outbox.push(Reply::Join {
                member_id: old_id.to_owned(),
                result: Err(fenced()),
            });
        }
        if member.awaiting_sync {
            self.outbox.push(Reply::Sync {
                member_id: old_id.to_owned(),
                result: Err(fenced()),
            });
        }
        member.member_id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.protocols = req.protocols.clone();
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = rebalance_timeout_of(req);
        member.last_heartbeat = now;
        member.awaiting_join = false;
        member.awaiting_sync = false;
        self.members.insert(new_id.clone(), member);
        self.static_members.insert(instance.clone(), new_id.clone());
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        tracing::info!(group = %self.group_id, %instance, old = %old_id, new = %new_id,
            "static member rejoined");
        let park = |g: &mut Self| {
            g.members.get_mut(&new_id).expect("inserted").awaiting_join = true;
        };
        match self.state {
            ClassicState::Stable if same => {
                let leader = self.leader.as_deref() == Some(new_id.as_str());
                return JoinStep::Done(self.join_response(&new_id, leader));
            }
            // In CompletingRebalance the leader may be assigning to the old
            // id: start over, as Kafka does.
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                park(self);
                self.prepare_rebalance(now);
            }
            ClassicState::PreparingRebalance => {
                park(self);
                self.try_complete_join(now);
            }
            ClassicState::Empty | ClassicState::Dead => {
                park(self);
                self.maybe_prepare_rebalance(now);
            }
        }
        JoinStep::Wait { member_id: new_id }
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant) {
        if matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty
        ) {
            self.prepare_rebalance(now);
        }
    }

    /// Start a join phase: every member must rejoin.
    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == ClassicState::CompletingRebalance {
            // The assignment being made is void; followers waiting for it
            // must rejoin.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if m.awaiting_sync {
                    m.awaiting_sync = false;
                    self.outbox.push(Reply::Sync {
                        member_id: m.member_id.clone(),
                        result: Err(Error::RebalanceInProgress {
                            group: self.group_id.clone(),
                        }),
                    });
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        if self.state == ClassicState::Empty && !self.initial_delay.is_zero() {
            self.initial = Some(InitialDelay {
                remaining: self.rebalance_timeout().saturating_sub(self.initial_delay),
                new_member_added: false,
            });
            self.join_deadline = Some(now + self.initial_delay);
        } else {
            self.initial = None;
            self.join_deadline = Some(now + self.rebalance_timeout());
        }
        self.state = ClassicState::PreparingRebalance;
        tracing::info!(group = %self.group_id, generation = self.generation,
            members = self.members.len(), "classic group preparing to rebalance");
        self.try_complete_join(now);
    }

    /// Complete the join phase early once every member (and every KIP-394
    /// id handed out) has joined — but never during the initial delay,
    /// whose point is to wait.
    fn try_complete_join(&mut self, now: Instant) {
        if self.state == ClassicState::PreparingRebalance
            && self.initial.is_none()
            && self.pending.is_empty()
            && self.members.values().all(|m| m.awaiting_join)
        {
            self.complete_join(now);
        }
    }

    /// End the join phase: drop dynamic members that did not rejoin (static
    /// ones keep their slot until their session expires, as in Kafka), bump
    /// the generation, pick the protocol and answer every parked JoinGroup.
    /// Returns the members removed.
    fn complete_join(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            tracing::info!(group = %self.group_id, member = %id, "classic member did not rejoin in time");
            self.remove_member(id);
        }
        if !self.members.is_empty() {
            let leader_joined = self
                .leader
                .as_ref()
                .and_then(|l| self.members.get(l))
                .is_some_and(|m| m.awaiting_join);
            if !leader_joined {
                match self
                    .members
                    .values()
                    .filter(|m| m.awaiting_join)
                    .min_by_key(|m| m.seq)
                {
                    Some(m) => self.leader = Some(m.member_id.clone()),
                    None => {
                        // Only absent static members: wait another round;
                        // their sessions expire meanwhile.
                        self.initial = None;
                        self.join_deadline = Some(now + self.rebalance_timeout());
                        return gone;
                    }
                }
            }
        }
        self.generation += 1;
        self.initial = None;
        self.join_deadline = None;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.state = ClassicState::Empty;
            tracing::info!(group = %self.group_id, generation = self.generation, "classic group is empty");
            return gone;
        }
        self.protocol_name = self.select_protocol();
        self.state = ClassicState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let joined = self.join_response(&id, false);
            let m = self.members.get_mut(&id).expect("listed");
            m.last_heartbeat = now;
            if m.awaiting_join {
                m.awaiting_join = false;
                self.outbox.push(Reply::Join {
                    member_id: id.clone(),
                    result: Ok(joined),
                });
            }
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some(now + self.rebalance_timeout());
        tracing::info!(group = %self.group_id, generation = self.generation,
            members = self.members.len(), protocol = ?self.protocol_name,
            leader = ?self.leader, "classic group completed its join phase");
        gone
    }

    /// The protocol every member supports that most members prefer (each
    /// votes for its first supported one, as in Kafka); ties go to the
    /// leader's order of preference.
    fn select_protocol(&self) -> Option<String> {
        let first = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| self.members.values().all(|m| m.supports(p)))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((p, _)) = m
                .protocols
                .iter()
                .find(|(p, _)| candidates.contains(&p.as_str()))
            {
                *votes.entry(p.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for p in candidates {
            let n = votes.get(p).copied().unwrap_or(0);
            if best.is_none_or(|(_, most)| n > most) {
                best = Some((p, n));
            }
        }
        best.map(|(p, _)| p.to_owned())
    }

    fn join_response(&self, member_id: &str, skip_assignment: bool) -> ClassicJoined {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members()
                .into_iter()
                .map(|m| ClassicMemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(self.protocol_name.as_deref()),
                })
                .collect()
        } else {
            Vec::new()
        };
        ClassicJoined {
            generation: self.generation,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_owned(),
            members,
            skip_assignment,
        }
    }

    // ------------------------------------------------------------ SyncGroup

    /// A SyncGroup. The leader's brings every member's assignment and
    /// answers the parked followers (and itself) by [`Reply::Sync`].
    pub fn sync(&mut self, req: &ClassicSync, now: Instant) -> Result<SyncStep> {
        self.check_alive()?;
        let id = req.member_id.as_str();
        self.check_fenced(req.group_instance_id.as_deref(), id)?;
        self.check_member_generation(id, req.generation)?;
        if let Some(t) = req
            .protocol_type
            .as_deref()
            .filter(|t| Some(*t) != self.protocol_type.as_deref())
        {
            return Err(self.inconsistent(format!(
                "SyncGroup names protocol type {t:?}, the group uses {:?}",
                self.protocol_type.as_deref().unwrap_or_default()
            )));
        }
        if let Some(p) = req
            .protocol_name
            .as_deref()
            .filter(|p| Some(*p) != self.protocol_name.as_deref())
        {
            return Err(self.inconsistent(format!(
                "SyncGroup names protocol {p:?}, the group chose {:?}",
                self.protocol_name.as_deref().unwrap_or_default()
            )));
        }
        match self.state {
            ClassicState::Empty | ClassicState::Dead => Err(self.unknown(id)),
            ClassicState::PreparingRebalance => Err(Error::RebalanceInProgress {
                group: self.group_id.clone(),
            }),
            ClassicState::CompletingRebalance => {
                let m = self.members.get_mut(id).expect("checked");
                m.awaiting_sync = true;
                m.last_heartbeat = now;
                self.synced(id);
                if self.leader.as_deref() == Some(id) {
                    // Members the leader left out get an empty assignment;
                    // assignments to non-members are ignored (as in Kafka).
                    let mut given: HashMap<&str, &Bytes> = req
                        .assignments
                        .iter()
                        .map(|(m, a)| (m.as_str(), a))
                        .collect();
                    for m in self.members.values_mut() {
                        m.assignment = given
                            .remove(m.member_id.as_str())
                            .cloned()
                            .unwrap_or_default();
                        if m.awaiting_sync {
                            m.awaiting_sync = false;
                            self.outbox.push(Reply::Sync {
                                member_id: m.member_id.clone(),
                                result: Ok(ClassicSynced {
                                    protocol_type: self.protocol_type.clone(),
                                    protocol_name: self.protocol_name.clone(),
                                    assignment: m.assignment.clone(),
                                }),
                            });
                        }
                    }
                    self.state = ClassicState::Stable;
                    tracing::info!(group = %self.group_id, generation = self.generation,
                        "classic group is stable");
                }
                Ok(SyncStep::Wait)
            }
            ClassicState::Stable => {
                self.synced(id);
                let m = self.members.get_mut(id).expect("checked");
                m.last_heartbeat = now;
                Ok(SyncStep::Done(ClassicSynced {
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                }))
            }
        }
    }

    fn synced(&mut self, id: &str) {
        self.pending_sync.remove(id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    // ------------------------------------------------------------ Heartbeat

    /// A heartbeat refreshes the member's session; during a join phase it
    /// answers `REBALANCE_IN_PROGRESS` so the member rejoins. (While
    /// `CompletingRebalance` Kafka answers success: members heartbeat
    /// between their JoinGroup and SyncGroup.)
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<()> {
        self.check_alive()?;
        self.check_fenced(group_instance_id, member_id)?;
        self.check_member_generation(member_id, generation)?;
        let state = self.state;
        let m = self.members.get_mut(member_id).expect("checked");
        match state {
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                m.last_heartbeat = now;
                Ok(())
            }
            ClassicState::PreparingRebalance => {
                m.last_heartbeat = now;
                Err(Error::RebalanceInProgress {
                    group: self.group_id.clone(),
                })
            }
            ClassicState::Empty | ClassicState::Dead => Err(self.unknown(member_id)),
        }
    }

    // ------------------------------------------------------------ LeaveGroup

    /// Members leave (LeaveGroup v3+ names several, by member id and/or
    /// group.instance.id; v0-2 one member id). One result per member; any
    /// departure starts a rebalance. A static member named by member id
    /// alone is removed too, as in Kafka (its client sends no LeaveGroup
    /// on close; an admin removing it names its instance id).
    pub fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        now: Instant,
    ) -> Result<Vec<Result<()>>> {
        self.check_alive()?;
        Ok(members
            .iter()
            .map(|(member_id, instance)| self.leave_one(member_id, instance.as_deref(), now))
            .collect())
    }

    fn leave_one(&mut self, member_id: &str, instance: Option<&str>, now: Instant) -> Result<()> {
        self.check_fenced(instance, member_id)?;
        if instance.is_none() && self.pending.remove(member_id).is_some() {
            self.try_complete_join(now);
            return Ok(());
        }
        let id = instance
            .and_then(|i| self.static_members.get(i))
            .cloned()
            .unwrap_or_else(|| member_id.to_owned());
        if !self.members.contains_key(&id) {
            return Err(self.unknown(if id.is_empty() {
                instance.unwrap_or_default()
            } else {
                &id
            }));
        }
        tracing::info!(group = %self.group_id, member = %id, "classic member left the group");
        self.remove_member_and_update(&id, now);
        Ok(())
    }

    // ------------------------------------------------------------ time

    /// Act on what time brings: unused KIP-394 ids and silent members go
    /// (a member parked in JoinGroup or SyncGroup counts as heard from, as
    /// in Kafka), a join phase whose deadline passed completes, members
    /// that did not SyncGroup in time go. Returns the members removed.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        if self.state == ClassicState::Dead {
            return gone;
        }
        let before = self.pending.len();
        self.pending.retain(|_, until| *until > now);
        if self.pending.len() != before {
            self.try_complete_join(now);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                !m.awaiting_join
                    && !m.awaiting_sync
                    && now.duration_since(m.last_heartbeat) > m.session_timeout
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.group_id, member = %id, "classic member's session expired");
            self.remove_member_and_update(&id, now);
            gone.push(id);
        }
        if self.state == ClassicState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| now >= d)
        {
            match &mut self.initial {
                Some(initial) if initial.new_member_added && !initial.remaining.is_zero() => {
                    let delay = self.initial_delay.min(initial.remaining);
                    initial.remaining -= delay;
                    initial.new_member_added = false;
                    self.join_deadline = Some(now + delay);
                }
                _ => gone.extend(self.complete_join(now)),
            }
        }
        if matches!(
            self.state,
            ClassicState::CompletingRebalance | ClassicState::Stable
        ) && self.sync_deadline.is_some_and(|d| now >= d)
        {
            self.sync_deadline = None;
            let late: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
            if !late.is_empty() {
                for id in &late {
                    tracing::info!(group = %self.group_id, member = %id, "classic member did not SyncGroup in time");
                    self.remove_member(id);
                }
                gone.extend(late);
                self.prepare_rebalance(now);
            }
        }
        gone
    }

    /// The group's state is dropped: every parked request is told to find
    /// the coordinator again.
    pub fn kill(&mut self, reason: &str) {
        let gone = || Error::CoordinatorNotAvailable {
            group: self.group_id.clone(),
            reason: reason.to_owned(),
        };
        let mut replies = Vec::new();
        for m in self.members.values() {
            if m.awaiting_join {
                replies.push(Reply::Join {
                    member_id: m.member_id.clone(),
                    result: Err(gone()),
                });
            }
            if m.awaiting_sync {
                replies.push(Reply::Sync {
                    member_id: m.member_id.clone(),
                    result: Err(gone()),
                });
            }
        }
        self.outbox.extend(replies);
        self.members.clear();
        self.static_members.clear();
        self.pending.clear();
        self.pending_sync.clear();
        self.join_deadline = None;
        self.sync_deadline = None;
        self.initial = None;
        self.state = ClassicState::Dead;
    }

    // ------------------------------------------------------------ reads

    /// What Kafka's DescribeGroups shows.
    pub fn describe(&self) -> ClassicDescription {
        let stable = self.state == ClassicState::Stable;
        let protocol = self.protocol_name.as_deref().filter(|_| stable);
        ClassicDescription {
            group_id: self.group_id.clone(),
            state: self.state.name().to_owned(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol.unwrap_or_default().to_owned(),
            members: self
                .members()
                .into_iter()
                .map(|m| ClassicMemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(protocol),
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// May this committer commit (Kafka's rules)? A member commits with the
    /// group's current generation, also while members rejoin
    /// (PreparingRebalance: that is when consumers commit what they are
    /// giving up) but not while the assignment is being made
    /// (CompletingRebalance). A consumer outside the group (generation < 0,
    /// no member id) only while the group has no members — refused with
    /// NON_EMPTY_GROUP as for Runnel's groups (Kafka says UNKNOWN_MEMBER_ID).
    pub fn check_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
    ) -> Result<()> {
        if generation < 0 && self.members.is_empty() {
            return Ok(());
        }
        self.check_alive()?;
        if generation < 0 && member_id.is_empty() && group_instance_id.is_none() {
            return Err(Error::NonEmptyGroup {
                group: self.group_id.clone(),
                members: self.members.len(),
            });
        }
        self.check_fenced(group_instance_id, member_id)?;
        self.check_member_generation(member_id, generation)?;
        if self.state == ClassicState::CompletingRebalance {
            return Err(Error::RebalanceInProgress {
                group: self.group_id.clone(),
            });
        }
        Ok(())
    }

    // ------------------------------------------------------------ helpers

    /// Remove a member, answering its parked requests with
    /// UNKNOWN_MEMBER_ID; no state change.
    fn remove_member(&mut self, id: &str) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        if let Some(instance) = &m.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(id)
        {
            self.static_members.remove(instance);
        }
        if m.awaiting_join {
            self.outbox.push(Reply::Join {
                member_id: id.to_owned(),
                result: Err(self.unknown(id)),
            });
        }
        if m.awaiting_sync {
            self.outbox.push(Reply::Sync {
                member_id: id.to_owned(),
                result: Err(self.unknown(id)),
            });
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.seq)
                .map(|m| m.member_id.clone());
        }
    }

    /// Remove a member and rebalance the others.
    fn remove_member_and_update(&mut self, id: &str, now: Instant) {
        self.remove_member(id);
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => self.prepare_rebalance(now),
            ClassicState::PreparingRebalance => self.try_complete_join(now),
            ClassicState::Empty | ClassicState::Dead => {}
        }
    }

    fn check_alive(&self) -> Result<()> {
        if self.state == ClassicState::Dead {
            return Err(Error::CoordinatorNotAvailable {
                group: self.group_id.clone(),
                reason: "the group was deleted or this broker lost its claim on it".into(),
            });
        }
        Ok(())
    }

    /// Another member now holds this group.instance.id.
    fn check_fenced(&self, instance: Option<&str>, member_id: &str) -> Result<()> {
        let Some(instance) = instance else {
            return Ok(());
        };
        match self.static_members.get(instance) {
            Some(current) if !member_id.is_empty() && current != member_id => {
                Err(Error::FencedInstanceId {
                    group: self.group_id.clone(),
                    instance: instance.to_owned(),
                    member: member_id.to_owned(),
                    current: current.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    fn check_member_generation(&self, member_id: &str, generation: i32) -> Result<()> {
        if !self.members.contains_key(member_id) {
            return Err(self.unknown(member_id));
        }
        if generation != self.generation {
            return Err(Error::IllegalGeneration {
                group: self.group_id.clone(),
                member: member_id.to_owned(),
                generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    fn unknown(&self, member_id: &str) -> Error {
        Error::UnknownMemberId {
            group: self.group_id.clone(),
            member: member_id.to_owned(),
        }
    }

    fn inconsistent(&self, reason: String) -> Error {
        Error::InconsistentGroupProtocol {
            group: self.group_id.clone(),
            reason,
        }
    }
}

/// The member's rebalance timeout; JoinGroup v0 has none, and Kafka uses
/// the session timeout then. (A zero timeout would also end every join
/// phase at once.)
fn rebalance_timeout_of(req: &ClassicJoin) -> Duration {
    if req.rebalance_timeout.is_zero() {
        req.session_timeout
    } else {
        req.rebalance_timeout
    }
}

/// Kafka's member id: `{client_id}-{uuid}`.
fn new_member_id(client_id: &str) -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{client_id}-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A classic group and the requests parked on it.
#[derive(Debug)]
pub struct Classic {
    pub group: ClassicGroup,
    joins: HashMap<String, oneshot::Sender<Result<ClassicJoined>>>,
    syncs: HashMap<String, oneshot::Sender<Result<ClassicSynced>>>,
}

impl Classic {
    pub fn new(group_id: &str, initial_delay: Duration) -> Self {
        Classic {
            group: ClassicGroup::new(group_id, initial_delay),
            joins: HashMap::new(),
            syncs: HashMap::new(),
        }
    }

    /// Park a JoinGroup. A member's earlier parked JoinGroup is dropped (its
    /// client sent a new one, having given up on it).
    pub fn park_join(&mut self, member_id: &str) -> oneshot::Receiver<Result<ClassicJoined>> {
        let (tx, rx) = oneshot::channel();
        self.joins.insert(member_id.to_owned(), tx);
        rx
    }

    /// Park a SyncGroup (likewise replacing an earlier one).
    pub fn park_sync(&mut self, member_id: &str) -> oneshot::Receiver<Result<ClassicSynced>> {
        let (tx, rx) = oneshot::channel();
        self.syncs.insert(member_id.to_owned(), tx);
        rx
    }

    /// Hand the group's queued answers to the parked requests. Call after
    /// every change, under the same lock.
    pub fn deliver(&mut self) {
        for reply in self.group.take_replies() {
            // A send fails only if the request was given up (its client
            // disconnected): nothing to do, as in Kafka.
            match reply {
                Reply::Join { member_id, result } => {
                    if let Some(tx) = self.joins.remove(&member_id) {
                        let _ = tx.send(result);
                    }
                }
                Reply::Sync { member_id, result } => {
                    if let Some(tx) = self.syncs.remove(&member_id) {
                        let _ = tx.send(result);
                    }
                }
            }
        }
        if self.group.state() == ClassicState::Dead {
            self.joins.clear();
            self.syncs.clear();
        }
    }

    /// [`ClassicGroup::tick`], delivering what it answered.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let gone = self.group.tick(now);
        self.deliver();
        gone
    }
}

/// Wait for a parked request's answer, waking at the group's deadlines to
/// act on them (so a join phase completes on time even if the reaper is
/// slow or absent, and tests need no reaper).
pub async fn wait<T>(entry: &GroupEntry, mut rx: oneshot::Receiver<Result<T>>) -> Result<T> {
    loop {
        let deadline = entry.classic.lock().group.next_deadline();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // The answer first: a tick that just answered must not be
            // followed by another wait.
            biased;
            answer = &mut rx => {
                // The sender is dropped only when the member sent the same
                // request again, which the newer request answers.
                return answer.unwrap_or_else(|_| Err(Error::RebalanceInProgress {
                    group: entry.classic.lock().group.group_id.clone(),
                }));
            }
            () = timer => {
                entry.classic.lock().tick(Instant::now());
            }
        }
    }
}

#[cfg(test)]
pub(super) mod test_support {
    //! Shared by the classic-protocol tests.

    use std::sync::Arc;

    use super::*;
    use crate::meta::LeaseId;

    /// A group entry as the coordinator would hold it, without a store.
    pub fn entry(initial_delay: Duration) -> Arc<GroupEntry> {
        Arc::new(GroupEntry::new("g", LeaseId(1), 1, initial_delay))
    }

    /// A consumer's JoinGroup with the given protocols.
    pub fn join_req(member_id: &str, protocols: &[&str]) -> ClassicJoin {
        ClassicJoin {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("{member_id}:{p}"))))
                .collect(),
            require_known_member_id: false,
        }
    }

    pub fn sync_req(member_id: &str, generation: i32, assignments: &[(&str, &str)]) -> ClassicSync {
        ClassicSync {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            generation,
            protocol_type: Some("consumer".into()),
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn joined(replies: Vec<Reply>) -> Vec<(String, ClassicJoined)> {
        replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Join {
                    member_id,
                    result: Ok(j),
                } => Some((member_id, j)),
                _ => None,
            })
            .collect()
    }

    /// a and b join an empty group; the initial delay passes.
    fn two_members(now: Instant) -> (ClassicGroup, String, String) {
        let mut g = ClassicGroup::new("g", Duration::from_millis(100));
        let JoinStep::Wait { member_id: a } = g.join(&join_req("", &["range"]), now).unwrap()
        else {
            panic!("parks");
        };
        let JoinStep::Wait { member_id: b } = g
            .join(&join_req("", &["roundrobin", "range"]), now)
            .unwrap()
        else {
            panic!("parks");
        };
        assert_eq!(g.state(), ClassicState::PreparingRebalance);
        assert!(g.take_replies().is_empty(), "the initial delay waits");
        settle_initial(&mut g, now);
        (g, a, b)
    }

    /// Tick through the initial delay (100 ms, extended while members
    /// joined) until the join phase completes.
    fn settle_initial(g: &mut ClassicGroup, now: Instant) -> Instant {
        for k in 1..10 {
            let t = now + Duration::from_millis(100) * k;
            g.tick(t);
            if g.state() != ClassicState::PreparingRebalance {
                return t;
            }
        }
        panic!("the join phase did not complete");
    }

    #[test]
    fn the_first_member_leads_and_the_protocol_is_the_common_one() {
        let now = Instant::now();
        let (mut g, a, b) = two_members(now);
        assert_eq!(g.state(), ClassicState::CompletingRebalance);
        assert_eq!(g.generation(), 1);
        let answers = joined(g.take_replies());
        assert_eq!(answers.len(), 2);
        for (_, j) in &answers {
            assert_eq!(j.generation, 1);
            assert_eq!(j.leader, a);
            // b prefers roundrobin, but only range is common.
            assert_eq!(j.protocol_name.as_deref(), Some("range"));
        }
        let leader = &answers.iter().find(|(m, _)| *m == a).unwrap().1;
        let ids: Vec<&str> = leader
            .members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect();
        assert_eq!(ids, [a.as_str(), b.as_str()]);
        assert_eq!(leader.members[1].metadata, Bytes::from(":range"));
        assert!(
            answers
                .iter()
                .find(|(m, _)| *m == b)
                .unwrap()
                .1
                .members
                .is_empty()
        );
        assert!(
            a.starts_with("client-") && a.len() == "client-".len() + 36,
            "{a}"
        );
    }

    #[test]
    fn votes_pick_the_protocol_most_members_prefer() {
        let now = Instant::now();
        let mut g = ClassicGroup::new("g", Duration::from_millis(100));
        for p in [
            ["range", "sticky"],
            ["sticky", "range"],
            ["sticky", "range"],
        ] {
            g.join(&join_req("", &p), now).unwrap();
        }
        settle_initial(&mut g, now);
        assert_eq!(g.member_count(), 3);
        assert_eq!(g.protocol_name(), Some("sticky"));
    }

    #[test]
    fn inconsistent_protocols_are_refused_with_a_reason() {
        let now = Instant::now();
        let (mut g, _, _) = two_members(now);
        let err = g
            .join(&join_req("", &["cooperative-sticky"]), now)
            .unwrap_err();
        assert!(
            matches!(err, Error::InconsistentGroupProtocol { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("[\"range\"]"), "{err}");
        let mut other = join_req("", &["range"]);
        other.protocol_type = "connect".into();
        let err = g.join(&other, now).unwrap_err();
        assert!(err.to_string().contains("protocol type"), "{err}");
        let mut none = join_req("", &[]);
        none.protocols.clear();
        assert!(matches!(
            ClassicGroup::new("g", Duration::ZERO).join(&none, now),
            Err(Error::InconsistentGroupProtocol { .. })
        ));
    }

    #[test]
    fn sync_checks_generation_protocol_and_state() {
        let now = Instant::now();
        let (mut g, a, b) = two_members(now);
        g.take_replies();
        assert!(matches!(
            g.sync(&sync_req(&b, 0, &[]), now),
            Err(Error::IllegalGeneration { .. })
        ));
        let mut wrong = sync_req(&b, 1, &[]);
        wrong.protocol_name = Some("roundrobin".into());
        assert!(matches!(
            g.sync(&wrong, now),
            Err(Error::InconsistentGroupProtocol { .. })
        ));
        assert!(matches!(
            g.sync(&sync_req("ghost", 1, &[]), now),
            Err(Error::UnknownMemberId { .. })
        ));
        assert_eq!(g.sync(&sync_req(&b, 1, &[]), now).unwrap(), SyncStep::Wait);
        assert_eq!(
            g.sync(&sync_req(&a, 1, &[(&a, "A"), (&b, "B")]), now)
                .unwrap(),
            SyncStep::Wait
        );
        assert_eq!(g.state(), ClassicState::Stable);
        let mut got: Vec<(String, Bytes)> = g
            .take_replies()
            .into_iter()
            .map(|r| match r {
                Reply::Sync {
                    member_id,
                    result: Ok(s),
                } => (member_id, s.assignment),
                other => panic!("{other:?}"),
            })
            .collect();
        got.sort();
        let mut want = vec![(a.clone(), Bytes::from("A")), (b.clone(), Bytes::from("B"))];
        want.sort();
        assert_eq!(got, want);
        // A new member: the join phase refuses SyncGroup.
        g.join(&join_req("", &["range"]), now).unwrap();
        assert!(matches!(
            g.sync(&sync_req(&b, 1, &[]), now),
            Err(Error::RebalanceInProgress { .. })
        ));
    }

    #[test]
    fn a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
        let now = Instant::now();
        let mut g = ClassicGroup::new("g", Duration::from_millis(100));
        // Sessions outlast the rebalance timeout: only the sync deadline
        // can remove a.
        let req = |protocols: &[&str]| ClassicJoin {
            session_timeout: Duration::from_secs(60),
            rebalance_timeout: Duration::from_secs(5),
            ..join_req("", protocols)
        };
        let JoinStep::Wait { member_id: a } = g.join(&req(&["range"]), now).unwrap() else {
            panic!("parks");
        };
        let JoinStep::Wait { member_id: b } = g.join(&req(&["roundrobin", "range"]), now).unwrap()
        else {
            panic!("parks");
        };
        let done = settle_initial(&mut g, now);
        assert_eq!(g.state(), ClassicState::CompletingRebalance);
        g.take_replies();
        g.sync(&sync_req(&b, 1, &[]), done).unwrap();
        let rebalance = Duration::from_secs(5);
        assert!(
            g.tick(done + rebalance - Duration::from_millis(1))
                .is_empty()
        );
        let later = done + rebalance;
        let gone = g.tick(later);
        assert_eq!(gone, vec![a.clone()]);
        assert_eq!(g.leader(), Some(b.as_str()));
        // b's parked SyncGroup is told to rejoin; b rejoins alone.
        let replies = g.take_replies();
        assert!(
            matches!(
                &replies[..],
                [Reply::Sync {
                    result: Err(Error::RebalanceInProgress { .. }),
                    ..
                }]
            ),
            "{replies:?}"
        );
        g.join(&join_req(&b, &["roundrobin", "range"]), later)
            .unwrap();
        assert_eq!(g.state(), ClassicState::CompletingRebalance);
        assert_eq!(g.generation(), 2);
        // Alone now, b's first choice wins.
        assert_eq!(g.protocol_name(), Some("roundrobin"));
    }

    #[test]
    fn the_initial_delay_is_extended_while_members_keep_joining() {
        let now = Instant::now();
        let delay = Duration::from_millis(100);
        let mut g = ClassicGroup::new("g", delay);
        g.join(&join_req("", &["range"]), now).unwrap();
        g.tick(now + delay / 2);
        g.join(&join_req("", &["range"]), now + delay / 2).unwrap();
        g.tick(now + delay);
        assert_eq!(g.state(), ClassicState::PreparingRebalance, "extended");
        g.tick(now + delay * 2);
        assert_eq!(g.state(), ClassicState::CompletingRebalance);
        assert_eq!(g.member_count(), 2);
    }

    #[test]
    fn kip_394_ids_must_be_used_and_block_early_completion_until_they_expire() {
        let now = Instant::now();
        let mut g = ClassicGroup::new("g", Duration::ZERO);
        let mut req = join_req("", &["range"]);
        req.require_known_member_id = true;
        let Err(Error::MemberIdRequired { member, .. }) = g.join(&req, now) else {
            panic!("member id required");
        };
        assert_eq!(g.member_count(), 0);
        // Not a member yet.
        assert!(matches!(
            g.heartbeat(&member, None, 0, now),
            Err(Error::UnknownMemberId { .. })
        ));
        // A second id is handed out and never used: the first's join waits
        // for it (it may be a member on its way) until its session passes.
        let Err(Error::MemberIdRequired { .. }) = g.join(&req, now) else {
            panic!("member id required");
        };
        let again = ClassicJoin {
            member_id: member.clone(),
            ..req.clone()
        };
        assert_eq!(
            g.join(&again, now).unwrap(),
            JoinStep::Wait {
                member_id: member.clone()
            }
        );
        assert_eq!(g.state(), ClassicState::PreparingRebalance);
        g.tick(now + Duration::from_secs(11));
        assert_eq!(g.state(), ClassicState::CompletingRebalance);
        assert_eq!(joined(g.take_replies())[0].1.leader, member);
    }
}
