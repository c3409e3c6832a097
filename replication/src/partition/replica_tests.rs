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
        catchup_bytes_per_sec: crate::limits::CATCHUP_BYTES_PER_SEC_DEFAULT,
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

/// Serves a leader's catch-up read from `log` as `PartitionLog::read_upto` does: whole
/// batches from the one at `from`, up to `max_bytes` but at least one.
fn serve_read(log: &[(i64, Vec<u8>)], from: Offset, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (base, b) in log.iter().filter(|(base, _)| *base >= from.0) {
        let _ = base;
        if !out.is_empty() && out.len() + b.len() > max_bytes {
            break;
        }
        out.extend_from_slice(b);
    }
    out
}

#[test]
fn catch_up_reads_for_a_follower_outside_the_isr_keep_to_the_rate_and_live_pushes_do_not() {
    const RATE: u64 = 5_000;
    let mut r = PartitionReplica::new(
        B1,
        "t",
        0,
        ReplicaSettings {
            catchup_bytes_per_sec: RATE,
            ..settings()
        },
        EpochCache::new(),
        Offset(0),
        Offset(0),
    );
    // B3 is out of the ISR and has not resumed yet: the leader writes 200 batches without it.
    r.on_metadata(&meta(B1, 1, 1, &[B1, B2]), 0);
    r.on_message(
        msg(
            B2,
            ReplicaBody::Resume {
                leader_epoch: 1,
                from: 0,
            },
        ),
        0,
    );
    let mut log: Vec<(i64, Vec<u8>)> = Vec::new();
    for i in 0..200i64 {
        let b = batch(i * 10, 10, 1);
        r.on_leader_appended(Offset(i * 10), Offset(i * 10 + 10), &b, 0);
        log.push((i * 10, b));
    }
    let batch_bytes = log[0].1.len();
    r.on_local_durable(Offset(2000), 0);
    r.on_message(ack(B2, 1, 2000, 2000, 0), 0);
    r.take_outputs();

    // B3 resumes at 0 and is fed from disk; the test plays its disk and B3's acks for 5 s.
    r.on_message(
        msg(
            B3,
            ReplicaBody::Resume {
                leader_epoch: 1,
                from: 0,
            },
        ),
        0,
    );
    let mut sent_to_b3 = 0usize;
    let mut reads = 0usize;
    let mut now = 0i64;
    while now <= 5_000 {
        let mut out = r.take_outputs();
        while !out.is_empty() {
            for o in out {
                match o {
                    Output::ReadForFollower {
                        follower,
                        from,
                        max_bytes,
                        ..
                    } => {
                        assert_eq!(follower, B3, "B2 is caught up");
                        assert!(max_bytes as u64 <= RATE, "never asks past the budget");
                        reads += 1;
                        let bytes = serve_read(&log, from, max_bytes);
                        r.on_read_for_follower(follower, from, &bytes, now);
                    }
                    Output::Send {
                        to,
                        msg:
                            ReplicaMessage {
                                body:
                                    ReplicaBody::Append {
                                        records,
                                        base_offset,
                                        ..
                                    },
                                ..
                            },
                    } if to == B3 && !records.is_empty() => {
                        sent_to_b3 += records.len();
                        let end = base_offset + 10 * (records.len() / batch_bytes) as i64;
                        r.on_message(ack(B3, 1, end, end, now), now);
                    }
                    _ => {}
                }
            }
            out = r.take_outputs();
        }
        now += 10;
        r.tick(now);
    }
    // A full bucket (one second's worth) plus the rate over 5 s, within one batch.
    let budget = (RATE + 5 * RATE) as usize;
    assert!(
        sent_to_b3 <= budget + batch_bytes,
        "{sent_to_b3} bytes sent, budget {budget}"
    );
    assert!(
        sent_to_b3 + 2 * batch_bytes >= budget,
        "{sent_to_b3} bytes sent, budget {budget}: throttled too hard"
    );
    assert!(reads > 10, "paced in many reads, not one: {reads}");
    assert!(sent_to_b3 < 200 * batch_bytes, "still catching up");

    // The budget is spent; a live append still reaches the caught-up B2 at once, and an
    // in-sync follower that needs a disk read gets one whatever the budget.
    let b = batch(2000, 10, 1);
    r.on_leader_appended(Offset(2000), Offset(2010), &b, now);
    let out = r.take_outputs();
    assert!(sends(&out).iter().any(|(to, body)| *to == B2
        && matches!(
            body,
            ReplicaBody::Append {
                base_offset: 2000,
                ..
            }
        )));
    r.on_message(
        msg(
            B2,
            ReplicaBody::Resume {
                leader_epoch: 1,
                from: 1000,
            },
        ),
        now,
    );
    let out = r.take_outputs();
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::ReadForFollower { follower, max_bytes, .. }
                if *follower == B2 && *max_bytes as u64 > RATE
        )),
        "in-sync follower read not throttled: {out:?}"
    );
}

#[test]
fn a_follower_whose_log_ends_below_the_leaders_log_start_empties_it_and_starts_there() {
    // The leader's log is [50, 100): retention deleted [0, 50).
    let mut leader_cache = EpochCache::new();
    leader_cache.assign(LeaderEpoch(1), Offset(0));
    let mut l = PartitionReplica::new(
        B1,
        "t",
        0,
        settings(),
        leader_cache,
        Offset(50),
        Offset(100),
    );
    l.on_metadata(&meta(B1, 2, 2, &[B1]), 0);
    l.take_outputs();
    // The follower holds [0, 10) of epoch 1.
    let mut cache = EpochCache::new();
    cache.assign(LeaderEpoch(1), Offset(0));
    let mut f = PartitionReplica::new(B2, "t", 0, settings(), cache, Offset(0), Offset(10));
    f.on_metadata(&meta(B1, 2, 2, &[B1]), 0);

    // Divergence first: the leader's epoch 1 ends at 100, ours at 10: nothing to cut.
    let query = sends(&f.take_outputs());
    assert!(matches!(
        query[..],
        [(B1, ReplicaBody::EpochEndQuery { query_epoch: 1, .. })]
    ));
    l.on_message(
        msg(
            B2,
            ReplicaBody::EpochEndQuery {
                leader_epoch: 2,
                query_epoch: 1,
            },
        ),
        1,
    );
    let answer = sends(&l.take_outputs()).remove(0).1;
    f.on_message(msg(B1, answer), 2);
    assert_eq!(
        f.take_outputs(),
        vec![Output::TruncateLocal { to: Offset(10) }]
    );
    f.on_truncated(Offset(10), 3);
    let resume = sends(&f.take_outputs()).remove(0).1;
    assert_eq!(
        resume,
        ReplicaBody::Resume {
            leader_epoch: 2,
            from: 10
        }
    );

    // The leader cannot stream from 10: out of range, not diverged (which would loop).
    l.on_message(msg(B2, resume), 4);
    let out = sends(&l.take_outputs());
    assert_eq!(
        out,
        vec![(
            B2,
            ReplicaBody::OutOfRange {
                leader_epoch: 2,
                log_start: 50
            }
        )]
    );
    f.on_message(msg(B1, out[0].1.clone()), 5);
    assert_eq!(
        f.take_outputs(),
        vec![
            Output::PersistEpochCache(EpochCache::new()),
            Output::ResetLocal { start: Offset(50) },
        ]
    );
    // A duplicate of the answer while resetting changes nothing.
    f.on_message(msg(B1, out[0].1.clone()), 5);
    assert!(f.take_outputs().is_empty());
    f.on_reset(Offset(50), 6);
    assert_eq!(
        (f.log_end(), f.durable_end(), f.log_start()),
        (Offset(50), Offset(50), Offset(50))
    );
    let resume = sends(&f.take_outputs()).remove(0).1;
    assert_eq!(
        resume,
        ReplicaBody::Resume {
            leader_epoch: 2,
            from: 50
        }
    );
    l.on_message(msg(B2, resume), 7);
    assert!(l.take_outputs().contains(&Output::ReadForFollower {
        follower: B2,
        from: Offset(50),
        upto: Offset(100),
        max_bytes: crate::limits::FOLLOWER_INFLIGHT_BYTES_MAX.min(crate::limits::APPEND_BYTES_MAX),
    }));
    // The first batch streamed records its epoch in the emptied cache.
    f.on_message(
        msg(
            B1,
            ReplicaBody::Append {
                leader_epoch: 2,
                base_offset: 50,
                records: batch(50, 5, 1),
                leader_high_watermark: 100,
                leader_log_end: 100,
                sent_ms: 7,
            },
        ),
        8,
    );
    assert_eq!(f.epoch_cache().entries(), &[(LeaderEpoch(1), Offset(50))]);
    assert!(f
        .take_outputs()
        .iter()
        .any(|o| matches!(o, Output::AppendLocal { .. })));
}

#[test]
fn retention_on_the_leader_during_catch_up_sends_the_follower_to_the_new_start() {
    let mut l = PartitionReplica::new(
        B1,
        "t",
        0,
        settings(),
        EpochCache::new(),
        Offset(0),
        Offset(100),
    );
    l.on_metadata(&meta(B1, 1, 1, &[B1]), 0);
    l.on_message(
        msg(
            B2,
            ReplicaBody::Resume {
                leader_epoch: 1,
                from: 20,
            },
        ),
        0,
    );
    assert!(l.take_outputs().iter().any(|o| matches!(
        o,
        Output::ReadForFollower {
            follower: B2,
            from: Offset(20),
            ..
        }
    )));
    // Retention removed [0, 60) before the read ran: it comes back empty.
    l.set_log_start(Offset(60));
    l.on_read_for_follower(B2, Offset(20), &[], 1);
    assert_eq!(
        sends(&l.take_outputs()),
        vec![(
            B2,
            ReplicaBody::OutOfRange {
                leader_epoch: 1,
                log_start: 60
            }
        )]
    );
}
