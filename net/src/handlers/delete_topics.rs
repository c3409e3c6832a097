//! DeleteTopics (v1-v6): by name, or by topic id from v6.

use std::rc::Rc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::{str_bytes, uuid};
use crate::broker::Broker;
use crate::errors;
use crate::topics;

pub async fn handle(
    broker: &Rc<Broker>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // (name as asked, id as asked)
    let wanted: Vec<(Option<String>, u128)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.to_string()),
                    t.topic_id.as_u128(),
                )
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), 0))
            .collect()
    };
    let mut resp = DeleteTopicsResponse::default();
    for (name, id) in wanted {
        let mut out = DeletableTopicResult::default();
        out.topic_id = uuid(id);
        let resolved = match &name {
            Some(n) => Some(n.clone()),
            None => broker
                .store
                .snapshot()
                .topic_by_id(id)
                .map(|t| t.name.clone()),
        };
        out.name = resolved.clone().map(|n| TopicName(str_bytes(n)));
        match resolved {
            None => {
                out.error_code = errors::UNKNOWN_TOPIC_ID;
            }
            Some(n) => match topics::delete(broker, &n).await {
                Ok(t) => {
                    if version >= 6 {
                        out.topic_id = uuid(t.topic_id);
                    }
                }
                Err(e) => {
                    out.error_code = e.code;
                    out.error_message = Some(str_bytes(e.message));
                }
            },
        }
        resp.responses.push(out);
    }
    resp
}
