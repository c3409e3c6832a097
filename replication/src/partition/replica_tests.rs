//! Behaviour of the replica state machine in isolation, message by message. (The seed
//! sweep in tests/sim_cluster.rs covers the same machine under faults.)

use sluice_engine::batch::{build, stamp, TimestampStamp};
use sluice_engine::{LeaderEpoch, Offset};

use super::*;
use crate::ids::{BrokerId, PartitionEpoch};

const B1: BrokerId = BrokerId(1);
const B2: BrokerId = BrokerId(2);
const B3: BrokerId = BrokerId(3);

fn settings() -> ReplicaSettings {
    ReplicaSettings {
        replica_lag_time_max_ms: 1_000,
        min_insync_replicas: 2,
        keepalive_interval_ms: 100,
        retry_ms: 200,
    }
}

fn meta(leader: BrokerId, epoch: i32, pe: i32, isr: &[BrokerId]) -> LeaderAndIsr {
    LeaderAndIsr {
        leader: Some(leader),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: PartitionEpoch(pe),
        isr: isr.to_vec(),
        replicas: vec![B1, B2, B3],
    }
}

/// A stamped batch of `n` records at `base` in `epoch`.
fn batch(base: i64, n: usize, epoch: i32) -> Vec<u8> {
    let mut b = build::batch(n, 8, base as u8, 0);
    stamp(
        &mut b,
        Offset(base),
        LeaderEpoch(epoch),
        TimestampStamp::CreateTime,
    );
    b
}

fn msg(from: BrokerId, body: ReplicaBody) -> ReplicaMessage {
    ReplicaMessage {
        from: from.0,
        topic: "t".into(),
        partition: 0,
        body,
    }
}

fn ack(from: BrokerId, epoch: i32, durable: i64, echo_end: i64, echo_ms: i64) -> ReplicaMessage {
    msg(
        from,
        ReplicaBody::AppendAck {
            leader_epoch: epoch,
            status: AckStatus::Ok,
            durable_end: durable,
            log_end: durable,
            echo_leader_log_end: echo_end,
            echo_sent_ms: echo_ms,
        },
    )
}

fn sends(out: &[Output]) -> Vec<(BrokerId, ReplicaBody)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } => Some((*to, msg.body.clone())),
            _ => None,
        })
        .collect()
}

/// A leader in epoch 1 with followers 2 and 3 resumed at offset 0.
fn leader() -> PartitionReplica {
    let mut r = PartitionReplica::new(
        B1,
        "t",
        0,
        settings(),
        EpochCache::new(),
        Offset(0),
        Offset(0),
    );
    r.on_metadata(&meta(B1, 1, 1, &[B1, B2, B3]), 0);
    for f in [B2, B3] {
        r.on_message(
            msg(
                f,
                ReplicaBody::Resume {
                    leader_epoch: 1,
                    from: 0,
                },
            ),
            0,
        );
    }
    r.take_outputs();
    r
}

#[test]
fn acks_all_completes_only_when_every_isr_member_is_durable() {
    let mut r = leader();
    assert_eq!(r.epoch_for_append(true), Ok(LeaderEpoch(1)));
    let b = batch(0, 3, 1);
    r.on_leader_appended(Offset(0), Offset(3), &b, 10);
    r.await_high_watermark(77, Offset(3));
    let out = r.take_outputs();
    // Pushed to both followers at once, not fetched.
    let pushed: Vec<BrokerId> = sends(&out)
        .into_iter()
        .filter(|(_, b)| matches!(b, ReplicaBody::Append { base_offset: 0, .. }))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(pushed, vec![B2, B3]);
    r.on_local_durable(Offset(3), 11);
    r.on_message(ack(B2, 1, 3, 3, 10), 12);
    assert_eq!(r.high_watermark(), Offset(0), "B3 has not acked");
    assert!(!r
        .take_outputs()
        .iter()
        .any(|o| matches!(o, Output::ProduceDone { .. })));
    r.on_message(ack(B3, 1, 3, 3, 10), 13);
    assert_eq!(r.high_watermark(), Offset(3));
    assert!(r.take_outputs().contains(&Output::ProduceDone {
        request: 77,
        result: Ok(())
    }));
}

/// A follower the controller took out of the ISR (its broker was fenced: dead) acked
/// everything before it went. Its old acks must not make the leader propose it back - the
/// maximal ISR would then hold acks=all and the high watermark for a dead broker until
/// replica.lag.time.max.ms ran out. It is proposed again only after it resumed and caught up.
#[test]
fn a_follower_removed_by_the_controller_is_not_proposed_back_on_its_old_acks() {
    let mut r = leader();
    let b = batch(0, 3, 1);
    r.on_leader_appended(Offset(0), Offset(3), &b, 10);
    r.on_local_durable(Offset(3), 10);
    r.on_message(ack(B2, 1, 3, 3, 10), 12);
    r.on_message(ack(B3, 1, 3, 3, 10), 12);
    assert_eq!(r.high_watermark(), Offset(3));
    // B3's broker is fenced: the controller shrinks the ISR.
    r.on_metadata(&meta(B1, 1, 2, &[B1, B2]), 20);
    r.take_outputs();
    r.tick(25);
    let proposed_back = r
        .take_outputs()
        .into_iter()
        .any(|o| matches!(o, Output::AlterIsr { isr, .. } if isr.contains(&B3)));
    assert!(
        !proposed_back,
        "a fenced follower was proposed back on old acks"
    );
    // acks=all completes on the ISR the controller committed.
    r.await_high_watermark(7, Offset(6));
    let b = batch(3, 3, 1);
    r.on_leader_appended(Offset(3), Offset(6), &b, 30);
    r.on_local_durable(Offset(6), 30);
    r.on_message(ack(B2, 1, 6, 6, 30), 32);
    assert_eq!(r.high_watermark(), Offset(6));
    assert!(r.take_outputs().contains(&Output::ProduceDone {
        request: 7,
        result: Ok(())
    }));
    // B3 comes back: resumes, catches up, and is proposed again.
    r.on_message(
        msg(
            B3,
            ReplicaBody::Resume {
                leader_epoch: 1,
                from: 3,
            },
        ),
        40,
    );
    r.on_read_for_follower(B3, Offset(3), &b, 41);
    r.on_message(ack(B3, 1, 6, 6, 41), 42);
    r.tick(50);
    assert!(r
        .take_outputs()
        .into_iter()
        .any(|o| matches!(o, Output::AlterIsr { isr, .. } if isr.contains(&B3))));
}

#[test]
fn a_lagging_follower_is_proposed_out_of_the_isr_but_counts_until_committed() {
    let mut r = leader();
    r.on_leader_appended(Offset(0), Offset(2), &batch(0, 2, 1), 0);
    r.on_local_durable(Offset(2), 0);
    r.on_message(ack(B2, 1, 2, 2, 0), 5);
    r.take_outputs();
    // B2 keeps acking keepalives; B3 never acks: after replica.lag.time.max.ms the leader
    // proposes {1, 2}.
    r.on_message(ack(B2, 1, 2, 2, 1_400), 1_450);
    let out = r.take_outputs();
    assert!(out.contains(&Output::AlterIsr {
        leader_epoch: LeaderEpoch(1),
        partition_epoch: PartitionEpoch(1),
        isr: vec![B1, B2],
    }));
    assert_eq!(
        r.high_watermark(),
        Offset(0),
        "a shrink counts only once committed"
    );
    r.on_metadata(&meta(B1, 1, 2, &[B1, B2]), 1_510);
    assert_eq!(r.high_watermark(), Offset(2));
}

#[test]
fn a_follower_with_an_epoch_the_leader_never_had_truncates_to_its_own_end_of_the_shared_one() {
    // KIP-279: the follower led epoch 2 briefly (offsets 10..15 never replicated); the new
    // leader of epoch 3 only knows epochs 1 (ending at 12) and 3.
    let mut cache = EpochCache::new();
    cache.assign(LeaderEpoch(1), Offset(0));
    cache.assign(LeaderEpoch(2), Offset(10));
    let mut r = PartitionReplica::new(B2, "t", 0, settings(), cache, Offset(0), Offset(15));
    r.on_metadata(&meta(B1, 3, 5, &[B1, B2]), 0);
    let out = r.take_outputs();
    assert!(sends(&out).contains(&(
        B1,
        ReplicaBody::EpochEndQuery {
            leader_epoch: 3,
            query_epoch: 2
        }
    )));
    let answer = ReplicaBody::EpochEndAnswer {
        leader_epoch: 3,
        status: AckStatus::Ok,
        epoch: 1,
        end_offset: 12,
    };
    r.on_message(msg(B1, answer), 1);
    assert_eq!(
        r.take_outputs(),
        vec![Output::TruncateLocal { to: Offset(10) }],
        "min(leader's end of epoch 1 = 12, own end of epoch 1 = 10)"
    );
    r.on_truncated(Offset(10), 2);
    let out = r.take_outputs();
    assert!(out.contains(&Output::PersistEpochCache(r.epoch_cache().clone())));
    assert_eq!(r.epoch_cache().latest(), Some((LeaderEpoch(1), Offset(0))));
    assert!(sends(&out).contains(&(
        B1,
        ReplicaBody::Resume {
            leader_epoch: 3,
            from: 10
        }
    )));
}

#[test]
fn a_follower_validates_skips_duplicates_and_acks_after_its_durable_write() {
    let mut r = PartitionReplica::new(
        B2,
        "t",
        0,
        settings(),
        EpochCache::new(),
        Offset(0),
        Offset(0),
    );
    r.on_metadata(&meta(B1, 1, 1, &[B1, B2]), 0);
    r.take_outputs();
    let mut records = batch(0, 2, 1);
    records.extend_from_slice(&batch(2, 2, 1));
    let append = |records: Vec<u8>| {
        msg(
            B1,
            ReplicaBody::Append {
                leader_epoch: 1,
                base_offset: 0,
                records,
                leader_high_watermark: 0,
                leader_log_end: 4,
                sent_ms: 5,
            },
        )
    };
    r.on_message(append(records.clone()), 5);
    let out = r.take_outputs();
    assert_eq!(out[0], Output::PersistEpochCache(r.epoch_cache().clone()));
    assert_eq!(
        out[1],
        Output::AppendLocal {
            records: records.clone()
        }
    );
    assert!(sends(&out).is_empty(), "no ack before the durable write");
    // A resend of the same batches (a lost ack) appends nothing.
    r.on_message(append(records.clone()), 6);
    assert!(!r
        .take_outputs()
        .iter()
        .any(|o| matches!(o, Output::AppendLocal { .. })));
    r.on_local_durable(Offset(4), 7);
    let out = sends(&r.take_outputs());
    assert!(matches!(
        out.as_slice(),
        [(to, ReplicaBody::AppendAck { status: AckStatus::Ok, durable_end: 4, .. })] if *to == B1
    ));
    // A damaged batch is refused whole with a Mismatch.
    let mut bad = batch(4, 1, 1);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    r.on_message(append(bad), 8);
    let out = r.take_outputs();
    assert!(!out.iter().any(|o| matches!(o, Output::AppendLocal { .. })));
    assert!(matches!(
        sends(&out).as_slice(),
        [(
            _,
            ReplicaBody::AppendAck {
                status: AckStatus::Mismatch,
                ..
            }
        )]
    ));
}

#[test]
fn an_old_leader_told_of_a_newer_epoch_stops_acknowledging() {
    let mut r = leader();
    r.on_leader_appended(Offset(0), Offset(1), &batch(0, 1, 1), 0);
    r.await_high_watermark(5, Offset(1));
    r.take_outputs();
    let fenced = msg(
        B2,
        ReplicaBody::AppendAck {
            leader_epoch: 2,
            status: AckStatus::Fenced,
            durable_end: 0,
            log_end: 0,
            echo_leader_log_end: 1,
            echo_sent_ms: 0,
        },
    );
    r.on_message(fenced, 1);
    assert!(r.take_outputs().contains(&Output::ProduceDone {
        request: 5,
        result: Err(ProduceError::NotLeader)
    }));
    assert!(!r.is_active_leader());
    assert_eq!(r.epoch_for_append(true), Err(ProduceError::NotLeader));
}

#[test]
fn acks_all_is_refused_below_min_insync_replicas() {
    let mut r = PartitionReplica::new(
        B1,
        "t",
        0,
        settings(),
        EpochCache::new(),
        Offset(0),
        Offset(0),
    );
    r.on_metadata(&meta(B1, 1, 1, &[B1]), 0);
    assert_eq!(
        r.epoch_for_append(true),
        Err(ProduceError::NotEnoughReplicas)
    );
    assert_eq!(r.epoch_for_append(false), Ok(LeaderEpoch(1)));
}
