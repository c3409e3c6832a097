use super::*;
use proptest::prelude::*;

/// Topics for tests: name -> (id, partitions).
#[derive(Clone, Debug, Default)]
struct Topics(BTreeMap<String, (TopicId, i32)>);

impl TopicView for Topics {
    fn topic(&self, name: &str) -> Option<(TopicId, i32)> {
        self.0.get(name).copied()
    }
    fn matching(&self, re: &Regex) -> Vec<String> {
        self.0.keys().filter(|n| re.is_match(n)).cloned().collect()
    }
}

fn topics(list: &[(&str, TopicId, i32)]) -> Topics {
    Topics(
        list.iter()
            .map(|(n, id, p)| (n.to_string(), (*id, *p)))
            .collect(),
    )
}

fn join_req(id: &str, names: &[&str]) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: id.to_string(),
        member_epoch: 0,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(names.iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex: None,
        server_assignor: None,
        owned: Some(Assignment::new()),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
    }
}

fn beat(id: &str, epoch: i32, owned: Option<&Assignment>) -> HeartbeatRequest {
    HeartbeatRequest {
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: None,
        owned: owned.cloned(),
        ..join_req(id, &[])
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

fn owned(list: &[(TopicId, i32)]) -> Assignment {
    let mut a = Assignment::new();
    for tp in list {
        insert(&mut a, *tp);
    }
    a
}

#[test]
fn first_member_gets_every_partition_at_epoch_one() {
    let now = Instant::now();
    let t = topics(&[("orders", 7, 4)]);
    let mut g = ConsumerGroup::new("g");
    let out = g.heartbeat(&join_req("a", &["orders"]), &t, Timing::default(), now);
    assert_eq!(out.error, errors::NONE);
    assert_eq!(out.member_epoch, 1);
    assert_eq!(
        out.heartbeat_interval_ms,
        CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT
    );
    assert_eq!(out.assignment.as_ref().map(count), Some(4));
    assert_eq!(g.state(), GroupState::Stable);
    // A plain heartbeat that reports nothing new gets no assignment back.
    let again = g.heartbeat(&beat("a", 1, None), &t, Timing::default(), now);
    assert_eq!(
        (again.error, again.member_epoch, again.assignment),
        (errors::NONE, 1, None)
    );
}

#[test]
fn second_member_gets_partitions_only_after_the_first_revokes_them() {
    let now = Instant::now();
    let t = topics(&[("orders", 7, 4)]);
    let mut g = ConsumerGroup::new("g");
    let a = g.heartbeat(&join_req("a", &["orders"]), &t, Timing::default(), now);
    let a_owned = a.assignment.expect("assignment");
    let b = g.heartbeat(&join_req("b", &["orders"]), &t, Timing::default(), now);
    assert_eq!(b.member_epoch, 2, "b joins straight at the new epoch");
    assert_eq!(
        b.assignment.as_ref().map(count),
        Some(0),
        "a still owns b's target"
    );
    assert_eq!(g.state(), GroupState::Reconciling);
    // a is told to keep two; its epoch stays until it confirms the revocation.
    let a2 = g.heartbeat(&beat("a", 1, Some(&a_owned)), &t, Timing::default(), now);
    assert_eq!(a2.member_epoch, 1);
    let kept = a2.assignment.expect("shrunk assignment");
    assert_eq!(count(&kept), 2);
    // b asks again: still nothing while a has not confirmed.
    let b2 = g.heartbeat(
        &beat("b", 2, Some(&Assignment::new())),
        &t,
        Timing::default(),
        now,
    );
    assert_eq!(b2.assignment.as_ref().map(count), Some(0));
    // a confirms (reports only what it kept) and moves to epoch 2.
    let a3 = g.heartbeat(&beat("a", 1, Some(&kept)), &t, Timing::default(), now);
    assert_eq!(a3.member_epoch, 2);
    let b3 = g.heartbeat(
        &beat("b", 2, Some(&Assignment::new())),
        &t,
        Timing::default(),
        now,
    );
    let b_owned = b3.assignment.expect("b's share");
    assert_eq!(count(&b_owned), 2);
    assert!(!intersects(&b_owned, &kept));
    assert_eq!(g.state(), GroupState::Stable);
    g.check_invariants().expect("invariants");
}

#[test]
fn a_member_leaving_gives_the_survivor_everything() {
    let now = Instant::now();
    let t = topics(&[("orders", 7, 4)]);
    let mut g = ConsumerGroup::new("g");
    let a = g
        .heartbeat(&join_req("a", &["orders"]), &t, Timing::default(), now)
        .assignment
        .expect("a");
    g.heartbeat(&join_req("b", &["orders"]), &t, Timing::default(), now);
    let kept = g
        .heartbeat(&beat("a", 1, Some(&a)), &t, Timing::default(), now)
        .assignment
        .expect("kept");
    g.heartbeat(&beat("a", 1, Some(&kept)), &t, Timing::default(), now);
    g.heartbeat(
        &beat("b", 2, Some(&Assignment::new())),
        &t,
        Timing::default(),
        now,
    );
    let left = g.heartbeat(
        &beat("b", LEAVE_GROUP_EPOCH, None),
        &t,
        Timing::default(),
        now,
    );
    assert_eq!(
        (left.error, left.member_epoch),
        (errors::NONE, LEAVE_GROUP_EPOCH)
    );
    assert_eq!(g.state(), GroupState::Assigning);
    let a_all = g.heartbeat(&beat("a", 2, Some(&kept)), &t, Timing::default(), now);
    assert_eq!(a_all.member_epoch, 3);
    assert_eq!(a_all.assignment.as_ref().map(count), Some(4));
    assert_eq!(g.state(), GroupState::Stable);
    let gone = g.heartbeat(&beat("b", 2, None), &t, Timing::default(), now);
    assert_eq!(gone.error, errors::UNKNOWN_MEMBER_ID);
}

#[test]
fn epochs_ahead_or_stale_are_fenced_but_a_lost_answer_is_forgiven() {
    let now = Instant::now();
    let t = topics(&[("orders", 7, 2)]);
    let mut g = ConsumerGroup::new("g");
    let a = g
        .heartbeat(&join_req("a", &["orders"]), &t, Timing::default(), now)
        .assignment
        .expect("a");
    assert_eq!(
        g.heartbeat(&beat("a", 5, None), &t, Timing::default(), now)
            .error,
        errors::FENCED_MEMBER_EPOCH
    );
    // New topic partitions bump the epoch; a's answer with epoch 2 is "lost".
    let t2 = topics(&[("orders", 7, 3)]);
    let later = now + Duration::from_millis(CONSUMER_METADATA_REFRESH_MS);
    assert_eq!(
        g.heartbeat(&beat("a", 1, None), &t2, Timing::default(), later)
            .member_epoch,
        2
    );
    // Retrying with the previous epoch and a subset of its partitions is accepted ...
    let retry = g.heartbeat(&beat("a", 1, Some(&a)), &t2, Timing::default(), later);
    assert_eq!((retry.error, retry.member_epoch), (errors::NONE, 2));
    // ... without the owned partitions, or from further back, it is fenced.
    assert_eq!(
        g.heartbeat(&beat("a", 1, None), &t2, Timing::default(), later)
            .error,
        errors::FENCED_MEMBER_EPOCH
    );
    assert_eq!(
        g.heartbeat(&beat("a", 0, Some(&a)), &t2, Timing::default(), later)
            .error,
        errors::NONE,
        "rejoin at 0 is fine"
    );
    assert_eq!(
        g.heartbeat(&beat("zz", 2, None), &t2, Timing::default(), later)
            .error,
        errors::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn request_checks_match_kafka() {
    let mut r = join_req("a", &["t"]);
    assert!(validate(&r, 1).is_ok());
    r.server_assignor = Some("sticky".into());
    assert_eq!(
        validate(&r, 1).map_err(|e| e.0),
        Err(errors::UNSUPPORTED_ASSIGNOR)
    );
    r.server_assignor = Some("range".into());
    assert!(validate(&r, 1).is_ok());
    r.rebalance_timeout_ms = -1;
    assert_eq!(
        validate(&r, 1).map_err(|e| e.0),
        Err(errors::INVALID_REQUEST)
    );
    let mut r = join_req("", &["t"]);
    assert_eq!(
        validate(&r, 1).map_err(|e| e.0),
        Err(errors::INVALID_REQUEST)
    );
    assert!(
        validate(&r, 0).is_ok(),
        "v0 lets the coordinator pick the member id"
    );
    r.member_id = "a".into();
    r.subscribed_topic_names = None;
    assert_eq!(
        validate(&r, 1).map_err(|e| e.0),
        Err(errors::INVALID_REQUEST)
    );
    r.subscribed_topic_regex = Some("t(".into());
    assert_eq!(
        validate(&r, 1).map_err(|e| e.0),
        Err(errors::INVALID_REGULAR_EXPRESSION)
    );
    r.subscribed_topic_regex = Some("t.*".into());
    assert!(validate(&r, 1).is_ok());
    r.owned = Some(owned(&[(1, 0)]));
    assert_eq!(
        validate(&r, 1).map_err(|e| e.0),
        Err(errors::INVALID_REQUEST)
    );
    let mut leave = beat("a", LEAVE_GROUP_STATIC_EPOCH, None);
    assert_eq!(
        validate(&leave, 1).map_err(|e| e.0),
        Err(errors::INVALID_REQUEST)
    );
    leave.instance_id = Some("i".into());
    assert!(validate(&leave, 1).is_ok());
    assert_eq!(
        validate(&beat("a", -3, None), 1).map_err(|e| e.0),
        Err(errors::INVALID_REQUEST)
    );
}

#[test]
fn range_assignor_when_asked_and_regex_subscriptions() {
    let now = Instant::now();
    let t = topics(&[("orders-eu", 1, 3), ("orders-us", 2, 3), ("payments", 3, 3)]);
    let mut g = ConsumerGroup::new("g");
    let mut r = join_req("a", &[]);
    r.subscribed_topic_names = None;
    r.subscribed_topic_regex = Some("orders-.*".into());
    r.server_assignor = Some("range".into());
    let out = g.heartbeat(&r, &t, Timing::default(), now);
    assert_eq!(out.error, errors::NONE);
    let a = out.assignment.expect("assignment");
    assert_eq!(
        a.keys().copied().collect::<Vec<_>>(),
        vec![1, 2],
        "payments does not match"
    );
    assert_eq!(g.assignor_name(), "range");
    // A topic created later that matches is picked up at the next refresh.
    let t2 = topics(&[
        ("orders-eu", 1, 3),
        ("orders-us", 2, 3),
        ("orders-apac", 4, 1),
        ("payments", 3, 3),
    ]);
    let later = now + Duration::from_millis(CONSUMER_METADATA_REFRESH_MS);
    let out = g.heartbeat(&beat("a", 1, Some(&a)), &t2, Timing::default(), later);
    assert_eq!(out.member_epoch, 2);
    assert_eq!(out.assignment.map(|a| count(&a)), Some(7));
}

#[test]
fn static_member_leaving_for_now_keeps_its_partitions_and_gets_them_back() {
    let now = Instant::now();
    let t = topics(&[("orders", 7, 2)]);
    let mut g = ConsumerGroup::new("g");
    let mut r = join_req("a1", &["orders"]);
    r.instance_id = Some("i".into());
    let a = g
        .heartbeat(&r, &t, Timing::default(), now)
        .assignment
        .expect("a");
    let mut leave = beat("a1", LEAVE_GROUP_STATIC_EPOCH, None);
    leave.instance_id = Some("i".into());
    assert_eq!(
        g.heartbeat(&leave, &t, Timing::default(), now).member_epoch,
        LEAVE_GROUP_STATIC_EPOCH
    );
    // Another member may not take them meanwhile.
    let b = g.heartbeat(&join_req("b", &["orders"]), &t, Timing::default(), now);
    assert_eq!(b.assignment.as_ref().map(count), Some(0));
    // The instance comes back under a new member id and takes over the old member's
    // partitions: its share at once, the other one to be revoked for b.
    let mut back = join_req("a2", &["orders"]);
    back.instance_id = Some("i".into());
    let out = g.heartbeat(&back, &t, Timing::default(), now);
    assert_eq!(out.error, errors::NONE);
    let kept = out.assignment.expect("assignment");
    assert_eq!(count(&kept), 1);
    assert!(is_subset(&kept, &a));
    let b_epoch = b.member_epoch;
    assert_eq!(
        g.heartbeat(
            &beat("b", b_epoch, Some(&Assignment::new())),
            &t,
            Timing::default(),
            now
        )
        .assignment
        .map(|a| count(&a)),
        Some(0)
    );
    let mut ack = beat("a2", out.member_epoch, Some(&kept));
    ack.instance_id = Some("i".into());
    assert_eq!(
        g.heartbeat(&ack, &t, Timing::default(), now).error,
        errors::NONE
    );
    assert_eq!(
        g.heartbeat(
            &beat("b", b_epoch, Some(&Assignment::new())),
            &t,
            Timing::default(),
            now
        )
        .assignment
        .map(|a| count(&a)),
        Some(1)
    );
    // The old id is fenced; a second live holder of the instance id is refused.
    let mut old = beat("a1", 1, None);
    old.instance_id = Some("i".into());
    assert_eq!(
        g.heartbeat(&old, &t, Timing::default(), now).error,
        errors::FENCED_INSTANCE_ID
    );
    let mut third = join_req("a3", &["orders"]);
    third.instance_id = Some("i".into());
    assert_eq!(
        g.heartbeat(&third, &t, Timing::default(), now).error,
        errors::UNRELEASED_INSTANCE_ID
    );
    g.check_invariants().expect("invariants");
}

#[test]
fn a_static_member_that_left_for_now_and_rejoins_by_its_member_id_gets_an_epoch_back() {
    // Found by the arbitrary-heartbeats proptest: the rejoin was answered NONE with the
    // leave marker (-2) as its member epoch, whether it came without its instance id or
    // with another one.
    for instance_back in [None, Some("other")] {
        let now = Instant::now();
        let t = topics(&[("orders", 7, 2)]);
        let mut g = ConsumerGroup::new("g");
        let mut r = join_req("a1", &["orders"]);
        r.instance_id = Some("i".into());
        let first = g.heartbeat(&r, &t, Timing::default(), now);
        let all = first.assignment.expect("a1 gets both partitions");
        // b joins: a1 is to give one partition up, and leaves while it still owns both.
        g.heartbeat(&join_req("b", &["orders"]), &t, Timing::default(), now);
        let mut keep = beat("a1", first.member_epoch, Some(&all));
        keep.instance_id = Some("i".into());
        g.heartbeat(&keep, &t, Timing::default(), now);
        let mut leave = beat("a1", LEAVE_GROUP_STATIC_EPOCH, None);
        leave.instance_id = Some("i".into());
        g.heartbeat(&leave, &t, Timing::default(), now);
        let mut back = beat("a1", 0, None);
        back.instance_id = instance_back.map(str::to_string);
        let out = g.heartbeat(&back, &t, Timing::default(), now);
        assert_eq!(out.error, errors::NONE);
        assert!(out.member_epoch >= 0, "member epoch {}", out.member_epoch);
        g.check_invariants().expect("invariants");
    }
}

#[test]
fn silent_members_expire_and_their_partitions_move_on() {
    let now = Instant::now();
    let t = topics(&[("orders", 7, 2)]);
    let mut g = ConsumerGroup::new("g");
    g.heartbeat(&join_req("a", &["orders"]), &t, Timing::default(), now);
    g.heartbeat(&join_req("b", &["orders"]), &t, Timing::default(), now);
    let b_at = now + Duration::from_millis(40_000);
    g.heartbeat(
        &beat("b", 2, Some(&Assignment::new())),
        &t,
        Timing::default(),
        b_at,
    );
    g.tick(now + Timing::default().session_timeout);
    assert_eq!(g.members().count(), 1, "a expired, b heartbeated in time");
    let out = g.heartbeat(
        &beat("b", 2, Some(&Assignment::new())),
        &t,
        Timing::default(),
        b_at,
    );
    assert_eq!(out.assignment.map(|a| count(&a)), Some(2));
}

#[test]
fn a_member_that_never_revokes_is_removed_after_its_rebalance_timeout() {
    let now = Instant::now();
    let t = topics(&[("orders", 7, 2)]);
    let mut g = ConsumerGroup::new("g");
    let a = g
        .heartbeat(&join_req("a", &["orders"]), &t, Timing::default(), now)
        .assignment
        .expect("a");
    g.heartbeat(&join_req("b", &["orders"]), &t, Timing::default(), now);
    g.heartbeat(&beat("a", 1, Some(&a)), &t, Timing::default(), now); // told to revoke one
    g.heartbeat(
        &beat("a", 1, Some(&a)),
        &t,
        Timing::default(),
        now + Duration::from_secs(20),
    ); // still holds it
    g.tick(now + Duration::from_secs(31));
    assert!(g.members().all(|m| m.id == "b"));
}

#[test]
fn commits_and_fetches_need_the_current_member_epoch() {
    let now = Instant::now();
    let t = topics(&[("orders", 7, 2)]);
    let mut g = ConsumerGroup::new("g");
    assert_eq!(
        g.validate_commit("", -1, 9),
        errors::NONE,
        "empty group: admin commits"
    );
    g.heartbeat(&join_req("a", &["orders"]), &t, Timing::default(), now);
    assert_eq!(g.validate_commit("a", 1, 9), errors::NONE);
    assert_eq!(g.validate_commit("a", 0, 9), errors::STALE_MEMBER_EPOCH);
    assert_eq!(g.validate_commit("x", 1, 9), errors::UNKNOWN_MEMBER_ID);
    assert_eq!(g.validate_commit("", -1, 9), errors::UNKNOWN_MEMBER_ID);
    assert_eq!(g.validate_commit("a", 1, 8), errors::UNSUPPORTED_VERSION);
    assert_eq!(g.validate_fetch(None, -1), errors::NONE);
    assert_eq!(g.validate_fetch(Some("a"), 1), errors::NONE);
    assert_eq!(g.validate_fetch(Some("a"), 7), errors::STALE_MEMBER_EPOCH);
    assert_eq!(g.validate_fetch(Some("x"), 1), errors::UNKNOWN_MEMBER_ID);
}

// ---------------------------------------------------------------- interleavings

/// What one client believes: its epoch and the partitions it consumes.
#[derive(Clone, Debug, Default)]
struct Client {
    joined: bool,
    epoch: i32,
    owned: Assignment,
}

#[derive(Clone, Debug)]
enum Op {
    Join(usize),
    /// (client, report owned partitions, lose the answer)
    Heartbeat(usize, bool, bool),
    Leave(usize),
    /// The member's session runs out (the client has stopped consuming).
    Expire(usize),
    /// A subscribed topic gets more partitions.
    Grow(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0usize..4).prop_map(Op::Join),
        6 => (0usize..4, any::<bool>(), prop::bool::weighted(0.1)).prop_map(|(c, r, l)| Op::Heartbeat(c, r, l)),
        1 => (0usize..4).prop_map(Op::Leave),
        1 => (0usize..4).prop_map(Op::Expire),
        1 => (0usize..2).prop_map(Op::Grow),
    ]
}

fn member_name(c: usize) -> String {
    format!("m{c}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever order heartbeats come in, lost answers included, no partition is ever
    /// owned by two members (in the group's view) or consumed by two clients.
    #[test]
    fn no_partition_is_ever_owned_twice(ops in proptest::collection::vec(op(), 1..80), range in any::<bool>()) {
        let mut sizes = [3i32, 2];
        let view = |sizes: &[i32; 2]| topics(&[("a", 1, sizes[0]), ("b", 2, sizes[1])]);
        let mut g = ConsumerGroup::new("g");
        let mut clients = vec![Client::default(); 4];
        let mut now = Instant::now();
        for op in ops {
            now += Duration::from_millis(CONSUMER_METADATA_REFRESH_MS);
            let t = view(&sizes);
            match op {
                Op::Join(c) if !clients[c].joined => {
                    let subscription: &[&str] = if c % 2 == 0 { &["a", "b"] } else { &["a"] };
                    let mut r = join_req(&member_name(c), subscription);
                    if range { r.server_assignor = Some("range".into()); }
                    let out = g.heartbeat(&r, &t, Timing::default(), now);
                    prop_assert_eq!(out.error, errors::NONE);
                    clients[c] = Client { joined: true, epoch: out.member_epoch, owned: out.assignment.unwrap_or_default() };
                }
                Op::Heartbeat(c, report, lose) if clients[c].joined => {
                    let cl = clients[c].clone();
                    let out = g.heartbeat(&beat(&member_name(c), cl.epoch, report.then_some(&cl.owned)), &t, Timing::default(), now);
                    if out.error != errors::NONE {
                        prop_assert!(out.error == errors::FENCED_MEMBER_EPOCH || out.error == errors::UNKNOWN_MEMBER_ID, "{}", out.error);
                        // The client gives everything up and rejoins with epoch 0.
                        let out = g.heartbeat(&join_req(&member_name(c), if c % 2 == 0 { &["a", "b"] } else { &["a"] }), &t, Timing::default(), now);
                        prop_assert_eq!(out.error, errors::NONE);
                        clients[c] = Client { joined: true, epoch: out.member_epoch, owned: out.assignment.unwrap_or_default() };
                    } else if !lose {
                        clients[c].epoch = out.member_epoch;
                        if let Some(a) = out.assignment { clients[c].owned = a; }
                    }
                }
                Op::Leave(c) if clients[c].joined => {
                    g.heartbeat(&beat(&member_name(c), LEAVE_GROUP_EPOCH, None), &t, Timing::default(), now);
                    clients[c] = Client::default();
                }
                Op::Expire(c) if clients[c].joined => {
                    if let Some(m) = g.members.get_mut(&member_name(c)) { m.session_deadline = now; }
                    g.tick(now);
                    clients[c] = Client::default();
                    // The tick also removes members that sat on revoked partitions past
                    // their rebalance timeout; those clients stop consuming (Kafka's
                    // contract: a member must revoke within the rebalance timeout).
                    for (i, cl) in clients.iter_mut().enumerate() {
                        if cl.joined && !g.members.contains_key(&member_name(i)) {
                            *cl = Client::default();
                        }
                    }
                }
                Op::Grow(t) => sizes[t] = (sizes[t] + 1).min(8),
                _ => {}
            }
            g.check_invariants().map_err(TestCaseError::fail)?;
            let mut consumed: BTreeMap<(TopicId, i32), usize> = BTreeMap::new();
            for (c, cl) in clients.iter().enumerate() {
                for tp in partitions(&cl.owned) {
                    if let Some(other) = consumed.insert(tp, c) {
                        return Err(TestCaseError::fail(format!("{tp:?} consumed by clients {other} and {c}")));
                    }
                }
            }
        }
    }
}

#[test]
fn repeated_heartbeats_converge_to_the_target() {
    let now = Instant::now();
    let t = topics(&[("a", 1, 5), ("b", 2, 3)]);
    let mut g = ConsumerGroup::new("g");
    let mut clients: BTreeMap<String, (i32, Assignment)> = BTreeMap::new();
    for id in ["x", "y", "z"] {
        let out = g.heartbeat(&join_req(id, &["a", "b"]), &t, Timing::default(), now);
        clients.insert(
            id.to_string(),
            (out.member_epoch, out.assignment.unwrap_or_default()),
        );
    }
    for _ in 0..4 {
        for (id, (epoch, owned)) in clients.iter_mut() {
            let out = g.heartbeat(&beat(id, *epoch, Some(owned)), &t, Timing::default(), now);
            assert_eq!(out.error, errors::NONE);
            *epoch = out.member_epoch;
            if let Some(a) = out.assignment {
                *owned = a;
            }
        }
    }
    assert_eq!(g.state(), GroupState::Stable);
    let counts: Vec<usize> = clients.values().map(|(_, a)| count(a)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 8);
    assert!(
        counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) <= 1,
        "{counts:?}"
    );
}

fn any_heartbeat() -> impl Strategy<Value = HeartbeatRequest> {
    let owned = prop_oneof![
        Just(None),
        Just(Some(Vec::new())),
        proptest::collection::vec((0u128..4, -2i32..6), 0..8).prop_map(Some),
    ];
    let epoch = prop_oneof![2 => Just(0), 3 => -3i32..5];
    (
        (prop::sample::select(vec!["", "m0", "m1", "m2"]), epoch),
        proptest::option::of(prop::sample::select(vec!["", "i0", "i1"])),
        prop::sample::select(vec![-1, 0, 5_000]),
        proptest::option::of(proptest::collection::vec(
            prop::sample::select(vec!["a", "b", "missing", ""]),
            0..4,
        )),
        proptest::option::of(prop::sample::select(vec!["", "a|b", ".*", "(", "[z-a]"])),
        proptest::option::of(prop::sample::select(vec!["uniform", "range", "x"])),
        owned,
    )
        .prop_map(
            |((member, epoch), instance, rebalance, names, regex, assignor, owned)| {
                HeartbeatRequest {
                    member_id: member.to_string(),
                    member_epoch: epoch,
                    instance_id: instance.map(str::to_string),
                    rack_id: None,
                    rebalance_timeout_ms: rebalance,
                    subscribed_topic_names: names
                        .map(|n| n.into_iter().map(str::to_string).collect()),
                    subscribed_topic_regex: regex.map(str::to_string),
                    server_assignor: assignor.map(str::to_string),
                    owned: owned.map(|o| {
                        let mut a = Assignment::new();
                        for (t, p) in o {
                            insert(&mut a, (t, p));
                        }
                        a
                    }),
                    client_id: String::new(),
                    client_host: String::new(),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever a client sends (after the same validation the handler runs), the group
    /// answers with a code and keeps its invariants; nothing panics.
    #[test]
    fn arbitrary_heartbeats_keep_the_invariants(reqs in proptest::collection::vec(any_heartbeat(), 1..60)) {
        let t = topics(&[("a", 1, 3), ("b", 2, 2)]);
        let mut g = ConsumerGroup::new("g");
        let mut now = Instant::now();
        for r in reqs {
            now += Duration::from_millis(700);
            if validate(&r, 1).is_err() {
                continue;
            }
            let out = g.heartbeat(&r, &t, Timing::default(), now);
            if out.error == errors::NONE && r.member_epoch >= 0 {
                prop_assert!(out.member_epoch >= 0);
            }
            g.tick(now);
            g.check_invariants().map_err(TestCaseError::fail)?;
        }
    }
}

/// Replays `g`'s records (as the start-up load would read them) into a loaded group.
fn replay(records: &BTreeMap<bytes::Bytes, bytes::Bytes>) -> LoadedConsumerGroup {
    let mut l = LoadedConsumerGroup::default();
    for (k, v) in records {
        let (_, key) = super::super::records::decode_key(k.clone()).expect("key");
        assert!(l.apply(k.clone(), key, Some(v.clone())));
    }
    l
}

#[test]
fn restored_group_is_the_group_that_was_written() {
    use super::super::records::group_records;
    let now = Instant::now();
    let t = topics(&[("orders", 7, 4), ("audit", 9, 2)]);
    let mut g = ConsumerGroup::new("g");
    let a = g.heartbeat(
        &join_req("a", &["orders", "audit"]),
        &t,
        Timing::default(),
        now,
    );
    // b joins: a must revoke half of its partitions; b waits for them (mid-rebalance).
    let b = g.heartbeat(&join_req("b", &["orders"]), &t, Timing::default(), now);
    let a2 = g.heartbeat(&beat("a", a.member_epoch, None), &t, Timing::default(), now);
    assert_eq!(g.state(), GroupState::Reconciling);
    let written = group_records(&g);

    let later = now + Duration::from_secs(60);
    let mut r = ConsumerGroup::restore("g", &replay(&written), Timing::default(), later)
        .expect("group restored");
    assert_eq!(group_records(&r), written);
    assert_eq!(
        (r.group_epoch(), r.assignment_epoch(), r.state()),
        (g.group_epoch(), g.assignment_epoch(), g.state())
    );
    // Fresh session timers: a tick at restore time removes nobody.
    assert!(!r.tick(later));
    // Both members carry on with the ids and epochs they had, without a new epoch.
    let a3 = r.heartbeat(
        &beat("a", a2.member_epoch, a2.assignment.as_ref()),
        &t,
        Timing::default(),
        later,
    );
    assert_eq!(a3.error, errors::NONE, "{:?}", a3.message);
    let b3 = r.heartbeat(
        &beat("b", b.member_epoch, None),
        &t,
        Timing::default(),
        later,
    );
    assert_eq!(b3.error, errors::NONE, "{:?}", b3.message);
    assert_eq!(r.group_epoch(), g.group_epoch());
    // Reconciliation finishes as it would have: every partition owned once.
    let b4 = r.heartbeat(
        &beat("b", b3.member_epoch, None),
        &t,
        Timing::default(),
        later,
    );
    let a_now = r
        .members()
        .find(|m| m.id == "a")
        .map(|m| count(&m.assigned));
    let b_now = b4.assignment.as_ref().map(count).or_else(|| {
        r.members()
            .find(|m| m.id == "b")
            .map(|m| count(&m.assigned))
    });
    assert_eq!(a_now.unwrap_or(0) + b_now.unwrap_or(0), 6);
}

#[test]
fn restore_drops_what_tombstones_deleted_and_untrusted_ownership() {
    use super::super::records::{encode_key, group_records, ConsumerKey};
    let now = Instant::now();
    let t = topics(&[("orders", 7, 4)]);
    let mut g = ConsumerGroup::new("g");
    g.heartbeat(&join_req("a", &["orders"]), &t, Timing::default(), now);
    let mut l = replay(&group_records(&g));
    // A second member whose records claim a's partitions: it keeps none of them.
    let claimed = l.current["a"].clone();
    l.members.insert("x".into(), l.members["a"].clone());
    l.current.insert("x".into(), claimed);
    let r = ConsumerGroup::restore("g", &l, Timing::default(), now).expect("restored");
    let x = r.members().find(|m| m.id == "x").expect("x");
    assert!(x.assigned.is_empty());
    assert_eq!(
        count(&r.members().find(|m| m.id == "a").expect("a").assigned),
        4
    );

    // The member's tombstones remove it; the group epoch's tombstone deletes the group.
    for key in [
        ConsumerKey::CurrentAssignment("a".into()),
        ConsumerKey::TargetMember("a".into()),
        ConsumerKey::Member("a".into()),
    ] {
        assert!(l.apply(encode_key("g", &key), key, None));
    }
    let r = ConsumerGroup::restore("g", &l, Timing::default(), now).expect("restored");
    assert!(r.members().all(|m| m.id != "a"));
    assert!(l.apply(
        encode_key("g", &ConsumerKey::Metadata),
        ConsumerKey::Metadata,
        None
    ));
    assert!(ConsumerGroup::restore("g", &l, Timing::default(), now).is_none());
}
