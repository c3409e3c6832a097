//! CreatePartitions (v0-v3), with validate_only.

use std::rc::Rc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::errors;
use crate::topics;

pub async fn handle(
    broker: &Rc<Broker>,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    for t in &req.topics {
        let mut out = CreatePartitionsTopicResult::default();
        out.name = t.name.clone();
        let me = broker.node_id();
        let bad_assignment = t.assignments.as_ref().is_some_and(|a| {
            a.iter()
                .any(|x| x.broker_ids.len() != 1 || x.broker_ids[0].0 != me)
        });
        let result = if bad_assignment {
            Err(topics::AdminError::new(
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!("broker {me} is the only broker"),
            ))
        } else {
            topics::grow(broker, &t.name.0, t.count, req.validate_only).await
        };
        if let Err(e) = result {
            out.error_code = e.code;
            out.error_message = Some(str_bytes(e.message));
        }
        resp.results.push(out);
    }
    resp
}
