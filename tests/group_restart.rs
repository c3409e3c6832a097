//! A consumer group's membership survives a broker SIGKILL: the real `sluice serve`, a
//! two-member group formed over the wire, the broker killed and restarted on the same
//! data. Members keep their ids and generation (heartbeats are accepted), a re-join is an
//! ordinary rebalance, and a group whose members all left comes back Empty.

mod net_common;

use std::io::Write;
use std::net::TcpStream;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use net_common::*;

const GROUP: &str = "restart-group";
const JOIN_V: i16 = 7;
const SYNC_V: i16 = 5;
const HEARTBEAT_V: i16 = 4;
const DESCRIBE_V: i16 = 5;
const LEAVE_V: i16 = 4;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One member's connection; requests on it are answered in order.
struct Client {
    sock: TcpStream,
    next: i32,
}

impl Client {
    fn new(b: &Broker) -> Client {
        Client {
            sock: connect(b),
            next: 1,
        }
    }

    fn send<T: kafka_protocol::protocol::Encodable>(
        &mut self,
        key: ApiKey,
        v: i16,
        body: &T,
    ) -> i32 {
        let id = self.next;
        self.next += 1;
        self.sock
            .write_all(&request(key, v, id, body))
            .expect("write");
        id
    }

    fn recv<T: kafka_protocol::protocol::Decodable>(&mut self, key: ApiKey, v: i16, id: i32) -> T {
        let frame = read_frame(&mut self.sock).expect("answered");
        response(frame, key, v, id)
    }

    fn send_join(&mut self, member_id: &str) -> i32 {
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("range");
        p.metadata = Bytes::from_static(b"\x00\x01\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff");
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(20_000)
            .with_member_id(s(member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![p]);
        self.send(ApiKey::JoinGroup, JOIN_V, &req)
    }

    fn join_response(&mut self, id: i32) -> JoinGroupResponse {
        self.recv(ApiKey::JoinGroup, JOIN_V, id)
    }

    /// KIP-394's first step: the broker hands out a member id.
    fn member_id(&mut self) -> String {
        let id = self.send_join("");
        let r = self.join_response(id);
        assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
        r.member_id.to_string()
    }

    fn send_sync(
        &mut self,
        member: &str,
        generation: i32,
        assign: &[(&str, &'static [u8])],
    ) -> i32 {
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(
                assign
                    .iter()
                    .map(|(m, a)| {
                        let mut x = SyncGroupRequestAssignment::default();
                        x.member_id = s(m);
                        x.assignment = Bytes::from_static(a);
                        x
                    })
                    .collect(),
            );
        self.send(ApiKey::SyncGroup, SYNC_V, &req)
    }

    fn sync_response(&mut self, id: i32) -> SyncGroupResponse {
        self.recv(ApiKey::SyncGroup, SYNC_V, id)
    }

    fn heartbeat(&mut self, member: &str, generation: i32) -> i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(generation)
            .with_member_id(s(member));
        let id = self.send(ApiKey::Heartbeat, HEARTBEAT_V, &req);
        let r: HeartbeatResponse = self.recv(ApiKey::Heartbeat, HEARTBEAT_V, id);
        r.error_code
    }

    fn describe(&mut self) -> describe_groups_response::DescribedGroup {
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP))]);
        let id = self.send(ApiKey::DescribeGroups, DESCRIBE_V, &req);
        let mut r: DescribeGroupsResponse = self.recv(ApiKey::DescribeGroups, DESCRIBE_V, id);
        r.groups.pop().expect("one group")
    }

    fn leave(&mut self, member: &str) -> i16 {
        let mut m = MemberIdentity::default();
        m.member_id = s(member);
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_members(vec![m]);
        let id = self.send(ApiKey::LeaveGroup, LEAVE_V, &req);
        let r: LeaveGroupResponse = self.recv(ApiKey::LeaveGroup, LEAVE_V, id);
        assert_eq!(r.error_code, 0);
        r.members.first().map_or(-1, |m| m.error_code)
    }
}

/// Right after a restart the port was seen accepting and then refusing connections, and
/// early connections closed unanswered; wait (bounded) until a fresh connection gets an
/// ApiVersions answer.
fn wait_answering(b: &Broker) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(mut sock) = TcpStream::connect(("127.0.0.1", b.port)) {
            let _ = sock.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let req = ApiVersionsRequest::default();
            if sock
                .write_all(&request(ApiKey::ApiVersions, 3, 1, &req))
                .is_ok()
                && read_frame(&mut sock).is_some()
            {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("broker not answering after restart");
}

/// Both members join (their JoinGroups wait for each other) and sync; returns the
/// (leader, follower) ids and the generation.
fn form(a: &mut Client, ida: &str, b: &mut Client, idb: &str) -> (String, String, i32) {
    let ja = a.send_join(ida);
    let jb = b.send_join(idb);
    let (ra, rb) = (a.join_response(ja), b.join_response(jb));
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!(
        ra.generation_id, rb.generation_id,
        "one generation for both"
    );
    let generation = ra.generation_id;
    let leader = ra.leader.to_string();
    let (lc, fc, lid, fid) = if leader == ida {
        (a, b, ida, idb)
    } else {
        (b, a, idb, ida)
    };
    let fs = fc.send_sync(fid, generation, &[]);
    let ls = lc.send_sync(lid, generation, &[(lid, b"L-part"), (fid, b"F-part")]);
    assert_eq!(&lc.sync_response(ls).assignment[..], b"L-part");
    assert_eq!(&fc.sync_response(fs).assignment[..], b"F-part");
    (lid.to_string(), fid.to_string(), generation)
}

#[test]
fn group_membership_and_generation_survive_a_broker_sigkill() {
    // The initial delay holds the first join phase open so both members land in it.
    let mut broker = start_broker_with("group_initial_rebalance_delay_ms = 500\n", Admin::Off);
    let (mut a, mut b) = (Client::new(&broker), Client::new(&broker));
    let (ida, idb) = (a.member_id(), b.member_id());
    let (leader, follower, generation) = form(&mut a, &ida, &mut b, &idb);
    assert_eq!(a.describe().group_state.as_str(), "Stable");

    broker.restart_after_sigkill();
    wait_answering(&broker);
    let (mut a, mut b) = (Client::new(&broker), Client::new(&broker));
    let d = a.describe();
    assert_eq!(d.group_state.as_str(), "Stable", "restored as it was");
    assert_eq!(d.protocol_data.as_str(), "range");
    let mut assigned: Vec<(String, Vec<u8>)> = d
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_assignment.to_vec()))
        .collect();
    assigned.sort();
    let mut want = vec![
        (leader.clone(), b"L-part".to_vec()),
        (follower.clone(), b"F-part".to_vec()),
    ];
    want.sort();
    assert_eq!(assigned, want, "members and their assignments restored");
    // Members carry on in their generation: no UNKNOWN_MEMBER_ID after the restart.
    assert_eq!(a.heartbeat(&ida, generation), 0);
    assert_eq!(b.heartbeat(&idb, generation), 0);

    // The leader re-joining (as a leader does when topic metadata changed) is an ordinary
    // rebalance of the known members into the next generation.
    let (lc, fc, lid, fid) = if leader == ida {
        (&mut a, &mut b, ida.as_str(), idb.as_str())
    } else {
        (&mut b, &mut a, idb.as_str(), ida.as_str())
    };
    let jl = lc.send_join(lid);
    // The JoinGroup may reach the group (on its owner shard) after the next heartbeat.
    let mut code = fc.heartbeat(fid, generation);
    for _ in 0..50 {
        if code != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        code = fc.heartbeat(fid, generation);
    }
    assert_eq!(code, REBALANCE_IN_PROGRESS);
    let jf = fc.send_join(fid);
    let (ra, rb) = (lc.join_response(jl), fc.join_response(jf));
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(ra.leader.as_str(), lid, "the leader stays");
    let next = ra.generation_id;
    let fs = fc.send_sync(fid, next, &[]);
    let ls = lc.send_sync(lid, next, &[(lid, b"L2"), (fid, b"F2")]);
    assert_eq!(lc.sync_response(ls).error_code, 0);
    assert_eq!(fc.sync_response(fs).error_code, 0);

    // Both leave; the Empty group is what comes back after the next crash.
    assert_eq!(a.leave(&ida), 0);
    assert_eq!(b.leave(&idb), 0);
    broker.restart_after_sigkill();
    wait_answering(&broker);
    let mut a = Client::new(&broker);
    let d = a.describe();
    assert!(
        d.group_state.as_str() == "Empty" || d.group_state.as_str() == "Dead",
        "state {:?}",
        d.group_state
    );
    assert!(d.members.is_empty());
    assert_eq!(a.heartbeat(&ida, next), UNKNOWN_MEMBER_ID);
}
