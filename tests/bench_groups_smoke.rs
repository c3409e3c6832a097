//! `sluice bench groups` end to end against the real broker: a small group forms and
//! rebalances over the wire (every round assigns every partition once, in one
//! generation), commits go out at the asked rate and all succeed, and the broker's CPU
//! time is read from /proc. Figures are printed, never asserted.

mod net_common;

use std::time::Duration;

use net_common::*;
use sluice_bench::groups::{run, GroupsConfig};

#[test]
fn groups_bench_rebalances_and_commits_against_the_broker() {
    let broker = start_broker_with("group_initial_rebalance_delay_ms = 200\n", Admin::Off);
    let config = GroupsConfig {
        bootstrap: format!("127.0.0.1:{}", broker.port),
        topic: "bench-groups-smoke".into(),
        partitions: 12,
        members: 4,
        rounds: 3,
        commit_rate: 100,
        commit_connections: 3,
        commit_duration: Duration::from_secs(1),
        broker_pid: Some(broker.pid()),
        request_timeout: Duration::from_secs(30),
    };
    let report = run(&config).expect("bench runs");
    println!("{}", report.render(&config));
    assert_eq!(report.rounds.len(), 3);
    assert_eq!(report.commits_sent, 100);
    assert_eq!(report.commits_failed, 0);
    assert!(report.broker_cpu_s_commits.is_some_and(|s| s >= 0.0));
}
