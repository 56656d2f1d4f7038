//! Incremental fetch sessions (KIP-227): the broker remembers which
//! partitions a consumer fetches, so each following request names only
//! what changed (a new fetch offset, an added or forgotten partition) and
//! each answer carries only partitions with news (records, a moved high
//! watermark or log start offset, an error). With hundreds of partitions
//! this is most of a fetch's bytes.
//!
//! Sessions belong to the connection that made them: a client whose
//! connection drops starts over with a full fetch, which Kafka's clients
//! do anyway. A few per connection are kept (clients use one per broker);
//! making another evicts the least recently used, and a request naming an
//! evicted session gets FETCH_SESSION_ID_NOT_FOUND, upon which clients
//! open a new one.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use uuid::Uuid;

use super::topics::topic_name;

/// Sessions kept per connection.
const MAX_SESSIONS: usize = 4;

pub const FETCH_SESSION_ID_NOT_FOUND: i16 = ResponseError::FetchSessionIdNotFound.code();
pub const INVALID_FETCH_SESSION_EPOCH: i16 = ResponseError::InvalidFetchSessionEpoch.code();

/// A session-less full fetch (session epoch -1).
const FINAL_EPOCH: i32 = -1;
/// The request that opens a session.
const INITIAL_EPOCH: i32 = 0;

/// A partition as sessions key it: by topic id from v13, else by name
/// (the other part is left empty).
type Key = (Uuid, String, i32);

#[derive(Debug)]
struct SessionPartition {
    /// The partition as the client last sent it (offset, max bytes,
    /// epochs).
    fetch: FetchPartition,
    /// What the client was last told: (high watermark, log start offset).
    sent: Option<(i64, i64)>,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeMap<Key, SessionPartition>,
    /// For least-recently-used eviction.
    last_used: u64,
}

/// One connection's fetch sessions.
#[derive(Debug, Default)]
pub struct FetchSessions {
    sessions: BTreeMap<i32, Session>,
    clock: u64,
}

/// What a request does with sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No session: answer in full, session id 0.
    Sessionless,
    /// A new session: answer in full, with this id.
    Full(i32),
    /// An existing session: answer with changes only.
    Incremental(i32),
}

fn key(version: i16, topic_id: Uuid, name: &str, partition: i32) -> Key {
    if version >= 13 {
        (topic_id, String::new(), partition)
    } else {
        (Uuid::nil(), name.to_owned(), partition)
    }
}

impl FetchSessions {
    /// Resolve a request against the sessions: the topics to read (the
    /// whole session for an incremental fetch) and how to answer, or the
    /// error code that answers the whole request.
    pub fn begin(
        &mut self,
        version: i16,
        session_id: i32,
        epoch: i32,
        topics: Vec<FetchTopic>,
        forgotten: &[ForgottenTopic],
    ) -> Result<(Vec<FetchTopic>, Mode), i16> {
        self.clock += 1;
        match epoch {
            FINAL_EPOCH => {
                self.sessions.remove(&session_id);
                Ok((topics, Mode::Sessionless))
            }
            INITIAL_EPOCH => {
                self.sessions.remove(&session_id);
                if self.sessions.len() >= MAX_SESSIONS
                    && let Some(oldest) = self
                        .sessions
                        .iter()
                        .min_by_key(|(_, s)| s.last_used)
                        .map(|(id, _)| *id)
                {
                    self.sessions.remove(&oldest);
                }
                let id = self.new_id();
                let mut session = Session {
                    next_epoch: 1,
                    partitions: BTreeMap::new(),
                    last_used: self.clock,
                };
                session.update(version, &topics);
                self.sessions.insert(id, session);
                Ok((topics, Mode::Full(id)))
            }
            _ => {
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    return Err(FETCH_SESSION_ID_NOT_FOUND);
                };
                if epoch != session.next_epoch {
                    return Err(INVALID_FETCH_SESSION_EPOCH);
                }
                session.last_used = self.clock;
                // Epochs wrap from i32::MAX to 1 (0 and -1 are special).
                session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
                for f in forgotten {
                    for &p in &f.partitions {
                        session
                            .partitions
                            .remove(&key(version, f.topic_id, &f.topic.0, p));
                    }
                }
                session.update(version, &topics);
                Ok((session.topics(), Mode::Incremental(session_id)))
            }
        }
    }

    /// Finish a request's answer: for a session, remember what the client
    /// was told; for an incremental fetch, leave out
    /// the partitions with nothing new.
    pub fn finish(
        &mut self,
        version: i16,
        mode: Mode,
        responses: &mut Vec<FetchableTopicResponse>,
    ) {
        let (Mode::Full(id) | Mode::Incremental(id)) = mode else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        for t in responses.iter_mut() {
            t.partitions.retain(|p| {
                let Some(known) = session.partitions.get_mut(&key(
                    version,
                    t.topic_id,
                    &t.topic.0,
                    p.partition_index,
                )) else {
                    return true;
                };
                let now = (p.high_watermark, p.log_start_offset);
                let news = p.error_code != 0
                    || p.records.as_ref().is_some_and(|r| !r.is_empty())
                    || known.sent != Some(now);
                known.sent = Some(now);
                news || mode != Mode::Incremental(id)
            });
        }
        if matches!(mode, Mode::Incremental(_)) {
            responses.retain(|t| !t.partitions.is_empty());
        }
    }

    fn new_id(&self) -> i32 {
        loop {
            let id = rand::random_range(1..i32::MAX);
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

impl Session {
    /// Add or update the partitions a request names.
    fn update(&mut self, version: i16, topics: &[FetchTopic]) {
        for t in topics {
            for p in &t.partitions {
                let k = key(version, t.topic_id, &t.topic.0, p.partition);
                let entry = self
                    .partitions
                    .entry(k)
                    .or_insert_with(|| SessionPartition {
                        fetch: p.clone(),
                        sent: None,
                    });
                entry.fetch = p.clone();
            }
        }
    }

    /// Every partition of the session, as request topics.
    fn topics(&self) -> Vec<FetchTopic> {
        let mut out: Vec<FetchTopic> = Vec::new();
        for ((id, name, _), p) in &self.partitions {
            match out.last_mut() {
                Some(t) if t.topic_id == *id && *t.topic.0 == **name => {
                    t.partitions.push(p.fetch.clone());
                }
                _ => out.push(
                    FetchTopic::default()
                        .with_topic_id(*id)
                        .with_topic(topic_name(name))
                        .with_partitions(vec![p.fetch.clone()]),
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::PartitionData;

    use super::*;

    fn topic(name: &str, parts: &[(i32, i64)]) -> FetchTopic {
        FetchTopic::default()
            .with_topic(topic_name(name))
            .with_partitions(
                parts
                    .iter()
                    .map(|&(p, offset)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1024)
                    })
                    .collect(),
            )
    }

    fn answer(name: &str, parts: &[(i32, i64, usize)]) -> Vec<FetchableTopicResponse> {
        vec![
            FetchableTopicResponse::default()
                .with_topic(topic_name(name))
                .with_partitions(
                    parts
                        .iter()
                        .map(|&(p, hw, bytes)| {
                            PartitionData::default()
                                .with_partition_index(p)
                                .with_high_watermark(hw)
                                .with_records(Some(Bytes::from(vec![0u8; bytes])))
                        })
                        .collect(),
                ),
        ]
    }

    fn offsets(topics: &[FetchTopic]) -> Vec<(i32, i64)> {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (p.partition, p.fetch_offset)))
            .collect()
    }

    #[test]
    fn incremental_fetches_read_the_whole_session_and_answer_only_news() {
        let mut s = FetchSessions::default();
        let (read, mode) = s
            .begin(12, 0, 0, vec![topic("t", &[(0, 0), (1, 0), (2, 0)])], &[])
            .unwrap();
        let Mode::Full(id) = mode else {
            panic!("{mode:?}")
        };
        assert_eq!(offsets(&read).len(), 3);
        let mut full = answer("t", &[(0, 5, 100), (1, 0, 0), (2, 0, 0)]);
        s.finish(12, mode, &mut full);
        assert_eq!(
            full[0].partitions.len(),
            3,
            "a full answer keeps everything"
        );

        // Epoch 1 names only partition 0's new offset: all three are read.
        let (read, mode) = s
            .begin(12, id, 1, vec![topic("t", &[(0, 5)])], &[])
            .unwrap();
        assert_eq!(mode, Mode::Incremental(id));
        assert_eq!(offsets(&read), vec![(0, 5), (1, 0), (2, 0)]);
        // Only partition 2 has news (records); 0 and 1 are unchanged.
        let mut inc = answer("t", &[(0, 5, 0), (1, 0, 0), (2, 3, 60)]);
        s.finish(12, mode, &mut inc);
        let left: Vec<i32> = inc[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(left, vec![2]);

        // A moved high watermark alone is news; nothing new drops the topic.
        let (_, mode) = s.begin(12, id, 2, vec![], &[]).unwrap();
        let mut inc = answer("t", &[(0, 7, 0), (1, 0, 0), (2, 3, 0)]);
        s.finish(12, mode, &mut inc);
        assert_eq!(inc[0].partitions.len(), 1);
        let (_, mode) = s.begin(12, id, 3, vec![], &[]).unwrap();
        let mut inc = answer("t", &[(0, 7, 0), (1, 0, 0), (2, 3, 0)]);
        s.finish(12, mode, &mut inc);
        assert!(inc.is_empty());

        // Forgetting a partition takes it out of the reads.
        let forget = ForgottenTopic::default()
            .with_topic(topic_name("t"))
            .with_partitions(vec![1]);
        let (read, _) = s.begin(12, id, 4, vec![], &[forget]).unwrap();
        assert_eq!(offsets(&read), vec![(0, 5), (2, 0)]);
    }

    #[test]
    fn wrong_epochs_and_unknown_sessions_are_refused() {
        let mut s = FetchSessions::default();
        let (_, mode) = s.begin(12, 0, 0, vec![topic("t", &[(0, 0)])], &[]).unwrap();
        let Mode::Full(id) = mode else { panic!() };
        s.finish(12, mode, &mut answer("t", &[(0, 0, 0)]));
        assert_eq!(
            s.begin(12, id, 5, vec![], &[]).unwrap_err(),
            INVALID_FETCH_SESSION_EPOCH
        );
        assert_eq!(
            s.begin(12, id.wrapping_add(1), 1, vec![], &[]).unwrap_err(),
            FETCH_SESSION_ID_NOT_FOUND
        );
        // The final epoch closes it.
        let (_, mode) = s.begin(12, id, -1, vec![], &[]).unwrap();
        assert_eq!(mode, Mode::Sessionless);
        assert_eq!(
            s.begin(12, id, 1, vec![], &[]).unwrap_err(),
            FETCH_SESSION_ID_NOT_FOUND
        );
    }

    #[test]
    fn the_least_recently_used_session_is_evicted() {
        let mut s = FetchSessions::default();
        let ids: Vec<i32> = (0..=MAX_SESSIONS)
            .map(
                |_| match s.begin(12, 0, 0, vec![topic("t", &[(0, 0)])], &[]) {
                    Ok((_, Mode::Full(id))) => id,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(s.sessions.len(), MAX_SESSIONS);
        assert!(!s.sessions.contains_key(&ids[0]));
        assert!(s.sessions.contains_key(&ids[MAX_SESSIONS]));
    }
}
