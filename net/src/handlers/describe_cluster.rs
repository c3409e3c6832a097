//! DescribeCluster (v0-v1): the live brokers and the active controller (on a single
//! broker: this one, which is also the controller).

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
    resp.controller_id = BrokerId(broker.controller_id());
    resp.endpoint_type = req.endpoint_type;
    resp.cluster_authorized_operations = i32::MIN;
    resp.brokers = broker
        .live_brokers()
        .into_iter()
        .map(|a| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(a.id);
            b.host = str_bytes(a.host);
            b.port = a.port;
            b.rack = a.rack.map(str_bytes);
            b
        })
        .collect();
    resp
}
