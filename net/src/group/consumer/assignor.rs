//! Server-side assignors of the consumer protocol (KIP-848): given the members'
//! subscriptions, the subscribed topics' partition counts and the previous target
//! assignment, compute the next target assignment. Pure and deterministic (members and
//! topics are walked in sorted order), so every run over the same input gives the same
//! answer. Called by the group's owner shard only.
//!
//! - `uniform` (Kafka's default): balanced (partition counts differ by at most one when
//!   every member subscribes to the same topics) and sticky (a member keeps what it had as
//!   far as balance allows, so a rebalance moves as few partitions as possible).
//! - `range`: per topic, the members subscribed to it in member-id order get contiguous
//!   ranges, the first `partitions % members` one partition more; topics with the same
//!   partition count are co-partitioned.

use std::collections::{BTreeMap, BTreeSet};

/// A topic, by its Kafka topic id.
pub type TopicId = u128;
/// A member's partitions, by topic id.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// One member as the assignor sees it.
#[derive(Clone, Debug, Default)]
pub struct MemberSpec {
    /// Topics the member subscribes to that exist (resolved names and regex matches).
    pub topics: BTreeSet<TopicId>,
    /// Its previous target assignment (stickiness).
    pub current: Assignment,
}

/// The assignors a client may ask for (`group.remote.assignor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    pub const DEFAULT: Assignor = Assignor::Uniform;

    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The target assignment of every member (members with nothing get an empty one).
    /// `topics`: partition count of every subscribed topic.
    pub fn assign(
        self,
        members: &BTreeMap<String, MemberSpec>,
        topics: &BTreeMap<TopicId, i32>,
    ) -> BTreeMap<String, Assignment> {
        match self {
            Assignor::Uniform => uniform(members, topics),
            Assignor::Range => range(members, topics),
        }
    }
}

fn give(out: &mut BTreeMap<String, Assignment>, member: &str, topic: TopicId, partition: i32) {
    out.entry(member.to_string())
        .or_default()
        .entry(topic)
        .or_default()
        .insert(partition);
}

fn empty_for_all(members: &BTreeMap<String, MemberSpec>) -> BTreeMap<String, Assignment> {
    members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect()
}

fn range(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out = empty_for_all(members);
    for (&topic, &partitions) in topics {
        let subscribed: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.topics.contains(&topic))
            .map(|(id, _)| id)
            .collect();
        if subscribed.is_empty() || partitions <= 0 {
            continue;
        }
        let count = subscribed.len() as i32;
        let (each, extra) = (partitions / count, partitions % count);
        let mut next = 0;
        for (i, member) in subscribed.into_iter().enumerate() {
            let len = each + i32::from((i as i32) < extra);
            for p in next..next + len {
                give(&mut out, member, topic, p);
            }
            next += len;
        }
    }
    out
}

fn uniform(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out = empty_for_all(members);
    // Every partition some member can take, with the members that may take it.
    let mut eligible: BTreeMap<(TopicId, i32), Vec<&str>> = BTreeMap::new();
    for (&topic, &partitions) in topics {
        let subscribed: Vec<&str> = members
            .iter()
            .filter(|(_, m)| m.topics.contains(&topic))
            .map(|(id, _)| id.as_str())
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        for p in 0..partitions.max(0) {
            eligible.insert((topic, p), subscribed.clone());
        }
    }
    let active: BTreeSet<&str> = eligible.values().flatten().copied().collect();
    if active.is_empty() {
        return out;
    }
    let total = eligible.len();
    let floor = total / active.len();
    // Members that may end up with one more than `floor`.
    let mut extra_slots = total % active.len();
    let mut counts: BTreeMap<&str, usize> = active.iter().map(|m| (*m, 0)).collect();
    let mut taken: BTreeSet<(TopicId, i32)> = BTreeSet::new();

    // Sticky: each member keeps up to `floor` of what it had, then, while slots last, one more.
    let kept = |m: &MemberSpec| -> Vec<(TopicId, i32)> {
        m.current
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            .filter(|tp| eligible.contains_key(tp) && m.topics.contains(&tp.0))
            .collect()
    };
    for (id, m) in members {
        for tp in kept(m).into_iter().take(floor) {
            if taken.insert(tp) {
                give(&mut out, id, tp.0, tp.1);
                *counts.entry(id.as_str()).or_default() += 1;
            }
        }
    }
    for (id, m) in members {
        if extra_slots == 0 {
            break;
        }
        if counts.get(id.as_str()).copied().unwrap_or(0) != floor {
            continue;
        }
        if let Some(tp) = kept(m).into_iter().find(|tp| !taken.contains(tp)) {
            taken.insert(tp);
            give(&mut out, id, tp.0, tp.1);
            *counts.entry(id.as_str()).or_default() += 1;
            extra_slots -= 1;
        }
    }

    // Fill: the most constrained partitions first, each to its least loaded eligible member.
    let mut rest: Vec<(&(TopicId, i32), &Vec<&str>)> = eligible
        .iter()
        .filter(|(tp, _)| !taken.contains(tp))
        .collect();
    rest.sort_by_key(|(tp, who)| (who.len(), **tp));
    for (tp, who) in rest {
        let Some(member) = who
            .iter()
            .min_by_key(|m| (counts.get(*m).copied().unwrap_or(0), **m))
        else {
            continue;
        };
        give(&mut out, member, tp.0, tp.1);
        *counts.entry(member).or_default() += 1;
    }

    // Mixed subscriptions can leave a member far above another that could take some of
    // its partitions: move those, a bounded number of times.
    for _ in 0..total.min(crate::limits::CONSUMER_ASSIGNOR_BALANCE_MOVES_MAX) {
        let Some(mv) = one_balancing_move(&out, &counts, &eligible) else {
            break;
        };
        let (from, to, tp) = mv;
        if let Some(ps) = out.get_mut(&from).and_then(|a| a.get_mut(&tp.0)) {
            ps.remove(&tp.1);
            if ps.is_empty() {
                out.get_mut(&from).map(|a| a.remove(&tp.0));
            }
        }
        give(&mut out, &to, tp.0, tp.1);
        if let Some(c) = counts.get_mut(from.as_str()) {
            *c -= 1;
        }
        if let Some(c) = counts.get_mut(to.as_str()) {
            *c += 1;
        }
    }
    out
}

/// (from, to, partition): a partition the most loaded member holds that a member with at
/// least two fewer may take.
fn one_balancing_move(
    out: &BTreeMap<String, Assignment>,
    counts: &BTreeMap<&str, usize>,
    eligible: &BTreeMap<(TopicId, i32), Vec<&str>>,
) -> Option<(String, String, (TopicId, i32))> {
    let mut by_load: Vec<(&str, usize)> = counts.iter().map(|(m, c)| (*m, *c)).collect();
    by_load.sort_by_key(|(m, c)| (std::cmp::Reverse(*c), *m));
    for (from, from_count) in &by_load {
        let assignment = out.get(*from)?;
        for (topic, ps) in assignment {
            for p in ps.iter().rev() {
                let Some(who) = eligible.get(&(*topic, *p)) else {
                    continue;
                };
                let to = who
                    .iter()
                    .filter(|m| counts.get(*m).copied().unwrap_or(0) + 1 < *from_count)
                    .min_by_key(|m| (counts.get(*m).copied().unwrap_or(0), **m));
                if let Some(to) = to {
                    return Some((from.to_string(), to.to_string(), (*topic, *p)));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(topics: &[TopicId], current: &[(TopicId, i32)]) -> MemberSpec {
        let mut a = Assignment::new();
        for (t, p) in current {
            a.entry(*t).or_default().insert(*p);
        }
        MemberSpec {
            topics: topics.iter().copied().collect(),
            current: a,
        }
    }

    fn flat(a: &Assignment) -> Vec<(TopicId, i32)> {
        a.iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            .collect()
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn range_gives_contiguous_ranges_first_members_one_more() {
        let members = BTreeMap::from([
            ("a".to_string(), spec(&[1, 2], &[])),
            ("b".to_string(), spec(&[1, 2], &[])),
        ]);
        let topics = BTreeMap::from([(1, 5), (2, 5)]);
        let out = Assignor::Range.assign(&members, &topics);
        assert_eq!(
            flat(&out["a"]),
            vec![(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
        );
        assert_eq!(flat(&out["b"]), vec![(1, 3), (1, 4), (2, 3), (2, 4)]);
    }

    #[test]
    fn uniform_splits_four_partitions_two_and_two_and_is_sticky() {
        let members = BTreeMap::from([
            (
                "a".to_string(),
                spec(&[7], &[(7, 0), (7, 1), (7, 2), (7, 3)]),
            ),
            ("b".to_string(), spec(&[7], &[])),
        ]);
        let out = Assignor::Uniform.assign(&members, &BTreeMap::from([(7, 4)]));
        assert_eq!(
            flat(&out["a"]),
            vec![(7, 0), (7, 1)],
            "a keeps what it had, up to its share"
        );
        assert_eq!(flat(&out["b"]), vec![(7, 2), (7, 3)]);
        // b leaves: a gets everything back.
        let alone = BTreeMap::from([("a".to_string(), spec(&[7], &[(7, 0), (7, 1)]))]);
        let out = Assignor::Uniform.assign(&alone, &BTreeMap::from([(7, 4)]));
        assert_eq!(count(&out["a"]), 4);
    }

    #[test]
    fn unsubscribed_members_get_nothing_and_unknown_topics_are_ignored() {
        let members = BTreeMap::from([
            ("a".to_string(), spec(&[1], &[(9, 0)])),
            ("b".to_string(), spec(&[], &[])),
        ]);
        for assignor in [Assignor::Uniform, Assignor::Range] {
            let out = assignor.assign(&members, &BTreeMap::from([(1, 3)]));
            assert_eq!(
                flat(&out["a"]),
                vec![(1, 0), (1, 1), (1, 2)],
                "{assignor:?}"
            );
            assert!(out["b"].is_empty());
        }
    }

    fn members_strategy(
    ) -> impl Strategy<Value = (BTreeMap<String, MemberSpec>, BTreeMap<TopicId, i32>)> {
        let topics = proptest::collection::btree_map(1u128..6, 0i32..12, 1..5);
        topics.prop_flat_map(|topics| {
            let ids: Vec<TopicId> = topics.keys().copied().collect();
            let member = (
                proptest::sample::subsequence(ids.clone(), 0..=ids.len()),
                proptest::collection::vec((1u128..6, 0i32..12), 0..10),
            );
            (
                proptest::collection::vec(member, 1..7).prop_map(|ms| {
                    ms.into_iter()
                        .enumerate()
                        .map(|(i, (t, cur))| (format!("m{i}"), spec(&t, &cur)))
                        .collect::<BTreeMap<_, _>>()
                }),
                Just(topics),
            )
        })
    }

    proptest! {
        #[test]
        fn every_subscribed_partition_goes_to_exactly_one_subscribed_member(
            (members, topics) in members_strategy(),
            uniform in any::<bool>(),
        ) {
            let assignor = if uniform { Assignor::Uniform } else { Assignor::Range };
            let out = assignor.assign(&members, &topics);
            let mut seen = BTreeSet::new();
            for (id, a) in &out {
                for (t, p) in flat(a) {
                    prop_assert!(members[id].topics.contains(&t), "{id} not subscribed to {t}");
                    prop_assert!((0..topics[&t]).contains(&p));
                    prop_assert!(seen.insert((t, p)), "({t}, {p}) assigned twice");
                }
            }
            for (t, n) in &topics {
                if members.values().any(|m| m.topics.contains(t)) {
                    for p in 0..*n {
                        prop_assert!(seen.contains(&(*t, p)), "({t}, {p}) unassigned");
                    }
                }
            }
        }

        #[test]
        fn uniform_is_balanced_and_stable_for_same_subscriptions(
            partitions in proptest::collection::vec(0i32..20, 1..4),
            members in 1usize..8,
        ) {
            let topics: BTreeMap<TopicId, i32> =
                partitions.iter().enumerate().map(|(i, n)| (i as TopicId + 1, *n)).collect();
            let ids: Vec<TopicId> = topics.keys().copied().collect();
            let specs: BTreeMap<String, MemberSpec> =
                (0..members).map(|i| (format!("m{i}"), spec(&ids, &[]))).collect();
            let out = Assignor::Uniform.assign(&specs, &topics);
            let counts: Vec<usize> = out.values().map(count).collect();
            let (lo, hi) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
            prop_assert!(hi - lo <= 1, "counts {counts:?}");
            // Same members, previous target as input: nothing moves.
            let again: BTreeMap<String, MemberSpec> = specs
                .iter()
                .map(|(id, s)| (id.clone(), MemberSpec { topics: s.topics.clone(), current: out[id].clone() }))
                .collect();
            prop_assert_eq!(Assignor::Uniform.assign(&again, &topics), out);
        }
    }
}
