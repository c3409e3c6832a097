//! ApiVersions (v0-v4): the advertised table. A version we do not serve gets
//! UNSUPPORTED_VERSION with the table, encoded as v0 so any client can read it.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use crate::errors;
use crate::versions::ADVERTISED;

pub fn handle(error_code: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = ADVERTISED
        .iter()
        .map(|(key, v)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(v.min)
                .with_max_version(v.max)
        })
        .collect();
    r
}

pub fn ok() -> ApiVersionsResponse {
    handle(errors::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn advertises_produce_from_v0_and_fetch_from_v4() {
        let r = ok();
        let produce = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .expect("produce");
        assert_eq!((produce.min_version, produce.max_version), (0, 12));
        let fetch = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Fetch as i16)
            .expect("fetch");
        assert_eq!((fetch.min_version, fetch.max_version), (4, 17));
    }
}
