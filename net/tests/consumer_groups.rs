//! The KIP-848 consumer protocol driven in-process through `dispatch::handle` on a real
//! one-shard engine: ConsumerGroupHeartbeat joins, revocation before assignment, leave,
//! fencing and request errors; OffsetCommit/OffsetFetch v9 member epochs; how ListGroups,
//! DescribeGroups, ConsumerGroupDescribe, JoinGroup and DeleteGroups see such a group.
//! (The real-client checks are in scripts/interop/tests/test_groups_consumer_protocol.py.)

#[macro_use]
mod in_process;
use in_process::*;

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use sluice_net::broker::Broker;

const GROUP: &str = "kip848";

fn join(member: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![name("orders")]))
        .with_topic_partitions(Some(vec![]))
}

fn beat(
    member: &str,
    epoch: i32,
    owned: Option<&BTreeSet<i32>>,
    topic_id: uuid::Uuid,
) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(owned.map(|ps| {
            vec![TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_partitions(ps.iter().copied().collect())]
        }))
}

fn partitions(r: &ConsumerGroupHeartbeatResponse) -> Option<BTreeSet<i32>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().copied())
            .collect()
    })
}

async fn heartbeat(
    b: &Rc<Broker>,
    req: &ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    call(b, ApiKey::ConsumerGroupHeartbeat, 1, req).await
}

fn commit(member: &str, epoch: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(epoch)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name("orders"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])])
}

fn fetch(member: &str, epoch: i32) -> OffsetFetchRequest {
    OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_member_id(Some(s(member)))
        .with_member_epoch(epoch)
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(name("orders"))
            .with_partition_indexes(vec![0])]))])
}

async fn listed(b: &Rc<Broker>, types: &[&str]) -> Vec<(String, String, String)> {
    let r: ListGroupsResponse = call(
        b,
        ApiKey::ListGroups,
        5,
        &ListGroupsRequest::default().with_types_filter(types.iter().map(|t| s(t)).collect()),
    )
    .await;
    r.groups
        .into_iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.group_type.to_string(),
                g.group_state.to_string(),
            )
        })
        .collect()
}

#[test]
fn consumer_protocol_through_the_handlers() {
    let findings = on_engine(|b| async move {
        let mut f = Vec::new();
        let r: CreateTopicsResponse = call(
            &b,
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("orders"))
                .with_num_partitions(4)
                .with_replication_factor(1)]),
        )
        .await;
        let topic_id = r.topics[0].topic_id;
        check!(f, r.topics[0].error_code == 0, "create: {:?}", r.topics[0]);

        // The Java consumer resolves assigned topic ids with Metadata by id and an empty name.
        let r: MetadataResponse = call(
            &b,
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_topic_id(topic_id)
                    .with_name(Some(name(""))),
            ])),
        )
        .await;
        check!(
            f,
            r.topics.len() == 1
                && r.topics[0].error_code == 0
                && r.topics[0].name.as_ref().map(|n| n.0.as_str()) == Some("orders")
                && r.topics[0].partitions.len() == 4,
            "metadata by topic id with an empty name: {:?}",
            r.topics
        );

        // Request errors.
        let r = heartbeat(&b, &join("m-a").with_server_assignor(Some(s("sticky")))).await;
        check!(f, r.error_code == 112, "unknown assignor: {}", r.error_code);
        let r = heartbeat(&b, &join("")).await;
        check!(
            f,
            r.error_code == 42,
            "v1 without a member id: {}",
            r.error_code
        );
        let r = heartbeat(&b, &join("m-a").with_subscribed_topic_regex(Some(s("or(")))).await;
        check!(f, r.error_code == 128, "bad regex: {}", r.error_code);
        let r = heartbeat(&b, &beat("m-a", 3, None, topic_id)).await;
        check!(
            f,
            r.error_code == 25,
            "heartbeat before joining: {}",
            r.error_code
        );

        // a joins and owns everything.
        let a1 = heartbeat(&b, &join("m-a")).await;
        check!(
            f,
            a1.error_code == 0 && a1.member_epoch == 1,
            "a joins: {:?}",
            a1
        );
        check!(
            f,
            a1.heartbeat_interval_ms == 5000,
            "heartbeat interval {}",
            a1.heartbeat_interval_ms
        );
        let all: BTreeSet<i32> = (0..4).collect();
        check!(
            f,
            partitions(&a1).as_ref() == Some(&all),
            "a owns all: {:?}",
            partitions(&a1)
        );
        check!(
            f,
            a1.assignment
                .as_ref()
                .is_some_and(|a| a.topic_partitions.iter().all(|t| t.topic_id == topic_id)),
            "assignment by topic id"
        );

        // b joins: nothing for b until a has given up its half.
        let b1 = heartbeat(&b, &join("m-b")).await;
        check!(
            f,
            b1.member_epoch == 2 && partitions(&b1) == Some(BTreeSet::new()),
            "b joins empty: {:?}",
            b1
        );
        let a2 = heartbeat(&b, &beat("m-a", 1, Some(&all), topic_id)).await;
        let kept = partitions(&a2).unwrap_or_default();
        check!(
            f,
            a2.member_epoch == 1 && kept.len() == 2,
            "a told to keep two, epoch 1: {:?}",
            a2
        );
        let b2 = heartbeat(&b, &beat("m-b", 2, Some(&BTreeSet::new()), topic_id)).await;
        check!(
            f,
            partitions(&b2) == Some(BTreeSet::new()),
            "b still waits: {:?}",
            b2
        );

        // Offsets with member epochs, while a is still at epoch 1.
        let r: OffsetCommitResponse =
            call(&b, ApiKey::OffsetCommit, 9, &commit("m-a", 2, 10)).await;
        check!(
            f,
            r.topics[0].partitions[0].error_code == 113,
            "commit ahead: {:?}",
            r.topics[0]
        );
        let r: OffsetCommitResponse =
            call(&b, ApiKey::OffsetCommit, 8, &commit("m-a", 1, 10)).await;
        check!(
            f,
            r.topics[0].partitions[0].error_code == 35,
            "commit v8 from a consumer member: {:?}",
            r.topics[0]
        );
        let r: OffsetCommitResponse =
            call(&b, ApiKey::OffsetCommit, 9, &commit("m-a", 1, 10)).await;
        check!(
            f,
            r.topics[0].partitions[0].error_code == 0,
            "commit: {:?}",
            r.topics[0]
        );
        let r: OffsetCommitResponse =
            call(&b, ApiKey::OffsetCommit, 9, &commit("m-z", 1, 10)).await;
        check!(
            f,
            r.topics[0].partitions[0].error_code == 25,
            "commit unknown member: {:?}",
            r.topics[0]
        );

        // a confirms; b gets the other two.
        let a3 = heartbeat(&b, &beat("m-a", 1, Some(&kept), topic_id)).await;
        check!(f, a3.member_epoch == 2, "a moves to epoch 2: {:?}", a3);
        let b3 = heartbeat(&b, &beat("m-b", 2, Some(&BTreeSet::new()), topic_id)).await;
        let b_owned = partitions(&b3).unwrap_or_default();
        check!(
            f,
            b_owned.len() == 2 && b_owned.is_disjoint(&kept),
            "b gets the rest: {:?} vs {:?}",
            b_owned,
            kept
        );

        let r: OffsetFetchResponse = call(&b, ApiKey::OffsetFetch, 9, &fetch("m-a", 2)).await;
        check!(
            f,
            r.groups[0].error_code == 0
                && r.groups[0].topics[0].partitions[0].committed_offset == 10,
            "fetch: {:?}",
            r.groups[0]
        );
        let r: OffsetFetchResponse = call(&b, ApiKey::OffsetFetch, 9, &fetch("m-a", 1)).await;
        check!(
            f,
            r.groups[0].error_code == 113,
            "fetch with a stale epoch: {}",
            r.groups[0].error_code
        );

        // How the other group APIs see it.
        let l = listed(&b, &["consumer"]).await;
        check!(
            f,
            l == vec![(
                GROUP.to_string(),
                "consumer".to_string(),
                "Stable".to_string()
            )],
            "ListGroups consumer: {:?}",
            l
        );
        check!(
            f,
            listed(&b, &["classic"]).await.is_empty(),
            "ListGroups classic shows it"
        );
        let r: DescribeGroupsResponse = call(
            &b,
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP))]),
        )
        .await;
        check!(
            f,
            r.groups[0].error_code == 0 && r.groups[0].group_state.as_str() == "Dead",
            "DescribeGroups: {:?}",
            r.groups[0]
        );
        let r: ConsumerGroupDescribeResponse = call(
            &b,
            ApiKey::ConsumerGroupDescribe,
            1,
            &ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(s(GROUP)), GroupId(s("nope"))]),
        )
        .await;
        let g = &r.groups[0];
        check!(
            f,
            g.error_code == 0
                && g.group_state.as_str() == "Stable"
                && g.group_epoch == 2
                && g.assignment_epoch == 2
                && g.assignor_name.as_str() == "uniform"
                && g.members.len() == 2,
            "ConsumerGroupDescribe: {:?}",
            g
        );
        check!(
            f,
            g.members.iter().all(|m| m.member_type == 1
                && m.client_id.as_str() == "in-process-test"
                && m.assignment
                    .topic_partitions
                    .iter()
                    .all(|t| t.topic_name.0.as_str() == "orders")),
            "described members: {:?}",
            g.members
        );
        check!(
            f,
            r.groups[1].error_code == 69,
            "describe unknown group: {:?}",
            r.groups[1]
        );
        let r: JoinGroupResponse = call(
            &b,
            ApiKey::JoinGroup,
            9,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default().with_name(s("range"))
                ]),
        )
        .await;
        check!(
            f,
            r.error_code == 23,
            "classic join to a consumer group: {}",
            r.error_code
        );
        let r: DeleteGroupsResponse = call(
            &b,
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(GROUP))]),
        )
        .await;
        check!(
            f,
            r.results[0].error_code == 68,
            "delete a live group: {}",
            r.results[0].error_code
        );

        // Fencing, then b leaves and a gets everything.
        let r = heartbeat(&b, &beat("m-a", 7, None, topic_id)).await;
        check!(f, r.error_code == 110, "epoch ahead: {}", r.error_code);
        let r = heartbeat(&b, &beat("m-b", -1, None, topic_id)).await;
        check!(
            f,
            r.error_code == 0 && r.member_epoch == -1,
            "b leaves: {:?}",
            r
        );
        let a4 = heartbeat(&b, &beat("m-a", 2, Some(&kept), topic_id)).await;
        check!(
            f,
            a4.member_epoch == 3 && partitions(&a4).as_ref() == Some(&all),
            "survivor: {:?}",
            a4
        );

        // a leaves: the group is Empty, keeps its offsets, and can be deleted.
        heartbeat(&b, &beat("m-a", -1, None, topic_id)).await;
        let l = listed(&b, &[]).await;
        check!(
            f,
            l == vec![(
                GROUP.to_string(),
                "consumer".to_string(),
                "Empty".to_string()
            )],
            "ListGroups after both left: {:?}",
            l
        );
        let r: OffsetFetchResponse = call(
            &b,
            ApiKey::OffsetFetch,
            9,
            &fetch("", -1).with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_member_epoch(-1)
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(name("orders"))
                    .with_partition_indexes(vec![0])]))]),
        )
        .await;
        check!(
            f,
            r.groups[0].error_code == 0
                && r.groups[0].topics[0].partitions[0].committed_offset == 10,
            "admin fetch after leave: {:?}",
            r.groups[0]
        );
        let r: DeleteGroupsResponse = call(
            &b,
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(GROUP))]),
        )
        .await;
        check!(
            f,
            r.results[0].error_code == 0,
            "delete the empty group: {}",
            r.results[0].error_code
        );
        check!(
            f,
            listed(&b, &[]).await.is_empty(),
            "deleted group still listed"
        );
        f
    });
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn client_ids_are_kept_bounded_at_a_char_boundary() {
    use sluice_net::group::consumer::handlers::client_id;
    let long = "é".repeat(200); // 400 bytes
    let kept = client_id(Some(&long));
    assert!(
        kept.len() <= 255 && long.starts_with(&kept),
        "{} bytes",
        kept.len()
    );
    assert_eq!(client_id(None), "");
    assert_eq!(client_id(Some("rdkafka")), "rdkafka");
}
