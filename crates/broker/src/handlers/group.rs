//! The group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete, ListGroups,
//! DescribeGroups and DeleteGroups. They translate between the wire
//! versions and the coordinator's plain requests
//! (`crate::group::state`).

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::{info, warn};

use super::ConnContext;
use crate::broker::Broker;
use crate::group::records::STRING_BYTES_MAX;
use crate::group::state::{
    CommitPartition, CommitRequest, GroupState, JoinRequest, JoinResult, SyncRequest, SyncResult,
};
use crate::util::sb;

/// DescribeGroups' "authorized operations not requested" value.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// (partition, error) rows of one topic.
type PartitionErrors = Vec<(i32, Option<ResponseError>)>;

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

fn opt_string(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// Whether every string fits a `__consumer_offsets` record (int16
/// lengths). Flexible request versions can carry longer ones; they are
/// refused before the coordinator sees them.
fn fits(strings: &[&str]) -> bool {
    strings.iter().all(|s| s.len() <= STRING_BYTES_MAX)
}

/// The client id as member ids are built from it (`<client id>-<uuid>`),
/// shortened so the member id fits a record.
fn member_id_client_id(client_id: &str) -> String {
    let max = STRING_BYTES_MAX - 40;
    if client_id.len() <= max {
        return client_id.to_string();
    }
    let mut end = max;
    while !client_id.is_char_boundary(end) {
        end -= 1;
    }
    client_id[..end].to_string()
}

/// How Kafka writes a client's address in group descriptions.
fn client_host(ctx: &ConnContext) -> String {
    format!("/{}", ctx.peer.ip())
}

// ---- JoinGroup / SyncGroup / Heartbeat / LeaveGroup ----------------------

pub async fn join_group(
    broker: &Broker,
    ctx: &ConnContext,
    client_id: &str,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let member_id = req.member_id.to_string();
    let mut strings = vec![
        req.member_id.as_str(),
        req.protocol_type.as_str(),
        req.group_instance_id.as_deref().unwrap_or(""),
    ];
    strings.extend(req.protocols.iter().map(|p| p.name.as_str()));
    let refused = if !fits(&[req.group_id.as_str()]) {
        Some(ResponseError::InvalidGroupId)
    } else if !fits(&strings) {
        Some(ResponseError::InvalidRequest)
    } else {
        None
    };
    if let Some(e) = refused {
        return JoinGroupResponse::default()
            .with_error_code(e.code())
            .with_generation_id(-1)
            .with_member_id(req.member_id)
            .with_protocol_name((version < 7).then(StrBytes::default));
    }
    let join = JoinRequest {
        group_id: req.group_id.to_string(),
        member_id: member_id.clone(),
        group_instance_id: opt_string(&req.group_instance_id),
        session_timeout_ms: req.session_timeout_ms,
        // JoinGroup v0 has no rebalance timeout: the session timeout is it.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        client_id: member_id_client_id(client_id),
        client_host: client_host(ctx),
        require_known_member_id: version >= 4 && req.group_instance_id.is_none(),
        supports_skip_assignment: version >= 9,
    };
    if let Some(reason) = &req.reason {
        info!(group = %join.group_id, member = %member_id, "join: {}", reason.as_str());
    }
    let rx = broker.groups.join(&broker.replicas, join);
    let result = rx.await.unwrap_or_else(|_| JoinResult {
        error: Some(ResponseError::CoordinatorNotAvailable),
        generation_id: -1,
        protocol_type: None,
        protocol_name: None,
        leader: String::new(),
        member_id: member_id.clone(),
        members: Vec::new(),
        skip_assignment: false,
    });
    let mut resp = JoinGroupResponse::default()
        .with_error_code(code(result.error))
        .with_generation_id(result.generation_id)
        .with_protocol_type(result.protocol_type.map(sb))
        .with_protocol_name(result.protocol_name.map(sb))
        .with_leader(sb(result.leader))
        .with_skip_assignment(result.skip_assignment)
        .with_member_id(sb(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(sb))
                        .with_metadata(m.metadata)
                })
                .collect(),
        );
    if version < 7 && resp.protocol_name.is_none() {
        // Before v7 the protocol name is not nullable.
        resp.protocol_name = Some(StrBytes::default());
    }
    resp
}

pub async fn sync_group(broker: &Broker, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let sync = SyncRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        generation_id: req.generation_id,
        group_instance_id: opt_string(&req.group_instance_id),
        protocol_type: if version >= 5 {
            opt_string(&req.protocol_type)
        } else {
            None
        },
        protocol_name: if version >= 5 {
            opt_string(&req.protocol_name)
        } else {
            None
        },
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let rx = broker.groups.sync(&broker.replicas, sync);
    let result = rx.await.unwrap_or_else(|_| SyncResult {
        error: Some(ResponseError::CoordinatorNotAvailable),
        protocol_type: None,
        protocol_name: None,
        assignment: bytes::Bytes::new(),
    });
    SyncGroupResponse::default()
        .with_error_code(code(result.error))
        .with_protocol_type(result.protocol_type.map(sb))
        .with_protocol_name(result.protocol_name.map(sb))
        .with_assignment(result.assignment)
}

pub fn heartbeat(broker: &Broker, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance = opt_string(&req.group_instance_id);
    let result = broker.groups.with_core(&broker.replicas, |c, _| {
        c.heartbeat(
            req.group_id.as_str(),
            req.member_id.as_str(),
            &instance,
            req.generation_id,
            crate::util::now_ms(),
        )
    });
    HeartbeatResponse::default().with_error_code(code(result.err()))
}

pub fn leave_group(broker: &Broker, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt_string(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    for m in &req.members {
        if let Some(reason) = &m.reason {
            info!(group = %req.group_id.as_str(), member = %m.member_id.as_str(), "leave: {}", reason.as_str());
        }
    }
    let group_id = req.group_id.to_string();
    let outcome = broker.groups.with_outputs(&broker.replicas, |c, log| {
        match c.leave(&group_id, &members, crate::util::now_ms(), log) {
            Ok((results, out)) => (Ok(results), out),
            Err(e) => (Err(e), Vec::new()),
        }
    });
    match outcome {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(results) if version < 3 => {
            LeaveGroupResponse::default().with_error_code(code(results.first().copied().flatten()))
        }
        Ok(results) => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results)
                .map(|((id, instance), e)| {
                    MemberResponse::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(instance.map(sb))
                        .with_error_code(code(e))
                })
                .collect(),
        ),
    }
}

// ---- Offsets -------------------------------------------------------------

pub fn offset_commit(
    broker: &Broker,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let respond = |plan| {
        OffsetCommitResponse::default().with_topics(response_topics(
            plan,
            |p, e| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p)
                    .with_error_code(code(e))
            },
            |name, partitions| {
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            },
        ))
    };
    // Partitions of unknown topics are answered here; the rest go to the
    // coordinator in request order.
    let offsets = req.topics.iter().map(|t| {
        let partitions = t.partitions.iter().map(|p| OffsetToCommit {
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: if version >= 6 {
                p.committed_leader_epoch
            } else {
                -1
            },
            metadata: &p.committed_metadata,
        });
        (&t.name, partitions)
    });
    let (plan, partitions) = match plan_commit(broker, req.group_id.as_str(), offsets) {
        Ok(planned) => planned,
        Err(refused) => return respond(refused),
    };
    let commit = CommitRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        generation_id: req.generation_id_or_member_epoch,
        group_instance_id: opt_string(&req.group_instance_id),
        retention_time_ms: if (2..=4).contains(&version) {
            req.retention_time_ms
        } else {
            -1
        },
        partitions,
    };
    let outcome = broker.groups.with_core(&broker.replicas, |c, log| {
        if commit.partitions.is_empty() {
            // Still validate the group so errors are reported as Kafka does.
            return c.check_coordinator(&commit.group_id).map(|()| Vec::new());
        }
        c.commit_offsets(&commit, crate::util::now_ms(), log)
    });
    respond(with_coordinator_results(plan, &outcome))
}

/// One partition of an OffsetCommit or a TxnOffsetCommit request.
struct OffsetToCommit<'a> {
    partition: i32,
    offset: i64,
    /// -1 in request versions without it.
    leader_epoch: i32,
    metadata: &'a Option<StrBytes>,
}

/// A commit's rows, one per partition by topic, in request order.
type CommitPlan = Vec<(TopicName, PartitionErrors)>;

/// Splits a commit of `topics` for `group_id` into a plan of rows, with
/// the error of each partition answered here (see [`answered_here`]) and
/// `None` for the others, and the partitions that go to the coordinator,
/// in request order. `Err` has every partition answered INVALID_GROUP_ID:
/// the group id would not fit the offset records' keys.
fn plan_commit<'a, P>(
    broker: &Broker,
    group_id: &str,
    topics: impl Iterator<Item = (&'a TopicName, P)>,
) -> Result<(CommitPlan, Vec<CommitPartition>), CommitPlan>
where
    P: Iterator<Item = OffsetToCommit<'a>>,
{
    if !fits(&[group_id]) {
        return Err(topics
            .map(|(name, offsets)| {
                let rows = offsets
                    .map(|o| (o.partition, Some(ResponseError::InvalidGroupId)))
                    .collect();
                (name.clone(), rows)
            })
            .collect());
    }
    let image = broker.image();
    let mut plan = Vec::new();
    let mut partitions = Vec::new();
    for (name, offsets) in topics {
        let topic = image.topic(name.as_str());
        let mut rows = Vec::new();
        for o in offsets {
            let known = topic.is_some_and(|ti| ti.partitions.contains_key(&o.partition));
            let error = answered_here(known, o.metadata);
            if error.is_none() {
                partitions.push(CommitPartition {
                    topic: name.to_string(),
                    partition: o.partition,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: opt_string(o.metadata),
                });
            }
            rows.push((o.partition, error));
        }
        plan.push((name.clone(), rows));
    }
    Ok((plan, partitions))
}

/// The response topics of `plan`: `partition` makes each row's entry,
/// `topic` each topic's.
fn response_topics<T, P>(
    plan: CommitPlan,
    partition: impl Fn(i32, Option<ResponseError>) -> P,
    topic: impl Fn(TopicName, Vec<P>) -> T,
) -> Vec<T> {
    plan.into_iter()
        .map(|(name, rows)| {
            topic(
                name,
                rows.into_iter().map(|(p, e)| partition(p, e)).collect(),
            )
        })
        .collect()
}

/// The error an offset commit's partition is answered with before the
/// coordinator sees it: UNKNOWN_TOPIC_OR_PARTITION for one the metadata
/// does not have, OFFSET_METADATA_TOO_LARGE for metadata that would not fit
/// an offset record; `None` for one the coordinator answers.
fn answered_here(known: bool, metadata: &Option<StrBytes>) -> Option<ResponseError> {
    if !known {
        Some(ResponseError::UnknownTopicOrPartition)
    } else if metadata.as_ref().map_or(0, |m| m.len()) > STRING_BYTES_MAX {
        Some(ResponseError::OffsetMetadataTooLarge)
    } else {
        None
    }
}

/// `plan` with its rows answered by the coordinator (`None`) filled in:
/// with its results in request order, or with its error when it refused
/// the whole commit.
fn with_coordinator_results(
    plan: CommitPlan,
    outcome: &Result<Vec<Option<ResponseError>>, ResponseError>,
) -> CommitPlan {
    let mut results = outcome.as_deref().unwrap_or_default().iter().copied();
    plan.into_iter()
        .map(|(name, rows)| {
            let rows = rows
                .into_iter()
                .map(|(p, local)| {
                    let e = match (local, outcome) {
                        (Some(e), _) => Some(e),
                        (None, Err(e)) => Some(*e),
                        (None, Ok(_)) => results.next().flatten(),
                    };
                    (p, e)
                })
                .collect();
            (name, rows)
        })
        .collect()
}

/// One group's offsets: (topics, group error). With `require_stable`
/// (v7+, KIP-447), a partition with a pending transactional offset is
/// answered UNSTABLE_OFFSET_COMMIT with offset -1, so the consumer retries
/// rather than start from an offset the transaction may replace.
fn fetch_group_offsets(
    broker: &Broker,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
    version: i16,
) -> (
    Vec<(String, Vec<OffsetFetchResponsePartition>)>,
    Option<ResponseError>,
) {
    let wanted: Option<Vec<(String, i32)>> = topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect()
    });
    let fetched = broker.groups.read(|c| {
        c.fetch_offsets(group_id, wanted.as_deref()).map(|rows| {
            rows.into_iter()
                .map(|((topic, p), committed)| {
                    let unstable = require_stable && c.has_pending(group_id, &topic, p);
                    ((topic, p), committed, unstable)
                })
                .collect::<Vec<_>>()
        })
    });
    let rows = match fetched {
        Ok(rows) => rows,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut by_topic: BTreeMap<String, Vec<OffsetFetchResponsePartition>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for ((topic, p), committed, unstable) in rows {
        let part = match committed {
            _ if unstable => OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(-1)
                .with_committed_leader_epoch(-1)
                .with_metadata(Some(StrBytes::default()))
                .with_error_code(ResponseError::UnstableOffsetCommit.code()),
            Some(c) => OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(c.offset)
                .with_committed_leader_epoch(if version >= 5 { c.leader_epoch } else { -1 })
                .with_metadata(Some(sb(c.metadata))),
            None => OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(-1)
                .with_committed_leader_epoch(-1)
                .with_metadata(Some(StrBytes::default())),
        };
        if !by_topic.contains_key(&topic) {
            order.push(topic.clone());
        }
        by_topic.entry(topic).or_default().push(part);
    }
    let out = order
        .into_iter()
        .map(|t| {
            let ps = by_topic.remove(&t).unwrap_or_default();
            (t, ps)
        })
        .collect();
    (out, None)
}

pub fn offset_fetch(broker: &Broker, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version < 8 {
        let requested: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect()
        });
        let require_stable = version >= 7 && req.require_stable;
        let (rows, error) = fetch_group_offsets(
            broker,
            req.group_id.as_str(),
            requested.clone(),
            require_stable,
            version,
        );
        let topics = match error {
            None => rows,
            // v1 has no top-level error: every requested partition carries
            // it.
            Some(e) => requested
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    let ps = ps
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(StrBytes::default()))
                                .with_error_code(e.code())
                        })
                        .collect();
                    (t, ps)
                })
                .collect(),
        };
        let mut resp = OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
        if version >= 2 {
            resp.error_code = code(error);
            if error.is_some() {
                resp.topics.clear();
            }
        }
        return resp;
    }
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            let (rows, error) = fetch_group_offsets(
                broker,
                g.group_id.as_str(),
                topics,
                req.require_stable,
                version,
            );
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id)
                .with_error_code(code(error))
                .with_topics(
                    rows.into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(sb(t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p.partition_index)
                                                .with_committed_offset(p.committed_offset)
                                                .with_committed_leader_epoch(
                                                    p.committed_leader_epoch,
                                                )
                                                .with_metadata(p.metadata)
                                                .with_error_code(p.error_code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

pub fn offset_delete(broker: &Broker, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = req.group_id.to_string();
    let wanted: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let outcome = broker.groups.with_core(&broker.replicas, |c, log| {
        c.delete_offsets(&group_id, &wanted, log)
    });
    let results = match outcome {
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(r) => r,
    };
    let image = broker.image();
    let mut results = results.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let known = image.topic(t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut e = results.next().flatten();
                    if e.is_none()
                        && !known.is_some_and(|ti| ti.partitions.contains_key(&p.partition_index))
                    {
                        e = Some(ResponseError::UnknownTopicOrPartition);
                    }
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(e))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

// ---- ListGroups / DescribeGroups / DeleteGroups --------------------------

pub fn list_groups(broker: &Broker, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = if version >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if version >= 5 {
        req.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let (listing, loading) = broker.groups.read(|c| (c.list(), c.loading()));
    let groups = listing
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(g.group_id)))
                .with_protocol_type(sb(g.protocol_type))
                .with_group_state(sb(g.state.name()))
                .with_group_type(sb("classic"))
        })
        .collect();
    let mut resp = ListGroupsResponse::default().with_groups(groups);
    if loading {
        resp.error_code = ResponseError::CoordinatorLoadInProgress.code();
    }
    resp
}

pub fn describe_groups(
    broker: &Broker,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let described = broker.groups.read(|c| c.describe(id.as_str()));
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            match described {
                Err(e) => base
                    .with_error_code(e.code())
                    .with_group_state(sb(GroupState::Dead.name())),
                Ok(None) if version >= 6 => base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(sb(format!("Group {} not found.", id.as_str()))))
                    .with_group_state(sb(GroupState::Dead.name())),
                Ok(None) => base.with_group_state(sb(GroupState::Dead.name())),
                Ok(Some(d)) => base
                    .with_group_state(sb(d.state.name()))
                    .with_protocol_type(sb(d.protocol_type))
                    .with_protocol_data(sb(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(sb(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(sb))
                                    .with_client_id(sb(m.client_id))
                                    .with_client_host(sb(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn delete_groups(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|id| {
            let outcome = broker
                .groups
                .with_core(&broker.replicas, |c, log| c.delete_group(id.as_str(), log));
            if let Err(e) = outcome {
                if e != ResponseError::NonEmptyGroup && e != ResponseError::GroupIdNotFound {
                    warn!(group = %id.as_str(), "delete failed: {e:?}");
                }
            }
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code(outcome.err()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

/// TxnOffsetCommit v0-4: offsets committed as part of a producer's
/// transaction (KIP-98), which count once the transaction commits; v3+
/// carry the consumer's group membership, checked as OffsetCommit's
/// (KIP-447). As in Kafka's `handleTxnOffsetCommitRequest`, partitions of
/// unknown topics are answered UNKNOWN_TOPIC_OR_PARTITION here, and when
/// none is left the coordinator is not asked at all. Before v2, clients
/// do not know COORDINATOR_LOAD_IN_PROGRESS (KAFKA-7296): they get
/// COORDINATOR_NOT_AVAILABLE.
pub fn txn_offset_commit(
    broker: &Broker,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    use crate::group::state::TxnCommitRequest;
    use kafka_protocol::messages::txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let respond = |plan| {
        TxnOffsetCommitResponse::default().with_topics(response_topics(
            plan,
            |p, e| {
                let e = match e {
                    Some(ResponseError::CoordinatorLoadInProgress) if version < 2 => {
                        Some(ResponseError::CoordinatorNotAvailable)
                    }
                    other => other,
                };
                TxnOffsetCommitResponsePartition::default()
                    .with_partition_index(p)
                    .with_error_code(code(e))
            },
            |name, partitions| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            },
        ))
    };
    // Rows answered here carry their error; `None` rows take the
    // coordinator's results in request order.
    let offsets = req.topics.iter().map(|t| {
        let partitions = t.partitions.iter().map(|p| OffsetToCommit {
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: if version >= 2 {
                p.committed_leader_epoch
            } else {
                -1
            },
            metadata: &p.committed_metadata,
        });
        (&t.name, partitions)
    });
    let (plan, partitions) = match plan_commit(broker, req.group_id.as_str(), offsets) {
        Ok(planned) => planned,
        Err(refused) => return respond(refused),
    };
    if partitions.is_empty() {
        return respond(plan);
    }
    let commit = TxnCommitRequest {
        group_id: req.group_id.to_string(),
        transactional_id: req.transactional_id.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        member_id: req.member_id.to_string(),
        generation_id: req.generation_id,
        group_instance_id: opt_string(&req.group_instance_id),
        partitions,
    };
    let outcome = broker.groups.txn_offset_commit(&broker.replicas, &commit);
    respond(with_coordinator_results(plan, &outcome))
}
