//! The current-leader hint of KIP-951: a Produce (v10+) or Fetch (v12+)
//! refused with NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names the
//! partition's leader and epoch as this broker last saw them, and the
//! response lists where those leaders are (v10+ / v16+), so a client
//! moves to the new leader without waiting for a Metadata round trip.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

use super::topics::client_brokers;
use crate::server::Context;

const NOT_LEADER_OR_FOLLOWER: i16 = ResponseError::NotLeaderOrFollower.code();
const FENCED_LEADER_EPOCH: i16 = ResponseError::FencedLeaderEpoch.code();

/// The hints of one response, and the brokers they name.
pub struct LeaderHints<'a> {
    ctx: &'a Context,
    leaders: BTreeSet<i32>,
}

/// A broker a hint names: id, host, port, rack.
pub type Endpoint = (i32, String, i32, Option<String>);

impl<'a> LeaderHints<'a> {
    pub fn new(ctx: &'a Context) -> Self {
        LeaderHints {
            ctx,
            leaders: BTreeSet::new(),
        }
    }

    /// `(leader id, leader epoch)` of `topic-partition` when `error_code`
    /// sends the client to another leader and a live one is known.
    pub fn hint(&mut self, error_code: i16, topic: &str, partition: i32) -> Option<(i32, i32)> {
        if error_code != NOT_LEADER_OR_FOLLOWER && error_code != FENCED_LEADER_EPOCH {
            return None;
        }
        let state = self
            .ctx
            .replicas
            .topic(topic)
            .ok()?
            .partition_state(u32::try_from(partition).ok()?)?;
        if state.leader < 0 {
            return None;
        }
        self.leaders.insert(state.leader);
        Some((state.leader, state.leader_epoch))
    }

    /// Where every hinted leader is, for the response's node endpoints.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        if self.leaders.is_empty() {
            return Vec::new();
        }
        client_brokers(self.ctx, |id| self.leaders.contains(&id))
            .into_iter()
            .filter(|(id, ..)| self.leaders.contains(&id.0))
            .map(|(id, host, port, rack)| (id.0, host, port, rack))
            .collect()
    }
}
