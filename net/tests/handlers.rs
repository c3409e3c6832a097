//! Handlers driven in-process through `dispatch::handle` on a real one-shard engine in a
//! temp directory: topic admin, configs, produce/fetch/list-offsets/delete-records and
//! log dirs, checked by the error codes and values the responses carry.

#[macro_use]
mod in_process;
use in_process::*;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn batch(values: &[&str], timestamp: i64) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).expect("batch");
    buf.freeze()
}

#[test]
fn topic_admin_and_configs_through_the_handlers() {
    let findings = on_engine(|b| async move {
        let mut f = Vec::new();
        let topic = CreatableTopic::default()
            .with_name(name("orders"))
            .with_num_partitions(3)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("60000")))]);
        let dry = CreatableTopic::default()
            .with_name(name("dry"))
            .with_num_partitions(1)
            .with_replication_factor(1);
        let rf3 = CreatableTopic::default()
            .with_name(name("rf3"))
            .with_num_partitions(1)
            .with_replication_factor(3);
        let r: CreateTopicsResponse = call(
            &b,
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![topic]),
        )
        .await;
        check!(
            f,
            r.topics[0].error_code == 0,
            "create orders: {:?}",
            r.topics[0]
        );
        check!(
            f,
            r.topics[0].num_partitions == 3,
            "create orders partitions: {}",
            r.topics[0].num_partitions
        );
        let r: CreateTopicsResponse = call(
            &b,
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default()
                .with_topics(vec![dry, rf3])
                .with_validate_only(true),
        )
        .await;
        check!(
            f,
            r.topics[0].error_code == 0,
            "validate-only dry: {}",
            r.topics[0].error_code
        );
        check!(
            f,
            r.topics[1].error_code == 38,
            "rf 3 on one broker: {}",
            r.topics[1].error_code
        );

        let r: MetadataResponse = call(
            &b,
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
        let names: Vec<String> = r
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        check!(
            f,
            names == vec!["orders".to_string()],
            "validate_only created nothing: {names:?}"
        );
        check!(f, r.topics[0].partitions.len() == 3, "3 partitions listed");

        let grow = |count| {
            CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name("orders"))
                .with_count(count)])
        };
        let r: CreatePartitionsResponse = call(&b, ApiKey::CreatePartitions, 3, &grow(5)).await;
        check!(
            f,
            r.results[0].error_code == 0,
            "grow to 5: {}",
            r.results[0].error_code
        );
        let r: CreatePartitionsResponse = call(&b, ApiKey::CreatePartitions, 3, &grow(4)).await;
        check!(
            f,
            r.results[0].error_code == 37,
            "shrink refused with INVALID_PARTITIONS: {}",
            r.results[0].error_code
        );

        let describe = |topic: &str| {
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(topic))
                    .with_configuration_keys(None),
            ])
        };
        let r: DescribeConfigsResponse =
            call(&b, ApiKey::DescribeConfigs, 4, &describe("orders")).await;
        let get = |r: &DescribeConfigsResponse, key: &str| {
            r.results[0]
                .configs
                .iter()
                .find(|c| c.name.as_str() == key)
                .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
        };
        check!(
            f,
            get(&r, "retention.ms").as_deref() == Some("60000"),
            "retention.ms override"
        );
        check!(
            f,
            get(&r, "cleanup.policy").as_deref() == Some("delete"),
            "cleanup.policy default"
        );
        let r: DescribeConfigsResponse =
            call(&b, ApiKey::DescribeConfigs, 4, &describe("nope")).await;
        check!(
            f,
            r.results[0].error_code == 3,
            "unknown topic: {}",
            r.results[0].error_code
        );

        let alter = |key: &str, op: i8, value: &str| {
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(s(key))
                        .with_config_operation(op)
                        .with_value(Some(s(value)))]),
            ])
        };
        let r: IncrementalAlterConfigsResponse = call(
            &b,
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter("cleanup.policy", 2, "compact"),
        )
        .await;
        check!(
            f,
            r.responses[0].error_code == 0,
            "append cleanup.policy: {}",
            r.responses[0].error_code
        );
        let r: IncrementalAlterConfigsResponse = call(
            &b,
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter("segment.bytes", 0, "lots"),
        )
        .await;
        check!(
            f,
            r.responses[0].error_code == 40,
            "bad value is INVALID_CONFIG: {}",
            r.responses[0].error_code
        );
        let r: DescribeConfigsResponse =
            call(&b, ApiKey::DescribeConfigs, 4, &describe("orders")).await;
        check!(
            f,
            get(&r, "cleanup.policy").as_deref() == Some("delete,compact"),
            "appended: {:?}",
            get(&r, "cleanup.policy")
        );

        let delete = DeleteTopicsRequest::default().with_topic_names(vec![name("orders")]);
        let r: DeleteTopicsResponse = call(&b, ApiKey::DeleteTopics, 5, &delete).await;
        check!(
            f,
            r.responses[0].error_code == 0,
            "delete: {}",
            r.responses[0].error_code
        );
        let r: DeleteTopicsResponse = call(&b, ApiKey::DeleteTopics, 5, &delete).await;
        check!(
            f,
            r.responses[0].error_code == 3,
            "delete again: {}",
            r.responses[0].error_code
        );
        f
    });
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn produce_fetch_offsets_delete_records_and_log_dirs_through_the_handlers() {
    let findings = on_engine(|b| async move {
        let mut f = Vec::new();
        let produce = |values: &'static [&'static str], ts| {
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name("events"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(values, ts)))])])
        };
        for (values, ts) in [
            (&["a", "b"][..], 1000),
            (&["c"][..], 2000),
            (&["d", "e"][..], 3000),
        ] {
            let r: ProduceResponse = call(&b, ApiKey::Produce, 11, &produce(values, ts)).await;
            let p = &r.responses[0].partition_responses[0];
            check!(
                f,
                p.error_code == 0,
                "produce: {} {:?}",
                p.error_code,
                p.error_message
            );
        }
        let fetch = |offset: i64| {
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(name("events"))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20)])])
        };
        let r: FetchResponse = call(&b, ApiKey::Fetch, 12, &fetch(0)).await;
        let p = &r.responses[0].partitions[0];
        check!(
            f,
            p.error_code == 0 && p.high_watermark == 5,
            "fetch: {} hw {}",
            p.error_code,
            p.high_watermark
        );
        let mut records = p.records.clone().unwrap_or_default();
        let values: Vec<Bytes> =
            kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records)
                .map(|sets| {
                    sets.into_iter()
                        .flat_map(|s| s.records)
                        .filter_map(|r| r.value)
                        .collect()
                })
                .unwrap_or_default();
        check!(
            f,
            values == ["a", "b", "c", "d", "e"].map(|v| Bytes::from(v.as_bytes())),
            "all five records back: {values:?}"
        );

        let offsets = |ts: i64| {
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name("events"))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(ts)])])
        };
        let at = |r: ListOffsetsResponse| {
            (
                r.topics[0].partitions[0].offset,
                r.topics[0].partitions[0].timestamp,
            )
        };
        check!(
            f,
            at(call(&b, ApiKey::ListOffsets, 9, &offsets(-1)).await).0 == 5,
            "latest"
        );
        check!(
            f,
            at(call(&b, ApiKey::ListOffsets, 9, &offsets(-2)).await).0 == 0,
            "earliest"
        );
        check!(
            f,
            at(call(&b, ApiKey::ListOffsets, 9, &offsets(2000)).await) == (2, 2000),
            "by timestamp 2000"
        );
        check!(
            f,
            at(call(&b, ApiKey::ListOffsets, 9, &offsets(2500)).await) == (3, 3000),
            "by timestamp 2500"
        );
        check!(
            f,
            at(call(&b, ApiKey::ListOffsets, 9, &offsets(-3)).await).1 == 3000,
            "max timestamp"
        );

        let delete =
            DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name("events"))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(2)])]);
        let r: DeleteRecordsResponse = call(&b, ApiKey::DeleteRecords, 2, &delete).await;
        let p = &r.topics[0].partitions[0];
        check!(
            f,
            p.error_code == 0 && p.low_watermark == 2,
            "delete records: {} low {}",
            p.error_code,
            p.low_watermark
        );
        check!(
            f,
            at(call(&b, ApiKey::ListOffsets, 9, &offsets(-2)).await).0 == 2,
            "earliest after delete"
        );
        let r: FetchResponse = call(&b, ApiKey::Fetch, 12, &fetch(0)).await;
        check!(
            f,
            r.responses[0].partitions[0].error_code == 1,
            "fetch below log start is OFFSET_OUT_OF_RANGE"
        );

        let r: DescribeLogDirsResponse = call(
            &b,
            ApiKey::DescribeLogDirs,
            4,
            &DescribeLogDirsRequest::default().with_topics(None),
        )
        .await;
        let size = r.results[0]
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "events")
            .map(|t| t.partitions[0].partition_size);
        check!(
            f,
            size.is_some_and(|s| s > 0),
            "log dir lists events with its size: {size:?}"
        );

        let r: DescribeClusterResponse = call(
            &b,
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default(),
        )
        .await;
        check!(
            f,
            r.brokers.len() == 1 && r.controller_id == BrokerId(0),
            "one broker, the controller"
        );
        f
    });
    assert!(findings.is_empty(), "{findings:#?}");
}
