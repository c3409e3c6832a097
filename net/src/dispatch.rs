//! Request dispatch in two steps: [`decode_request`] (version check and body decode,
//! pure, run by the connection's reader so a bad request closes the connection before
//! anything after it is read) and [`handle`] (the handler and response framing). A request we
//! cannot parse, or an API or version we do not serve, is a [`CodecError`] and the
//! connection closes (Kafka does the same); ApiVersions is the exception the protocol
//! makes: an unsupported version gets UNSUPPORTED_VERSION and the version table.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::*;

use crate::broker::Broker;
use crate::codec::{decode_body, encode_response, CodecError, RequestFrame};
use crate::errors;
use crate::group::consumer::handlers as group_consumer;
use crate::group::handlers as group;
use crate::handlers;
use crate::versions;

/// A decoded request body, one variant per served API.
#[derive(Debug)]
pub enum Body {
    /// ApiVersions at a version we do not serve: answered with UNSUPPORTED_VERSION.
    ApiVersionsUnsupported,
    ApiVersions(ApiVersionsRequest),
    Metadata(MetadataRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    DescribeCluster(DescribeClusterRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    ElectLeaders(ElectLeadersRequest),
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    ListPartitionReassignments(ListPartitionReassignmentsRequest),
    DescribeLogDirs(DescribeLogDirsRequest),
    DeleteRecords(DeleteRecordsRequest),
    InitProducerId(InitProducerIdRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups(ListGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
    OffsetDelete(OffsetDeleteRequest),
    /// With the request header's client id (ConsumerGroupDescribe shows it per member).
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest, String),
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
}

/// A request ready for its handler.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub body: Body,
}

/// Checks the version and decodes the body. Pure: no broker state, no I/O.
pub fn decode_request(frame: RequestFrame) -> Result<Request, CodecError> {
    let key = frame.api_key;
    let version = frame.version();
    let correlation_id = frame.header.correlation_id;
    let mut raw = frame.body;
    let served = versions::served(key);
    if !served.is_some_and(|v| v.min <= version && version <= v.max) {
        if key == ApiKey::ApiVersions {
            return Ok(Request {
                api_key: key,
                version: 0,
                correlation_id,
                body: Body::ApiVersionsUnsupported,
            });
        }
        return Err(CodecError::UnsupportedVersion { key, version });
    }
    let body = match key {
        ApiKey::ApiVersions => Body::ApiVersions(decode_body(&mut raw, version, "ApiVersions")?),
        ApiKey::Metadata => Body::Metadata(decode_body(&mut raw, version, "Metadata")?),
        ApiKey::Produce => Body::Produce(decode_body(&mut raw, version, "Produce")?),
        ApiKey::Fetch => Body::Fetch(decode_body(&mut raw, version, "Fetch")?),
        ApiKey::ListOffsets => Body::ListOffsets(decode_body(&mut raw, version, "ListOffsets")?),
        ApiKey::CreateTopics => Body::CreateTopics(decode_body(&mut raw, version, "CreateTopics")?),
        ApiKey::DeleteTopics => Body::DeleteTopics(decode_body(&mut raw, version, "DeleteTopics")?),
        ApiKey::CreatePartitions => {
            Body::CreatePartitions(decode_body(&mut raw, version, "CreatePartitions")?)
        }
        ApiKey::DescribeConfigs => {
            Body::DescribeConfigs(decode_body(&mut raw, version, "DescribeConfigs")?)
        }
        ApiKey::AlterConfigs => Body::AlterConfigs(decode_body(&mut raw, version, "AlterConfigs")?),
        ApiKey::IncrementalAlterConfigs => Body::IncrementalAlterConfigs(decode_body(
            &mut raw,
            version,
            "IncrementalAlterConfigs",
        )?),
        ApiKey::ElectLeaders => Body::ElectLeaders(decode_body(&mut raw, version, "ElectLeaders")?),
        ApiKey::AlterPartitionReassignments => Body::AlterPartitionReassignments(decode_body(
            &mut raw,
            version,
            "AlterPartitionReassignments",
        )?),
        ApiKey::ListPartitionReassignments => Body::ListPartitionReassignments(decode_body(
            &mut raw,
            version,
            "ListPartitionReassignments",
        )?),
        ApiKey::OffsetForLeaderEpoch => {
            Body::OffsetForLeaderEpoch(decode_body(&mut raw, version, "OffsetForLeaderEpoch")?)
        }
        ApiKey::DescribeCluster => {
            Body::DescribeCluster(decode_body(&mut raw, version, "DescribeCluster")?)
        }
        ApiKey::DescribeLogDirs => {
            Body::DescribeLogDirs(decode_body(&mut raw, version, "DescribeLogDirs")?)
        }
        ApiKey::DeleteRecords => {
            Body::DeleteRecords(decode_body(&mut raw, version, "DeleteRecords")?)
        }
        ApiKey::InitProducerId => {
            Body::InitProducerId(decode_body(&mut raw, version, "InitProducerId")?)
        }
        ApiKey::FindCoordinator => {
            Body::FindCoordinator(decode_body(&mut raw, version, "FindCoordinator")?)
        }
        ApiKey::JoinGroup => Body::JoinGroup(decode_body(&mut raw, version, "JoinGroup")?),
        ApiKey::SyncGroup => Body::SyncGroup(decode_body(&mut raw, version, "SyncGroup")?),
        ApiKey::Heartbeat => Body::Heartbeat(decode_body(&mut raw, version, "Heartbeat")?),
        ApiKey::LeaveGroup => Body::LeaveGroup(decode_body(&mut raw, version, "LeaveGroup")?),
        ApiKey::OffsetCommit => Body::OffsetCommit(decode_body(&mut raw, version, "OffsetCommit")?),
        ApiKey::OffsetFetch => Body::OffsetFetch(decode_body(&mut raw, version, "OffsetFetch")?),
        ApiKey::DescribeGroups => {
            Body::DescribeGroups(decode_body(&mut raw, version, "DescribeGroups")?)
        }
        ApiKey::ListGroups => Body::ListGroups(decode_body(&mut raw, version, "ListGroups")?),
        ApiKey::DeleteGroups => Body::DeleteGroups(decode_body(&mut raw, version, "DeleteGroups")?),
        ApiKey::OffsetDelete => Body::OffsetDelete(decode_body(&mut raw, version, "OffsetDelete")?),
        ApiKey::ConsumerGroupHeartbeat => Body::ConsumerGroupHeartbeat(
            decode_body(&mut raw, version, "ConsumerGroupHeartbeat")?,
            group_consumer::client_id(frame.header.client_id.as_deref()),
        ),
        ApiKey::ConsumerGroupDescribe => {
            Body::ConsumerGroupDescribe(decode_body(&mut raw, version, "ConsumerGroupDescribe")?)
        }
        other => {
            return Err(CodecError::UnsupportedVersion {
                key: other,
                version,
            })
        }
    };
    Ok(Request {
        api_key: key,
        version,
        correlation_id,
        body,
    })
}

/// Runs the handler and frames the response. `Ok(None)`: no response is due (Produce
/// with acks=0).
pub async fn handle(broker: &Rc<Broker>, request: Request) -> Result<Option<Bytes>, CodecError> {
    let Request {
        api_key: key,
        version,
        correlation_id,
        body,
    } = request;
    macro_rules! respond {
        ($resp:expr) => {
            encode_response(key, version, correlation_id, &$resp).map(Some)
        };
    }
    match body {
        Body::ApiVersionsUnsupported => {
            respond!(handlers::api_versions::handle(errors::UNSUPPORTED_VERSION))
        }
        Body::ApiVersions(_) => respond!(handlers::api_versions::ok()),
        Body::Produce(req) => match handlers::produce::handle(broker, req, version).await {
            Some(resp) => respond!(resp),
            None => Ok(None),
        },
        Body::Metadata(req) => respond!(handlers::metadata::handle(broker, req, version).await),
        Body::Fetch(req) => respond!(handlers::fetch::handle(broker, req, version).await),
        Body::ListOffsets(req) => {
            respond!(handlers::list_offsets::handle(broker, req, version).await)
        }
        Body::CreateTopics(req) => {
            respond!(handlers::create_topics::handle(broker, req, version).await)
        }
        Body::DeleteTopics(req) => {
            respond!(handlers::delete_topics::handle(broker, req, version).await)
        }
        Body::CreatePartitions(req) => {
            respond!(handlers::create_partitions::handle(broker, req, version).await)
        }
        Body::DescribeConfigs(req) => respond!(handlers::configs::describe(broker, req, version)),
        Body::AlterConfigs(req) => respond!(handlers::configs::alter(broker, req, version).await),
        Body::IncrementalAlterConfigs(req) => {
            respond!(handlers::configs::incremental_alter(broker, req, version).await)
        }
        Body::DescribeCluster(req) => {
            respond!(handlers::describe_cluster::handle(broker, req, version))
        }
        Body::ElectLeaders(req) => {
            respond!(handlers::reassignments::elect_leaders(broker, req, version).await)
        }
        Body::AlterPartitionReassignments(req) => {
            respond!(handlers::reassignments::alter_reassignments(broker, req, version).await)
        }
        Body::ListPartitionReassignments(req) => {
            respond!(handlers::reassignments::list_reassignments(
                broker, req, version
            ))
        }
        Body::OffsetForLeaderEpoch(req) => {
            respond!(handlers::offset_for_leader_epoch::handle(broker, req, version).await)
        }
        Body::DescribeLogDirs(req) => {
            respond!(handlers::describe_log_dirs::handle(broker, req, version).await)
        }
        Body::DeleteRecords(req) => {
            respond!(handlers::delete_records::handle(broker, req, version).await)
        }
        Body::InitProducerId(req) => {
            respond!(handlers::init_producer_id::handle(broker, req, version).await)
        }
        Body::FindCoordinator(req) => {
            respond!(group::find_coordinator(broker, req, version).await)
        }
        Body::JoinGroup(req) => respond!(group::join_group(broker, req, version).await),
        Body::SyncGroup(req) => respond!(group::sync_group(broker, req, version).await),
        Body::Heartbeat(req) => respond!(group::heartbeat(broker, req, version).await),
        Body::LeaveGroup(req) => respond!(group::leave_group(broker, req, version).await),
        Body::OffsetCommit(req) => respond!(group::offset_commit(broker, req, version).await),
        Body::OffsetFetch(req) => respond!(group::offset_fetch(broker, req, version).await),
        Body::DescribeGroups(req) => respond!(group::describe_groups(broker, req, version).await),
        Body::ListGroups(req) => respond!(group::list_groups(broker, req, version).await),
        Body::DeleteGroups(req) => respond!(group::delete_groups(broker, req, version).await),
        Body::OffsetDelete(req) => respond!(group::offset_delete(broker, req, version).await),
        Body::ConsumerGroupHeartbeat(req, client_id) => {
            respond!(group_consumer::heartbeat(broker, req, version, client_id).await)
        }
        Body::ConsumerGroupDescribe(req) => {
            respond!(group_consumer::describe(broker, req, version).await)
        }
    }
}
