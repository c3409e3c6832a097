//! DescribeCluster (v0-v1): this one broker, which is also the controller.

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::broker::Broker;

pub fn handle(
    broker: &Rc<Broker>,
    req: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default();
    resp.cluster_id = str_bytes(broker.config.cluster_id.clone());
    resp.controller_id = BrokerId(broker.node_id());
    resp.endpoint_type = req.endpoint_type;
    resp.cluster_authorized_operations = i32::MIN;
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(broker.node_id());
    b.host = str_bytes(broker.advertised_host.clone());
    b.port = i32::from(broker.advertised_port);
    resp.brokers = vec![b];
    resp
}
