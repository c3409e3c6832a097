//! Kafka's topic-name rules: 1..=249 bytes of `[a-zA-Z0-9._-]`, not `.` or `..`.

use crate::limits::TOPIC_NAME_BYTES_MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name {0:?} is reserved")]
    Reserved(String),
    #[error("topic name of {0} bytes is longer than {TOPIC_NAME_BYTES_MAX}")]
    TooLong(usize),
    #[error("topic name {0:?} has characters outside [a-zA-Z0-9._-]")]
    BadCharacter(String),
}

pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Reserved(name.to_string()));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(TopicNameError::TooLong(name.len()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(TopicNameError::BadCharacter(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules_are_enforced() {
        for ok in ["a", "orders", "my_topic-1.v2", &"x".repeat(249)] {
            assert_eq!(validate_topic_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert!(matches!(
            validate_topic_name(".."),
            Err(TopicNameError::Reserved(_))
        ));
        assert!(matches!(
            validate_topic_name(&"x".repeat(250)),
            Err(TopicNameError::TooLong(250))
        ));
        for bad in ["a b", "a/b", "../etc", "é", "a\0"] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(TopicNameError::BadCharacter(_))
                ),
                "{bad}"
            );
        }
    }
}
