//! `riffle groups`: Kafka's `kafka-consumer-groups` for classic consumer
//! groups, spoken over the Kafka protocol so that it works against Riffle
//! and against Kafka brokers alike.
//!
//! - `list`: Metadata for the brokers, then ListGroups to each broker
//!   (every broker coordinates some groups), merged. Like Kafka's tool it
//!   shows consumer groups only: classic groups whose protocol type is
//!   `consumer` or empty (groups that only store offsets), and KIP-848
//!   consumer groups.
//! - `describe`: FindCoordinator (key type 0, group), DescribeGroups and
//!   OffsetFetch at the coordinator, ListOffsets (latest) at the partition
//!   leaders for the lag. Members' assignments are decoded from the
//!   `ConsumerProtocolAssignment` bytes in DescribeGroups.
//! - `reset-offsets`: refuses unless the group is Empty or Dead; computes
//!   the new offsets as Kafka's `GroupOffsetsResetter` does (explicit
//!   offsets and shifts clamped to the log's start and end, a datetime
//!   past the last record falling back to the log end) and commits them
//!   with OffsetCommit as an admin commit (generation -1, no member id)
//!   only with `--execute`.
//! - `delete`: DeleteGroups at each group's coordinator.
//!
//! Coordinator errors (COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS,
//! NOT_COORDINATOR) are retried with a growing backoff, asking
//! FindCoordinator again each time, until `--timeout-ms` runs out.
//!
//! Departures from Kafka's tool: one group per `describe` and
//! `reset-offsets`; `list` always prints the TYPE and STATE columns;
//! `describe --members` always prints GROUP-INSTANCE-ID and the assignment
//! (Kafka 4's `topic:0,1;other:2` format); errors go to stderr with the
//! exit code 1; a datetime without a zone is read in the local time zone
//! at that date (Kafka takes the zone's current offset); `--by-duration`,
//! `--from-file`, `--export` and `delete-offsets` are not supported.
//!
//! Everything that turns responses into decisions or text is a pure
//! function, tested below with hand-built values; [`Admin`] does the I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes};
use chrono::{NaiveDateTime, TimeZone};
use clap::{ArgGroup, Subcommand};
use kafka_protocol::messages::{
    describe_groups_response, list_offsets_request, offset_commit_request, offset_fetch_request,
    ApiKey, ConsumerProtocolAssignment, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
    ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Message, StrBytes};

use crate::admin::{
    self, code_error, is_coordinator_code, is_coordinator_error, server_error, str_bytes, Admin,
    ClusterArgs, Coordinator, CoordinatorKey, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER,
    UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::client::{kafka_error_name, Connection, ServerError};

/// Kafka's placeholder for a value that is not known or does not apply.
const MISSING: &str = "-";
/// ListOffsets' special timestamps.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;

// Kafka's error codes this tool acts on, besides the ones [`admin`] names.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// The group states a consumer group can be in, as Kafka spells them
/// (`GroupState.toString()`; the last two are KIP-848 consumer groups').
const GROUP_STATES: [&str; 7] = [
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
    "Assigning",
    "Reconciling",
];

/// `riffle groups` and its options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, Subcommand)]
enum GroupsCommand {
    /// List the consumer groups of every broker with their type and state.
    List {
        /// Only groups in these states (PreparingRebalance,
        /// CompletingRebalance, Stable, Dead, Empty, Assigning,
        /// Reconciling; any case); may be repeated or comma-separated.
        #[arg(long = "state", value_name = "STATE", value_delimiter = ',', value_parser = parse_group_state)]
        states: Vec<String>,
    },
    /// Show a group's committed offsets and lag (--offsets, the default),
    /// its members (--members) or its state (--state).
    Describe {
        group: String,
        /// One row per member with its assigned partitions.
        #[arg(long, conflicts_with_all = ["offsets", "state"])]
        members: bool,
        /// One row per partition with the committed offset, log end
        /// offset, lag and owner (the default).
        #[arg(long, conflicts_with = "state")]
        offsets: bool,
        /// The coordinator, assignment strategy, state and member count.
        #[arg(long)]
        state: bool,
    },
    /// Compute new committed offsets for an inactive group, and commit
    /// them with --execute.
    #[command(group(ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
    #[command(group(ArgGroup::new("mode").required(true).args(
        ["to_earliest", "to_latest", "to_current", "to_offset", "shift_by", "to_datetime"]
    )))]
    ResetOffsets {
        #[arg(long)]
        group: String,
        /// A topic, or some of its partitions (`topic:0,2`); may be repeated.
        #[arg(long, value_name = "TOPIC[:PARTITION[,PARTITION...]]", value_parser = parse_topic_spec)]
        topic: Vec<TopicSpec>,
        /// Every topic the group has committed offsets for.
        #[arg(long)]
        all_topics: bool,
        /// The log start offset.
        #[arg(long)]
        to_earliest: bool,
        /// The log end offset.
        #[arg(long)]
        to_latest: bool,
        /// The committed offset (the log end offset where there is none).
        #[arg(long)]
        to_current: bool,
        /// This offset, moved into [log start, log end].
        #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
        to_offset: Option<i64>,
        /// The committed offset plus N (N may be negative), moved into
        /// [log start, log end].
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        shift_by: Option<i64>,
        /// The first offset whose timestamp is at or after this time (the
        /// log end if there is none); without a zone, local time.
        #[arg(long, value_name = "YYYY-MM-DDTHH:mm:SS[.sss][Z|+hh:mm]", value_parser = parse_datetime_arg)]
        to_datetime: Option<i64>,
        /// Only print the new offsets (the default).
        #[arg(long, conflicts_with = "execute")]
        dry_run: bool,
        /// Commit the new offsets.
        #[arg(long)]
        execute: bool,
    },
    /// Delete groups (which must have no members) and their offsets.
    Delete {
        /// A group to delete; may be repeated.
        #[arg(long = "group", value_name = "GROUP", required = true)]
        groups: Vec<String>,
    },
}

/// A topic partition, shown as Kafka shows it (`topic-0`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tp {
    pub topic: String,
    pub partition: i32,
}

impl Tp {
    pub fn new(topic: &str, partition: i32) -> Tp {
        Tp {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl fmt::Display for Tp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A `--topic` argument: a topic, with all its partitions (`None`) or
/// the ones listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub topic: String,
    pub partitions: Option<Vec<i32>>,
}

/// Parses `topic` or `topic:0,1,2` as Kafka's `--topic` does: one colon
/// separates the topic from a comma-separated list of partitions.
pub fn parse_topic_spec(text: &str) -> Result<TopicSpec, String> {
    let Some((topic, partitions)) = text.split_once(':') else {
        if text.is_empty() {
            return Err("empty topic name".to_string());
        }
        return Ok(TopicSpec {
            topic: text.to_string(),
            partitions: None,
        });
    };
    if topic.is_empty() {
        return Err(format!("invalid topic arg '{text}': empty topic name"));
    }
    if partitions.contains(':') {
        return Err(format!(
            "invalid topic arg '{text}': expected a topic name and partitions (topic:0,1)"
        ));
    }
    let partitions = partitions
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| format!("invalid partition '{p}' in topic arg '{text}'"))
        })
        .collect::<Result<Vec<i32>, String>>()?;
    Ok(TopicSpec {
        topic: topic.to_string(),
        partitions: Some(partitions),
    })
}

/// A `--to-datetime` value: a fixed instant, or a wall-clock time to be
/// read in the local time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTimeArg {
    /// Milliseconds since the epoch.
    Fixed(i64),
    Local(NaiveDateTime),
}

/// Parses Kafka's `--to-datetime` format, `YYYY-MM-DDTHH:mm:SS` with
/// optional milliseconds (`.sss`, exactly three digits) and an optional
/// zone (`Z`, `+hh:mm` or `-hh:mm`), as Kafka's `Utils.getDateTime` does.
pub fn parse_datetime(text: &str) -> Result<DateTimeArg, String> {
    let invalid = |why: &str| {
        format!("invalid datetime '{text}' ({why}); expected YYYY-MM-DDTHH:mm:SS[.sss][Z|+hh:mm|-hh:mm]")
    };
    let Some((date, time)) = text.split_once('T') else {
        return Err(invalid("no 'T' between the date and the time"));
    };
    // The zone starts at the first Z, + or - of the time part.
    let (clock, zone) = match time.find(['Z', '+', '-']) {
        Some(i) => (&time[..i], Some(&time[i..])),
        None => (time, None),
    };
    let (seconds, millis) = match clock.split_once('.') {
        None => (clock, 0),
        Some((s, ms)) if ms.len() == 3 && ms.bytes().all(|b| b.is_ascii_digit()) => (
            s,
            ms.parse::<i64>().map_err(|_| invalid("bad milliseconds"))?,
        ),
        Some(_) => return Err(invalid("milliseconds must be three digits")),
    };
    let naive = NaiveDateTime::parse_from_str(&format!("{date}T{seconds}"), "%Y-%m-%dT%H:%M:%S")
        .map_err(|e| invalid(&e.to_string()))?
        + chrono::Duration::milliseconds(millis);
    let offset_seconds = match zone {
        None => return Ok(DateTimeArg::Local(naive)),
        Some("Z") => 0,
        Some(z) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let hm = &z[1..];
            let valid = hm.len() == 5
                && hm.as_bytes()[2] == b':'
                && hm
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| i == 2 || b.is_ascii_digit());
            if !valid {
                return Err(invalid("the zone must be Z, +hh:mm or -hh:mm"));
            }
            let hours: i32 = hm[..2].parse().map_err(|_| invalid("bad zone hours"))?;
            let minutes: i32 = hm[3..].parse().map_err(|_| invalid("bad zone minutes"))?;
            if hours > 18 || minutes > 59 {
                return Err(invalid("zone offset out of range"));
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let offset = chrono::FixedOffset::east_opt(offset_seconds)
        .ok_or_else(|| invalid("zone offset out of range"))?;
    let instant = offset
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(|| invalid("not a valid time in that zone"))?;
    Ok(DateTimeArg::Fixed(instant.timestamp_millis()))
}

/// `--to-datetime` as milliseconds since the epoch, a zone-less time read
/// in the local time zone (the earlier instant of an ambiguous one).
fn parse_datetime_arg(text: &str) -> Result<i64, String> {
    match parse_datetime(text)? {
        DateTimeArg::Fixed(ms) => Ok(ms),
        DateTimeArg::Local(naive) => chrono::Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| format!("'{text}' does not exist in the local time zone")),
    }
}

/// A `--state` value in Kafka's spelling, whatever its case.
fn parse_group_state(text: &str) -> Result<String, String> {
    admin::parse_state(text, &GROUP_STATES)
}

/// How `reset-offsets` chooses each partition's new offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetMode {
    Earliest,
    Latest,
    Current,
    ToOffset(i64),
    ShiftBy(i64),
    /// Milliseconds since the epoch.
    ToTimestamp(i64),
}

impl ResetMode {
    /// Which of the log's offsets the mode needs from the leaders.
    pub fn needs(self) -> LogOffsetsNeeded {
        match self {
            ResetMode::Earliest => LogOffsetsNeeded {
                start: true,
                ..Default::default()
            },
            ResetMode::Latest | ResetMode::Current => LogOffsetsNeeded {
                end: true,
                ..Default::default()
            },
            ResetMode::ToOffset(_) | ResetMode::ShiftBy(_) => LogOffsetsNeeded {
                start: true,
                end: true,
                timestamp: None,
            },
            ResetMode::ToTimestamp(ts) => LogOffsetsNeeded {
                start: false,
                end: true,
                timestamp: Some(ts),
            },
        }
    }
}

/// The ListOffsets queries a reset needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOffsetsNeeded {
    pub start: bool,
    pub end: bool,
    pub timestamp: Option<i64>,
}

/// One partition's log offsets as its leader reported them; `None` where
/// not asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOffsets {
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// The first offset with a timestamp at or after the one asked for;
    /// `Some(None)` when there is none (ListOffsets answers -1).
    pub at_timestamp: Option<Option<i64>>,
}

/// A reset's new offsets, and warnings about values that were adjusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetPlan {
    pub offsets: BTreeMap<Tp, i64>,
    pub warnings: Vec<String>,
}

/// Computes each partition's new offset as Kafka's `GroupOffsetsResetter`
/// does: explicit offsets and shifts are moved into [log start, log end]
/// with a warning; a timestamp after the last record gives the log end.
pub fn plan_reset(
    mode: ResetMode,
    partitions: &BTreeSet<Tp>,
    committed: &BTreeMap<Tp, i64>,
    logs: &BTreeMap<Tp, LogOffsets>,
) -> anyhow::Result<ResetPlan> {
    let mut plan = ResetPlan::default();
    for tp in partitions {
        let log = logs.get(tp).copied().unwrap_or_default();
        let start = || {
            log.start
                .ok_or_else(|| anyhow!("no log start offset for {tp}"))
        };
        let end = || log.end.ok_or_else(|| anyhow!("no log end offset for {tp}"));
        let mut clamp = |offset: i64| -> anyhow::Result<i64> {
            let (start, end) = (start()?, end()?);
            if offset > end {
                plan.warnings.push(format!(
                    "New offset ({offset}) is higher than latest offset for topic partition {tp}. Value will be set to {end}."
                ));
                Ok(end)
            } else if offset < start {
                plan.warnings.push(format!(
                    "New offset ({offset}) is lower than earliest offset for topic partition {tp}. Value will be set to {start}."
                ));
                Ok(start)
            } else {
                Ok(offset)
            }
        };
        let offset = match mode {
            ResetMode::Earliest => start()?,
            ResetMode::Latest => end()?,
            ResetMode::Current => match committed.get(tp) {
                Some(&c) => c,
                None => end()?,
            },
            ResetMode::ToOffset(n) => clamp(n)?,
            ResetMode::ShiftBy(n) => {
                let Some(&current) = committed.get(tp) else {
                    bail!("cannot shift offset for partition {tp} since there is no current committed offset");
                };
                clamp(current.saturating_add(n))?
            }
            ResetMode::ToTimestamp(_) => match log.at_timestamp {
                Some(Some(offset)) => offset,
                Some(None) => {
                    plan.warnings.push(format!(
                        "Partition {} from topic {} has no record at or after the time. Falling back to latest known offset.",
                        tp.partition, tp.topic
                    ));
                    end()?
                }
                None => bail!("no offset by timestamp for {tp}"),
            },
        };
        plan.offsets.insert(tp.clone(), offset);
    }
    Ok(plan)
}

/// The partitions a reset covers: the listed partitions of each `--topic`
/// and all partitions (`all_partitions`) of the others. Partitions that do
/// not exist are an error, as in Kafka.
pub fn partitions_to_reset(
    specs: &[TopicSpec],
    all_partitions: &BTreeMap<String, Vec<i32>>,
) -> anyhow::Result<BTreeSet<Tp>> {
    let mut out = BTreeSet::new();
    let mut missing = Vec::new();
    for spec in specs {
        let existing = all_partitions.get(&spec.topic);
        match (&spec.partitions, existing) {
            (None, Some(ps)) => out.extend(ps.iter().map(|p| Tp::new(&spec.topic, *p))),
            (None, None) => missing.push(spec.topic.clone()),
            (Some(ps), existing) => {
                for p in ps {
                    let tp = Tp::new(&spec.topic, *p);
                    if existing.is_some_and(|e| e.contains(p)) {
                        out.insert(tp);
                    } else {
                        missing.push(tp.to_string());
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "UNKNOWN_TOPIC_OR_PARTITION: the partitions \"{}\" do not exist",
            missing.join(",")
        );
    }
    Ok(out)
}

/// A member of a group as DescribeGroups reports it, its assignment
/// decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Sorted; empty while the group rebalances.
    pub assignment: Vec<Tp>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignment strategy (`range`), empty while there is none.
    pub protocol: String,
    pub members: Vec<MemberInfo>,
}

/// The partitions in a member's `ConsumerProtocolAssignment` bytes: an
/// int16 version, then the assignment at that version (a newer version
/// is read as the newest this build knows, whose fields it starts with).
/// Empty bytes (no assignment yet) give no partitions.
pub fn decode_assignment(bytes: &Bytes) -> anyhow::Result<Vec<Tp>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        bail!("assignment of {} bytes is truncated", bytes.len());
    }
    let version = buf.get_i16();
    if version < 0 {
        bail!("assignment has the invalid version {version}");
    }
    let version = version.min(ConsumerProtocolAssignment::VERSIONS.max);
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version)
        .context("cannot decode the consumer protocol assignment")?;
    let mut out: Vec<Tp> = assignment
        .assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| Tp::new(t.topic.0.as_str(), *p)))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// A group from a DescribeGroups response entry; `None` for a group that
/// does not exist (state Dead, or GROUP_ID_NOT_FOUND from version 6 on).
/// Assignments that cannot be decoded are reported in the warnings and
/// shown as empty.
pub fn group_info(
    described: &describe_groups_response::DescribedGroup,
    warnings: &mut Vec<String>,
) -> Result<Option<GroupInfo>, ServerError> {
    if described.error_code == GROUP_ID_NOT_FOUND {
        return Ok(None);
    }
    if let Some(e) = ServerError::from_code(described.error_code, described.error_message.as_ref())
    {
        return Err(e);
    }
    if described.group_state.as_str() == "Dead" {
        return Ok(None);
    }
    let consumer = is_consumer_protocol(described.protocol_type.as_str());
    let members = described
        .members
        .iter()
        .map(|m| {
            let assignment = if consumer {
                decode_assignment(&m.member_assignment).unwrap_or_else(|e| {
                    warnings.push(format!("member {}: {e:#}", m.member_id.as_str()));
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            MemberInfo {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment,
            }
        })
        .collect();
    Ok(Some(GroupInfo {
        group_id: described.group_id.0.to_string(),
        state: described.group_state.to_string(),
        protocol_type: described.protocol_type.to_string(),
        protocol: described.protocol_data.to_string(),
        members,
    }))
}

/// Whether a classic group's protocol type is a consumer group's: Kafka's
/// consumers say `consumer`; a group that only stores offsets says nothing.
fn is_consumer_protocol(protocol_type: &str) -> bool {
    protocol_type.is_empty() || protocol_type == "consumer"
}

/// One row of `describe --offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRow {
    pub tp: Tp,
    pub committed: Option<i64>,
    pub log_end: Option<i64>,
    /// `None` for a committed partition no member owns.
    pub owner: Option<MemberInfo>,
}

impl OffsetRow {
    /// Kafka's lag: the log end minus the committed offset, when both are
    /// known.
    pub fn lag(&self) -> Option<i64> {
        Some(self.log_end? - self.committed?)
    }
}

/// The rows of `describe --offsets` in Kafka's order: members with the
/// most partitions first, each member's partitions by topic and
/// partition, then the committed partitions no member owns.
pub fn offset_rows(
    group: &GroupInfo,
    committed: &BTreeMap<Tp, i64>,
    log_ends: &BTreeMap<Tp, i64>,
) -> Vec<OffsetRow> {
    let mut members: Vec<&MemberInfo> = group
        .members
        .iter()
        .filter(|m| !m.assignment.is_empty())
        .collect();
    members.sort_by_key(|m| std::cmp::Reverse(m.assignment.len()));
    let mut rows = Vec::new();
    let mut owned = BTreeSet::new();
    for m in members {
        for tp in &m.assignment {
            owned.insert(tp.clone());
            rows.push(OffsetRow {
                tp: tp.clone(),
                committed: committed.get(tp).copied(),
                log_end: log_ends.get(tp).copied(),
                owner: Some(m.clone()),
            });
        }
    }
    for (tp, offset) in committed {
        if !owned.contains(tp) {
            rows.push(OffsetRow {
                tp: tp.clone(),
                committed: Some(*offset),
                log_end: log_ends.get(tp).copied(),
                owner: None,
            });
        }
    }
    rows
}

/// A table as Kafka's group tool prints one: each column padded to the
/// widest cell or its minimum width and followed by a space, the last one
/// unpadded; the header first.
fn table(columns: &[(&str, usize)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, min)| h.len().max(*min)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let header: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (w, cell)) in widths.iter().zip(row).enumerate() {
            if i + 1 == columns.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$} "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn or_missing<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| MISSING.to_string(), |v| v.to_string())
}

/// `describe --offsets`.
pub fn format_offsets(group: &str, rows: &[OffsetRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let owner = r.owner.as_ref();
            vec![
                group.to_string(),
                r.tp.topic.clone(),
                r.tp.partition.to_string(),
                or_missing(r.committed),
                or_missing(r.log_end),
                or_missing(r.lag()),
                or_missing(owner.map(|m| &m.member_id)),
                or_missing(owner.map(|m| &m.host)),
                or_missing(owner.map(|m| &m.client_id)),
            ]
        })
        .collect();
    table(
        &[
            ("GROUP", 15),
            ("TOPIC", 15),
            ("PARTITION", 10),
            ("CURRENT-OFFSET", 15),
            ("LOG-END-OFFSET", 15),
            ("LAG", 15),
            ("CONSUMER-ID", 15),
            ("HOST", 15),
            ("CLIENT-ID", 0),
        ],
        &cells,
    )
}

/// Kafka 4's assignment format: `topic:0,1;other:2`, topics sorted.
pub fn assignment_string(assignment: &[Tp]) -> String {
    if assignment.is_empty() {
        return MISSING.to_string();
    }
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in assignment {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, mut ps)| {
            ps.sort_unstable();
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{topic}:{}", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// `describe --members`.
pub fn format_members(group: &GroupInfo) -> String {
    let cells: Vec<Vec<String>> = group
        .members
        .iter()
        .map(|m| {
            vec![
                group.group_id.clone(),
                m.member_id.clone(),
                or_missing(m.group_instance_id.as_ref()),
                m.host.clone(),
                m.client_id.clone(),
                m.assignment.len().to_string(),
                assignment_string(&m.assignment),
            ]
        })
        .collect();
    table(
        &[
            ("GROUP", 15),
            ("CONSUMER-ID", 15),
            ("GROUP-INSTANCE-ID", 17),
            ("HOST", 15),
            ("CLIENT-ID", 15),
            ("#PARTITIONS", 15),
            ("ASSIGNMENT", 0),
        ],
        &cells,
    )
}

/// `describe --state`.
pub fn format_state(group: &GroupInfo, coordinator: &Coordinator) -> String {
    let strategy = if group.protocol.is_empty() {
        MISSING.to_string()
    } else {
        group.protocol.clone()
    };
    table(
        &[
            ("GROUP", 15),
            ("COORDINATOR (ID)", 25),
            ("ASSIGNMENT-STRATEGY", 20),
            ("STATE", 20),
            ("#MEMBERS", 0),
        ],
        &[vec![
            group.group_id.clone(),
            format!("{}  ({})", coordinator.address(), coordinator.node_id),
            strategy,
            group.state.clone(),
            group.members.len().to_string(),
        ]],
    )
}

/// A group in `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    /// Kafka's `GroupType` spelling (`Classic`, `Consumer`).
    pub group_type: String,
    /// `Unknown` when the broker's ListGroups is older than version 4.
    pub state: String,
}

/// Kafka's `GroupType.toString()`: the wire's `classic` as `Classic`.
fn group_type_name(wire: &str) -> String {
    let mut chars = wire.chars();
    match chars.next() {
        None => "Unknown".to_string(),
        Some(first) => first.to_uppercase().chain(chars).collect(),
    }
}

/// The consumer groups in a ListGroups response at `version`: classic
/// groups of protocol type `consumer` or none, and consumer groups.
/// Before version 5 every group is classic (KIP-848 groups came with
/// version 5); before version 4 the state is unknown.
pub fn listed_groups(response: &ListGroupsResponse, version: i16) -> Vec<ListedGroup> {
    response
        .groups
        .iter()
        .filter_map(|g| {
            let group_type = if version >= 5 && !g.group_type.is_empty() {
                group_type_name(g.group_type.as_str())
            } else {
                "Classic".to_string()
            };
            let wanted = match group_type.as_str() {
                "Classic" => is_consumer_protocol(g.protocol_type.as_str()),
                "Consumer" => true,
                _ => false,
            };
            let state = if version >= 4 && !g.group_state.is_empty() {
                g.group_state.to_string()
            } else {
                "Unknown".to_string()
            };
            wanted.then(|| ListedGroup {
                group_id: g.group_id.0.to_string(),
                group_type,
                state,
            })
        })
        .collect()
}

/// `list`, sorted by group id.
pub fn format_list(groups: &BTreeMap<String, ListedGroup>) -> String {
    let cells: Vec<Vec<String>> = groups
        .values()
        .map(|g| vec![g.group_id.clone(), g.group_type.clone(), g.state.clone()])
        .collect();
    table(&[("GROUP", 15), ("TYPE", 20), ("STATE", 0)], &cells)
}

/// `reset-offsets`' table of new offsets.
pub fn format_reset(group: &str, offsets: &BTreeMap<Tp, i64>) -> String {
    let cells: Vec<Vec<String>> = offsets
        .iter()
        .map(|(tp, o)| {
            vec![
                group.to_string(),
                tp.topic.clone(),
                tp.partition.to_string(),
                o.to_string(),
            ]
        })
        .collect();
    table(
        &[
            ("GROUP", 15),
            ("TOPIC", 15),
            ("PARTITION", 10),
            ("NEW-OFFSET", 0),
        ],
        &cells,
    )
}

/// The partitions of the topics a Metadata response describes, and their
/// leaders (-1 when there is none).
#[derive(Debug, Default)]
struct Topology {
    partitions: BTreeMap<String, Vec<i32>>,
    leaders: BTreeMap<Tp, i32>,
}

/// What `riffle groups` asks of the cluster.
impl Admin {
    /// The partitions and leaders of `topics`; unknown topics are left out.
    async fn topology(&mut self, topics: &BTreeSet<String>) -> anyhow::Result<Topology> {
        let mut topology = Topology::default();
        if topics.is_empty() {
            return Ok(topology);
        }
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let response = self.metadata(&topics).await?;
        for t in &response.topics {
            let Some(name) = &t.name else { continue };
            if t.error_code == UNKNOWN_TOPIC_OR_PARTITION {
                continue;
            }
            server_error(t.error_code, None).with_context(|| format!("topic {}", name.0))?;
            let mut partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            partitions.sort_unstable();
            for p in &t.partitions {
                topology
                    .leaders
                    .insert(Tp::new(name.0.as_str(), p.partition_index), p.leader_id.0);
            }
            topology.partitions.insert(name.0.to_string(), partitions);
        }
        Ok(topology)
    }

    /// Runs `op` at the coordinator of `group`, finding the coordinator
    /// again and retrying while `op` fails with a coordinator error.
    async fn at_group_coordinator<T>(
        &mut self,
        group: &str,
        op: impl AsyncFnMut(&mut Connection, &Coordinator) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.at_coordinator(CoordinatorKey::Group(group), is_coordinator_error, op)
            .await
    }

    /// DescribeGroups for `group`; `None` if it does not exist.
    async fn describe_group(
        &mut self,
        group: &str,
    ) -> anyhow::Result<Option<(GroupInfo, Coordinator)>> {
        let mut warnings = Vec::new();
        let described = self
            .at_group_coordinator(group, async |conn, coordinator| {
                let version = conn.version_for(
                    ApiKey::DescribeGroups,
                    (0, DescribeGroupsRequest::VERSIONS.max),
                )?;
                let request =
                    DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
                let response: DescribeGroupsResponse =
                    conn.send(ApiKey::DescribeGroups, version, &request).await?;
                let Some(g) = response
                    .groups
                    .iter()
                    .find(|g| g.group_id.0.as_str() == group)
                else {
                    bail!("DescribeGroups did not answer for group '{group}'");
                };
                let mut w = Vec::new();
                let info = group_info(g, &mut w)?;
                Ok((info, w, coordinator.clone()))
            })
            .await?;
        let (info, w, coordinator) = described;
        warnings.extend(w);
        for w in warnings {
            eprintln!("Warning: {w}");
        }
        Ok(info.map(|i| (i, coordinator)))
    }

    /// The group's committed offsets (partitions without one are left out).
    async fn committed_offsets(&mut self, group: &str) -> anyhow::Result<BTreeMap<Tp, i64>> {
        self.at_group_coordinator(group, async |conn, _| {
            let version =
                conn.version_for(ApiKey::OffsetFetch, (2, OffsetFetchRequest::VERSIONS.max))?;
            // Version 8 (KIP-709) batches groups; before it, one group per
            // request. Null topics ask for all of them (version 2 on).
            let request = if version >= 8 {
                OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(str_bytes(group)))
                        .with_topics(None),
                ])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(str_bytes(group)))
                    .with_topics(None)
            };
            let response: OffsetFetchResponse =
                conn.send(ApiKey::OffsetFetch, version, &request).await?;
            let mut out = BTreeMap::new();
            let mut insert = |topic: &str, partition: i32, offset: i64, code: i16| {
                server_error(code, None)
                    .with_context(|| format!("offset of {topic}-{partition}"))?;
                // -1: no committed offset.
                if offset >= 0 {
                    out.insert(Tp::new(topic, partition), offset);
                }
                anyhow::Ok(())
            };
            if version >= 8 {
                let Some(g) = response
                    .groups
                    .iter()
                    .find(|g| g.group_id.0.as_str() == group)
                else {
                    bail!("OffsetFetch did not answer for group '{group}'");
                };
                server_error(g.error_code, None)?;
                for t in &g.topics {
                    for p in &t.partitions {
                        insert(
                            t.name.0.as_str(),
                            p.partition_index,
                            p.committed_offset,
                            p.error_code,
                        )?;
                    }
                }
            } else {
                server_error(response.error_code, None)?;
                for t in &response.topics {
                    for p in &t.partitions {
                        insert(
                            t.name.0.as_str(),
                            p.partition_index,
                            p.committed_offset,
                            p.error_code,
                        )?;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// ListOffsets at each partition's leader for `timestamp` (latest,
    /// earliest or a time). A partition's result is its error when it has
    /// one after retrying leader errors within the deadline; -1 means no
    /// record at or after the time.
    async fn list_offsets(
        &mut self,
        partitions: &BTreeSet<Tp>,
        timestamp: i64,
    ) -> anyhow::Result<BTreeMap<Tp, Result<i64, ServerError>>> {
        let mut results = BTreeMap::new();
        let mut pending: BTreeSet<Tp> = partitions.clone();
        let mut attempt = 0;
        loop {
            let topics: BTreeSet<String> = pending.iter().map(|tp| tp.topic.clone()).collect();
            let topology = self.topology(&topics).await?;
            let mut by_leader: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
            for tp in &pending {
                match topology.leaders.get(tp) {
                    None => {
                        results.insert(tp.clone(), Err(code_error(UNKNOWN_TOPIC_OR_PARTITION)));
                    }
                    Some(leader) if *leader < 0 => {
                        results.insert(tp.clone(), Err(code_error(LEADER_NOT_AVAILABLE)));
                    }
                    Some(leader) => by_leader.entry(*leader).or_default().push(tp.clone()),
                }
            }
            for (leader, tps) in by_leader {
                match self.list_offsets_at(leader, &tps, timestamp).await {
                    Ok(r) => results.extend(r),
                    Err(e) => {
                        self.disconnect(leader);
                        let e = ServerError {
                            code: -1,
                            message: Some(format!("{e:#}")),
                        };
                        results.extend(tps.into_iter().map(|tp| (tp, Err(e.clone()))));
                    }
                }
            }
            pending = results
                .iter()
                .filter(|(_, r)| {
                    matches!(r, Err(e) if e.code == NOT_LEADER_OR_FOLLOWER || e.code == LEADER_NOT_AVAILABLE)
                })
                .map(|(tp, _)| tp.clone())
                .collect();
            if pending.is_empty()
                || self
                    .wait_before_retry(&mut attempt, anyhow!("leaders moving"), true)
                    .await
                    .is_err()
            {
                return Ok(results);
            }
        }
    }

    async fn list_offsets_at(
        &mut self,
        leader: i32,
        tps: &[Tp],
        timestamp: i64,
    ) -> anyhow::Result<Vec<(Tp, Result<i64, ServerError>)>> {
        let timeout_ms = i32::try_from(self.request_timeout().as_millis()).unwrap_or(i32::MAX);
        let conn = self.broker(leader).await?;
        let version =
            conn.version_for(ApiKey::ListOffsets, (1, ListOffsetsRequest::VERSIONS.max))?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in tps {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let mut request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(
                by_topic
                    .iter()
                    .map(|(topic, ps)| {
                        list_offsets_request::ListOffsetsTopic::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partitions(
                                ps.iter()
                                    .map(|p| {
                                        list_offsets_request::ListOffsetsPartition::default()
                                            .with_partition_index(*p)
                                            .with_timestamp(timestamp)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        if version >= 10 {
            request = request.with_timeout_ms(timeout_ms);
        }
        let response: ListOffsetsResponse =
            conn.send(ApiKey::ListOffsets, version, &request).await?;
        let mut out = Vec::new();
        for tp in tps {
            let p = response
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == tp.topic)
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == tp.partition);
            let result = match p {
                None => Err(ServerError {
                    code: -1,
                    message: Some(format!("ListOffsets did not answer for {tp}")),
                }),
                Some(p) => match ServerError::from_code(p.error_code, None) {
                    Some(e) => Err(e),
                    None => Ok(p.offset),
                },
            };
            out.push((tp.clone(), result));
        }
        Ok(out)
    }

    /// The log offsets `needed` for each partition; an error names the
    /// first partition whose offset could not be learnt.
    async fn log_offsets(
        &mut self,
        partitions: &BTreeSet<Tp>,
        needed: LogOffsetsNeeded,
    ) -> anyhow::Result<BTreeMap<Tp, LogOffsets>> {
        let mut logs: BTreeMap<Tp, LogOffsets> = partitions
            .iter()
            .map(|tp| (tp.clone(), LogOffsets::default()))
            .collect();
        let queries = [
            (needed.start, EARLIEST_TIMESTAMP),
            (needed.end, LATEST_TIMESTAMP),
            (needed.timestamp.is_some(), needed.timestamp.unwrap_or(0)),
        ];
        for (i, (wanted, timestamp)) in queries.into_iter().enumerate() {
            if !wanted || partitions.is_empty() {
                continue;
            }
            for (tp, result) in self.list_offsets(partitions, timestamp).await? {
                let offset = result.map_err(|e| anyhow!("cannot list the offsets of {tp}: {e}"))?;
                let log = logs.entry(tp).or_default();
                match i {
                    0 => log.start = Some(offset),
                    1 => log.end = Some(offset),
                    _ => log.at_timestamp = Some((offset >= 0).then_some(offset)),
                }
            }
        }
        Ok(logs)
    }
}

/// Runs `riffle groups`; the exit code is 1 for an operational failure
/// (printed here or returned) and 2 for a usage error.
pub fn run(args: Args, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let command = args.command;
    admin::run(&args.cluster, async move |admin| {
        execute(admin, command, out).await
    })
}

async fn execute(
    admin: &mut Admin,
    command: GroupsCommand,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match command {
        GroupsCommand::List { states } => list(admin, &states, out).await,
        GroupsCommand::Describe {
            group,
            members,
            offsets: _,
            state,
        } => {
            let what = if members {
                DescribeWhat::Members
            } else if state {
                DescribeWhat::State
            } else {
                DescribeWhat::Offsets
            };
            describe(admin, &group, what, out).await
        }
        GroupsCommand::ResetOffsets {
            group,
            topic,
            all_topics,
            to_earliest,
            to_latest,
            to_current,
            to_offset,
            shift_by,
            to_datetime,
            dry_run,
            execute,
        } => {
            let mode = match (to_offset, shift_by, to_datetime) {
                (Some(n), _, _) => ResetMode::ToOffset(n),
                (_, Some(n), _) => ResetMode::ShiftBy(n),
                (_, _, Some(ts)) => ResetMode::ToTimestamp(ts),
                _ if to_earliest => ResetMode::Earliest,
                _ if to_latest => ResetMode::Latest,
                _ => {
                    debug_assert!(to_current, "clap requires one reset mode");
                    ResetMode::Current
                }
            };
            let scope = if all_topics { None } else { Some(topic) };
            reset_offsets(admin, &group, scope, mode, dry_run, execute, out).await
        }
        GroupsCommand::Delete { groups } => delete(admin, &groups, out).await,
    }
}

async fn list(
    admin: &mut Admin,
    states: &[String],
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let (listed, failed) = admin
        .at_every_broker(
            "list the groups",
            is_coordinator_error,
            async |conn, broker| list_groups_at(conn, broker, states).await,
        )
        .await?;
    let groups: BTreeMap<String, ListedGroup> = listed
        .into_iter()
        .flatten()
        .map(|g| (g.group_id.clone(), g))
        .collect();
    out.write_all(format_list(&groups).as_bytes())?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn list_groups_at(
    conn: &mut Connection,
    broker: i32,
    states: &[String],
) -> anyhow::Result<Vec<ListedGroup>> {
    let version = conn.version_for(ApiKey::ListGroups, (0, ListGroupsRequest::VERSIONS.max))?;
    let mut request = ListGroupsRequest::default();
    if !states.is_empty() {
        if version < 4 {
            bail!("UNSUPPORTED_VERSION: broker {broker} serves ListGroups up to version {version}, which cannot filter by state (version 4)");
        }
        request = request.with_states_filter(states.iter().map(|s| str_bytes(s)).collect());
    }
    let response: ListGroupsResponse = conn.send(ApiKey::ListGroups, version, &request).await?;
    server_error(response.error_code, None)?;
    Ok(listed_groups(&response, version))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DescribeWhat {
    Offsets,
    Members,
    State,
}

async fn describe(
    admin: &mut Admin,
    group: &str,
    what: DescribeWhat,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let Some((info, coordinator)) = admin.describe_group(group).await? else {
        bail!("consumer group '{group}' does not exist");
    };
    if !is_consumer_protocol(&info.protocol_type) {
        bail!(
            "group '{group}' is not a consumer group (its protocol type is '{}')",
            info.protocol_type
        );
    }
    match info.state.as_str() {
        "Empty" if what != DescribeWhat::State => {
            eprintln!("Consumer group '{group}' has no active members.")
        }
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => {
            eprintln!("Warning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
    let text = match what {
        DescribeWhat::State => format_state(&info, &coordinator),
        DescribeWhat::Members => format_members(&info),
        DescribeWhat::Offsets => {
            let committed = admin.committed_offsets(group).await?;
            let assigned: BTreeSet<Tp> = info
                .members
                .iter()
                .flat_map(|m| m.assignment.iter().cloned())
                .chain(committed.keys().cloned())
                .collect();
            let mut log_ends = BTreeMap::new();
            if !assigned.is_empty() {
                for (tp, result) in admin.list_offsets(&assigned, LATEST_TIMESTAMP).await? {
                    match result {
                        Ok(offset) => {
                            log_ends.insert(tp, offset);
                        }
                        Err(e) => eprintln!("Warning: no log end offset for {tp}: {e}"),
                    }
                }
            }
            format_offsets(group, &offset_rows(&info, &committed, &log_ends))
        }
    };
    out.write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

async fn reset_offsets(
    admin: &mut Admin,
    group: &str,
    topics: Option<Vec<TopicSpec>>,
    mode: ResetMode,
    dry_run: bool,
    execute: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    if let Some((info, _)) = admin.describe_group(group).await? {
        if info.state != "Empty" {
            bail!(
                "assignments can only be reset if the group '{group}' is inactive, but the current state is {}",
                info.state
            );
        }
    }
    let committed = admin.committed_offsets(group).await?;
    let partitions = match topics {
        None => committed.keys().cloned().collect(),
        Some(specs) => {
            let names: BTreeSet<String> = specs.iter().map(|s| s.topic.clone()).collect();
            let topology = admin.topology(&names).await?;
            partitions_to_reset(&specs, &topology.partitions)?
        }
    };
    let logs = admin.log_offsets(&partitions, mode.needs()).await?;
    let plan = plan_reset(mode, &partitions, &committed, &logs)?;
    for w in &plan.warnings {
        eprintln!("Warning: {w}");
    }
    if execute {
        if let Err(failures) = commit_offsets(admin, group, &plan.offsets).await? {
            out.write_all(format_reset(group, &plan.offsets).as_bytes())?;
            for (tp, e) in failures {
                eprintln!("Error: cannot commit the offset of {tp}: {e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    } else if !dry_run {
        eprintln!("WARN: No action will be performed as the --execute option is missing. This is a dry run; add --dry-run to say so, or --execute to commit the offsets.");
    }
    out.write_all(format_reset(group, &plan.offsets).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// OffsetCommit of `offsets` as an admin commit (generation -1, no member
/// id), which the coordinator accepts only for a group without members.
/// The inner error lists the partitions that were refused.
async fn commit_offsets(
    admin: &mut Admin,
    group: &str,
    offsets: &BTreeMap<Tp, i64>,
) -> anyhow::Result<Result<(), Vec<(Tp, ServerError)>>> {
    if offsets.is_empty() {
        return Ok(Ok(()));
    }
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (tp, o) in offsets {
        by_topic
            .entry(&tp.topic)
            .or_default()
            .push((tp.partition, *o));
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(
            by_topic
                .iter()
                .map(|(topic, ps)| {
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(
                            ps.iter()
                                .map(|(p, o)| {
                                    offset_commit_request::OffsetCommitRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(*o)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    admin
        .at_group_coordinator(group, async |conn, _| {
            let version =
                conn.version_for(ApiKey::OffsetCommit, (2, OffsetCommitRequest::VERSIONS.max))?;
            let response: OffsetCommitResponse =
                conn.send(ApiKey::OffsetCommit, version, &request).await?;
            let mut failures = Vec::new();
            for t in &response.topics {
                for p in &t.partitions {
                    if let Some(e) = ServerError::from_code(p.error_code, None) {
                        // A coordinator error applies to the whole commit:
                        // retry it at the coordinator found anew.
                        if is_coordinator_code(e.code) {
                            return Err(e.into());
                        }
                        failures.push((Tp::new(t.name.0.as_str(), p.partition_index), e));
                    }
                }
            }
            Ok(if failures.is_empty() {
                Ok(())
            } else {
                Err(failures)
            })
        })
        .await
}

async fn delete(
    admin: &mut Admin,
    groups: &[String],
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for group in groups {
        let result = admin
            .at_group_coordinator(group, async |conn, _| {
                let version =
                    conn.version_for(ApiKey::DeleteGroups, (0, DeleteGroupsRequest::VERSIONS.max))?;
                let request = DeleteGroupsRequest::default()
                    .with_groups_names(vec![GroupId(str_bytes(group))]);
                let response: DeleteGroupsResponse =
                    conn.send(ApiKey::DeleteGroups, version, &request).await?;
                let Some(r) = response
                    .results
                    .iter()
                    .find(|r| r.group_id.0.as_str() == group.as_str())
                else {
                    bail!("DeleteGroups did not answer for group '{group}'");
                };
                server_error(r.error_code, None)
            })
            .await;
        match result {
            Ok(()) => writeln!(
                out,
                "Deletion of requested consumer groups ('{group}') was successful."
            )?,
            Err(e) => {
                failed = true;
                let reason = match e.downcast_ref::<ServerError>() {
                    Some(s) => kafka_error_name(s.code),
                    None => format!("{e:#}"),
                };
                writeln!(
                    out,
                    "Error: Deletion of consumer group '{group}' failed: {reason}"
                )?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::COORDINATOR_LOAD_IN_PROGRESS;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::describe_groups_response::{
        DescribedGroup, DescribedGroupMember,
    };
    use kafka_protocol::messages::list_groups_response;
    use kafka_protocol::protocol::Encodable;

    fn tp(topic: &str, partition: i32) -> Tp {
        Tp::new(topic, partition)
    }

    fn assignment_bytes(version: i16, parts: &[(&str, &[i32])]) -> Bytes {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
            parts
                .iter()
                .map(|(t, ps)| {
                    TopicPartition::default()
                        .with_topic(TopicName(str_bytes(t)))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut buf, version);
        a.encode(&mut buf, version).expect("encode");
        buf.freeze()
    }

    fn member(id: &str, assignment: &[Tp]) -> MemberInfo {
        MemberInfo {
            member_id: id.to_string(),
            group_instance_id: None,
            client_id: format!("client-{id}"),
            host: "/127.0.0.1".to_string(),
            assignment: assignment.to_vec(),
        }
    }

    fn group(state: &str, members: Vec<MemberInfo>) -> GroupInfo {
        GroupInfo {
            group_id: "g".to_string(),
            state: state.to_string(),
            protocol_type: "consumer".to_string(),
            protocol: "range".to_string(),
            members,
        }
    }

    #[test]
    fn topic_specs_parse_as_kafkas_topic_option() {
        assert_eq!(
            parse_topic_spec("orders"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: None
            })
        );
        assert_eq!(
            parse_topic_spec("orders:0,2,5"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: Some(vec![0, 2, 5])
            })
        );
        for bad in [
            "",
            ":1",
            "orders:",
            "orders:x",
            "orders:1,,2",
            "orders:-1",
            "a:1:2",
        ] {
            assert!(parse_topic_spec(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn datetimes_parse_as_kafkas_utils_get_date_time() {
        // 2024-03-01T12:30:00Z is 1709296200 s after the epoch.
        let base = 1_709_296_200_000;
        assert_eq!(
            parse_datetime("2024-03-01T12:30:00Z"),
            Ok(DateTimeArg::Fixed(base))
        );
        assert_eq!(
            parse_datetime("2024-03-01T12:30:00.250Z"),
            Ok(DateTimeArg::Fixed(base + 250))
        );
        assert_eq!(
            parse_datetime("2024-03-01T14:30:00+02:00"),
            Ok(DateTimeArg::Fixed(base))
        );
        assert_eq!(
            parse_datetime("2024-03-01T07:00:00.001-05:30"),
            Ok(DateTimeArg::Fixed(base + 1))
        );
        let naive = NaiveDateTime::parse_from_str("2024-03-01T12:30:00", "%Y-%m-%dT%H:%M:%S")
            .expect("naive");
        assert_eq!(
            parse_datetime("2024-03-01T12:30:00"),
            Ok(DateTimeArg::Local(naive))
        );
        for bad in [
            "2024-03-01",
            "2024-03-01 12:30:00",
            "2024-03-01T12:30",
            "2024-03-01T12:30:00.5Z",
            "2024-03-01T12:30:00+0200",
            "2024-03-01T12:30:00+25:00",
            "2024-02-30T12:30:00Z",
            "2024-03-01T12:30:00X",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad:?}");
        }
        // Without a zone, the local zone: whatever it is, the result is
        // within a day of the UTC reading.
        let local = parse_datetime_arg("2024-03-01T12:30:00").expect("local");
        assert!((local - base).abs() <= 24 * 3_600_000, "{local}");
    }

    #[test]
    fn group_states_are_spelled_as_kafka_spells_them() {
        assert_eq!(parse_group_state("stable"), Ok("Stable".to_string()));
        assert_eq!(
            parse_group_state("PREPARINGREBALANCE"),
            Ok("PreparingRebalance".to_string())
        );
        let err = parse_group_state("running").expect_err("invalid");
        assert!(err.contains("Empty"), "{err}");
    }

    fn logs(entries: &[(Tp, i64, i64)]) -> BTreeMap<Tp, LogOffsets> {
        entries
            .iter()
            .map(|(tp, start, end)| {
                (
                    tp.clone(),
                    LogOffsets {
                        start: Some(*start),
                        end: Some(*end),
                        at_timestamp: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn reset_modes_compute_kafkas_offsets() {
        let t0 = tp("t", 0);
        let t1 = tp("t", 1);
        let parts: BTreeSet<Tp> = [t0.clone(), t1.clone()].into();
        let logs = logs(&[(t0.clone(), 10, 100), (t1.clone(), 0, 5)]);
        let committed: BTreeMap<Tp, i64> = [(t0.clone(), 50), (t1.clone(), 3)].into();
        let plan = |mode| plan_reset(mode, &parts, &committed, &logs).expect("plan");

        let p = plan(ResetMode::Earliest);
        assert_eq!(p.offsets, [(t0.clone(), 10), (t1.clone(), 0)].into());
        assert!(p.warnings.is_empty());
        assert_eq!(
            plan(ResetMode::Latest).offsets,
            [(t0.clone(), 100), (t1.clone(), 5)].into()
        );
        assert_eq!(
            plan(ResetMode::Current).offsets,
            [(t0.clone(), 50), (t1.clone(), 3)].into()
        );

        // Kafka's checkOffsetsRange: moved into [start, end], with a warning.
        let p = plan(ResetMode::ToOffset(4));
        assert_eq!(p.offsets, [(t0.clone(), 10), (t1.clone(), 4)].into());
        assert_eq!(p.warnings.len(), 1);
        assert!(
            p.warnings[0].contains("lower than earliest"),
            "{:?}",
            p.warnings
        );
        let p = plan(ResetMode::ShiftBy(3));
        assert_eq!(p.offsets, [(t0.clone(), 53), (t1.clone(), 5)].into());
        assert!(p.warnings[0].contains(
            "higher than latest offset for topic partition t-1. Value will be set to 5."
        ));
        let p = plan(ResetMode::ShiftBy(-45));
        assert_eq!(p.offsets, [(t0.clone(), 10), (t1.clone(), 0)].into());
        assert_eq!(p.warnings.len(), 2);
    }

    #[test]
    fn current_without_a_commit_is_the_log_end_and_shift_without_one_is_refused() {
        let t0 = tp("t", 0);
        let parts: BTreeSet<Tp> = [t0.clone()].into();
        let logs = logs(&[(t0.clone(), 0, 7)]);
        let none = BTreeMap::new();
        let p = plan_reset(ResetMode::Current, &parts, &none, &logs).expect("plan");
        assert_eq!(p.offsets, [(t0.clone(), 7)].into());
        let err = plan_reset(ResetMode::ShiftBy(1), &parts, &none, &logs).expect_err("no commit");
        assert!(
            err.to_string().contains("no current committed offset"),
            "{err}"
        );
    }

    #[test]
    fn a_datetime_after_the_last_record_falls_back_to_the_log_end() {
        let t0 = tp("t", 0);
        let t1 = tp("t", 1);
        let parts: BTreeSet<Tp> = [t0.clone(), t1.clone()].into();
        let logs: BTreeMap<Tp, LogOffsets> = [
            (
                t0.clone(),
                LogOffsets {
                    start: None,
                    end: Some(9),
                    at_timestamp: Some(Some(4)),
                },
            ),
            (
                t1.clone(),
                LogOffsets {
                    start: None,
                    end: Some(12),
                    at_timestamp: Some(None),
                },
            ),
        ]
        .into();
        let p =
            plan_reset(ResetMode::ToTimestamp(1), &parts, &BTreeMap::new(), &logs).expect("plan");
        assert_eq!(p.offsets, [(t0, 4), (t1, 12)].into());
        assert_eq!(p.warnings.len(), 1);
        assert!(
            p.warnings[0].starts_with("Partition 1 from topic t"),
            "{:?}",
            p.warnings
        );
        assert_eq!(
            ResetMode::ToTimestamp(1).needs(),
            LogOffsetsNeeded {
                start: false,
                end: true,
                timestamp: Some(1)
            }
        );
    }

    #[test]
    fn reset_partitions_expand_topics_and_refuse_unknown_ones() {
        let all: BTreeMap<String, Vec<i32>> =
            [("a".to_string(), vec![0, 1, 2]), ("b".to_string(), vec![0])].into();
        let specs = [
            parse_topic_spec("a").expect("a"),
            parse_topic_spec("b:0").expect("b"),
        ];
        let parts = partitions_to_reset(&specs, &all).expect("valid");
        assert_eq!(
            parts,
            [tp("a", 0), tp("a", 1), tp("a", 2), tp("b", 0)].into()
        );
        let specs = [
            parse_topic_spec("a:0,3").expect("a"),
            parse_topic_spec("c").expect("c"),
        ];
        let err = partitions_to_reset(&specs, &all).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "UNKNOWN_TOPIC_OR_PARTITION: the partitions \"a-3,c\" do not exist"
        );
    }

    #[test]
    fn assignments_decode_from_consumer_protocol_bytes() {
        for version in 0..=3 {
            let bytes = assignment_bytes(version, &[("b", &[1]), ("a", &[2, 0])]);
            assert_eq!(
                decode_assignment(&bytes).expect("valid"),
                vec![tp("a", 0), tp("a", 2), tp("b", 1)],
                "version {version}"
            );
        }
        // A newer version starts with the fields this build knows.
        let mut newer = assignment_bytes(3, &[("a", &[0])]).to_vec();
        newer[..2].copy_from_slice(&7i16.to_be_bytes());
        assert_eq!(
            decode_assignment(&Bytes::from(newer)).expect("newer"),
            vec![tp("a", 0)]
        );
        assert_eq!(decode_assignment(&Bytes::new()).expect("empty"), vec![]);
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0xff, 0xff, 0, 0])).is_err());
    }

    #[test]
    fn described_groups_map_dead_and_not_found_to_none() {
        let mut w = Vec::new();
        let dead = DescribedGroup::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_group_state(str_bytes("Dead"));
        assert_eq!(group_info(&dead, &mut w), Ok(None));
        let missing = DescribedGroup::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_error_code(GROUP_ID_NOT_FOUND);
        assert_eq!(group_info(&missing, &mut w), Ok(None));
        let loading = DescribedGroup::default().with_error_code(COORDINATOR_LOAD_IN_PROGRESS);
        assert_eq!(
            group_info(&loading, &mut w).map_err(|e| e.to_string()),
            Err("COORDINATOR_LOAD_IN_PROGRESS".to_string())
        );
        let stable = DescribedGroup::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_group_state(str_bytes("Stable"))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocol_data(str_bytes("range"))
            .with_members(vec![
                DescribedGroupMember::default()
                    .with_member_id(str_bytes("m1"))
                    .with_group_instance_id(Some(str_bytes("i1")))
                    .with_client_id(str_bytes("c1"))
                    .with_client_host(str_bytes("/10.0.0.1"))
                    .with_member_assignment(assignment_bytes(1, &[("t", &[1, 0])])),
                DescribedGroupMember::default()
                    .with_member_id(str_bytes("m2"))
                    .with_member_assignment(Bytes::from_static(&[0, 1, 0])),
            ]);
        let info = group_info(&stable, &mut w).expect("ok").expect("exists");
        assert_eq!(info.members[0].assignment, vec![tp("t", 0), tp("t", 1)]);
        assert_eq!(info.members[0].group_instance_id.as_deref(), Some("i1"));
        assert_eq!(info.members[1].assignment, vec![]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("member m2:"), "{w:?}");
    }

    #[test]
    fn offsets_table_has_kafkas_rows_and_columns() {
        let g = group(
            "Stable",
            vec![
                member("m-small", &[tp("t", 2)]),
                member("m-big", &[tp("t", 0), tp("t", 1)]),
                member("m-idle", &[]),
            ],
        );
        let committed: BTreeMap<Tp, i64> =
            [(tp("t", 0), 5), (tp("t", 2), 1), (tp("u", 0), 3)].into();
        let ends: BTreeMap<Tp, i64> = [(tp("t", 0), 8), (tp("t", 1), 4), (tp("t", 2), 1)].into();
        let rows = offset_rows(&g, &committed, &ends);
        let text = format_offsets("g", &rows);
        let expected = "\
GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID
g               t               0          5               8               3               m-big           /127.0.0.1      client-m-big
g               t               1          -               4               -               m-big           /127.0.0.1      client-m-big
g               t               2          1               1               0               m-small         /127.0.0.1      client-m-small
g               u               0          3               -               -               -               -               -
";
        assert_eq!(text, expected);
    }

    #[test]
    fn members_and_state_tables() {
        let mut g = group(
            "Stable",
            vec![
                member("m1", &[tp("b", 0), tp("a", 1), tp("a", 0)]),
                member("m2", &[]),
            ],
        );
        g.members[1].group_instance_id = Some("static-2".to_string());
        let text = format_members(&g);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines,
            vec![
                vec![
                    "GROUP",
                    "CONSUMER-ID",
                    "GROUP-INSTANCE-ID",
                    "HOST",
                    "CLIENT-ID",
                    "#PARTITIONS",
                    "ASSIGNMENT"
                ],
                vec!["g", "m1", "-", "/127.0.0.1", "client-m1", "3", "a:0,1;b:0"],
                vec!["g", "m2", "static-2", "/127.0.0.1", "client-m2", "0", "-"],
            ]
        );
        let coordinator = Coordinator {
            node_id: 3,
            host: "broker3".to_string(),
            port: 9092,
        };
        let text = format_state(&g, &coordinator);
        assert_eq!(
            text,
            "\
GROUP           COORDINATOR (ID)          ASSIGNMENT-STRATEGY  STATE                #MEMBERS
g               broker3:9092  (3)         range                Stable               2
"
        );
        g.protocol.clear();
        g.members.clear();
        g.state = "Empty".to_string();
        assert!(format_state(&g, &coordinator).contains(" -    "));
    }

    #[test]
    fn listed_groups_keep_consumer_groups_and_fall_back_for_old_versions() {
        let listed = |id: &str, protocol: &str, state: &str, ty: &str| {
            list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol))
                .with_group_state(str_bytes(state))
                .with_group_type(str_bytes(ty))
        };
        let response = ListGroupsResponse::default().with_groups(vec![
            listed("c1", "consumer", "Stable", "classic"),
            listed("simple", "", "Empty", "classic"),
            listed("connect", "connect", "Stable", "classic"),
            listed("new", "consumer", "Reconciling", "consumer"),
            listed("share", "share", "Stable", "share"),
        ]);
        let at5: Vec<(String, String, String)> = listed_groups(&response, 5)
            .into_iter()
            .map(|g| (g.group_id, g.group_type, g.state))
            .collect();
        assert_eq!(
            at5,
            vec![
                ("c1".into(), "Classic".into(), "Stable".into()),
                ("simple".into(), "Classic".into(), "Empty".into()),
                ("new".into(), "Consumer".into(), "Reconciling".into()),
            ]
        );
        let old = ListGroupsResponse::default().with_groups(vec![listed("c1", "consumer", "", "")]);
        let at3 = listed_groups(&old, 3);
        assert_eq!(at3[0].group_type, "Classic");
        assert_eq!(at3[0].state, "Unknown");
        let merged: BTreeMap<String, ListedGroup> = listed_groups(&response, 5)
            .into_iter()
            .map(|g| (g.group_id.clone(), g))
            .collect();
        let text = format_list(&merged);
        assert_eq!(
            text,
            "\
GROUP           TYPE                 STATE
c1              Classic              Stable
new             Consumer             Reconciling
simple          Classic              Empty
"
        );
    }

    #[test]
    fn reset_table_lists_new_offsets() {
        let offsets: BTreeMap<Tp, i64> = [(tp("orders", 0), 4), (tp("orders", 1), 0)].into();
        assert_eq!(
            format_reset("payments", &offsets),
            "\
GROUP           TOPIC           PARTITION  NEW-OFFSET
payments        orders          0          4
payments        orders          1          0
"
        );
    }

    /// `riffle groups` as clap sees it.
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(line: &str) -> Result<Args, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("groups").chain(line.split_whitespace()))
            .map(|c| c.args)
    }

    #[test]
    fn command_line_follows_kafkas_options() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let args = parse("--bootstrap-server b:1 reset-offsets --group g --topic t:0,1 --topic u --shift-by -2 --execute")
            .expect("valid");
        assert_eq!(args.cluster.bootstrap_server.as_deref(), Some("b:1"));
        let GroupsCommand::ResetOffsets {
            topic,
            shift_by,
            execute,
            ..
        } = args.command
        else {
            panic!("reset-offsets");
        };
        assert_eq!(topic.len(), 2);
        assert_eq!(shift_by, Some(-2));
        assert!(execute);
        // The global options may also follow the subcommand.
        let args = parse("list --state stable,Empty --bootstrap-server b:1 --timeout-ms 5")
            .expect("valid");
        assert_eq!(args.cluster.timeout_ms, 5);
        let GroupsCommand::List { states } = args.command else {
            panic!("list");
        };
        assert_eq!(states, ["Stable", "Empty"]);
        let args = parse("reset-offsets --group g --all-topics --to-datetime 2024-03-01T12:30:00Z")
            .expect("valid");
        let GroupsCommand::ResetOffsets { to_datetime, .. } = args.command else {
            panic!("reset-offsets");
        };
        assert_eq!(to_datetime, Some(1_709_296_200_000));
        for bad in [
            "reset-offsets --group g --topic t",
            "reset-offsets --group g --to-earliest",
            "reset-offsets --group g --all-topics --topic t --to-earliest",
            "reset-offsets --group g --all-topics --to-earliest --to-latest",
            "reset-offsets --group g --all-topics --to-earliest --dry-run --execute",
            "reset-offsets --group g --topic t:x --to-earliest",
            "reset-offsets --group g --all-topics --to-datetime yesterday",
            "describe g --members --state",
            "list --state Running",
            "delete",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.exit_code(), 2, "{bad}: usage errors exit with 2");
        }
    }
}
