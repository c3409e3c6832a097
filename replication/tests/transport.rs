//! The inter-broker transport over real loopback TCP on a glommio executor: pipelined
//! frames arrive whole and in order; a damaged frame or an absurd length closes the
//! connection without delivering anything.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::LocalExecutorBuilder;
use sluice_replication::partition::{ReplicaBody, ReplicaMessage};
use sluice_replication::transport::{serve, PeerLink};
use sluice_replication::wire::FrameKind;

fn append(i: i64, bytes: usize) -> ReplicaMessage {
    ReplicaMessage {
        from: 1,
        topic: "t".into(),
        partition: 0,
        body: ReplicaBody::Append {
            leader_epoch: 1,
            base_offset: i,
            records: vec![(i % 251) as u8; bytes],
            leader_high_watermark: 0,
            leader_log_end: i + 1,
            sent_ms: 0,
        },
    }
}

fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::default()
        .spawn(f)
        .expect("executor starts")
        .join()
        .expect("executor finishes");
}

#[test]
fn pipelined_frames_arrive_whole_and_in_order() {
    run(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got: Rc<RefCell<Vec<ReplicaMessage>>> = Rc::default();
        let sink = got.clone();
        glommio::spawn_local(serve(listener, move |kind, frame| {
            assert_eq!(kind, FrameKind::Replica);
            sink.borrow_mut()
                .push(ReplicaMessage::decode(frame).unwrap());
        }))
        .detach();
        let link = PeerLink::spawn(addr);
        const COUNT: i64 = 3_000;
        const BYTES: usize = 16 * 1024;
        let started = Instant::now();
        let mut sent = 0;
        while sent < COUNT {
            // Queue in bursts no larger than the link's queue, as a leader's pushes would.
            for _ in 0..256.min(COUNT - sent) {
                link.send(append(sent, BYTES).encode());
                sent += 1;
            }
            while (got.borrow().len() as i64) < sent - 512 {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while (got.borrow().len() as i64) < COUNT && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        let got = got.borrow();
        assert_eq!(link.stats().dropped_frames.get(), 0);
        assert_eq!(got.len() as i64, COUNT);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(*m, append(i as i64, BYTES), "frame {i}");
        }
        println!(
            "transport: {COUNT} frames of {BYTES} B over loopback in {secs:.3} s = {:.0} MB/s, {:.0} frames/s (one link, one executor, debug build)",
            (COUNT as f64 * BYTES as f64) / secs / 1e6,
            COUNT as f64 / secs
        );
    });
}

#[test]
fn a_damaged_frame_or_an_absurd_length_closes_the_connection() {
    run(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got: Rc<RefCell<usize>> = Rc::default();
        let sink = got.clone();
        glommio::spawn_local(serve(listener, move |_, _| *sink.borrow_mut() += 1)).detach();

        let mut good = append(1, 100).encode();
        // A flipped payload bit: the checksum catches it.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let last = good.len() - 1;
        good[last] ^= 1;
        s.write_all(&good).await.unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(s.read(&mut byte).await.unwrap(), 0, "connection closed");

        // A header that declares 4 GiB: refused from the header alone.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut header = append(1, 100).encode()[..16].to_vec();
        header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        s.write_all(&header).await.unwrap();
        assert_eq!(s.read(&mut byte).await.unwrap(), 0, "connection closed");
        assert_eq!(*got.borrow(), 0, "nothing delivered");

        // The server still serves good frames on a new connection.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&append(2, 100).encode()).await.unwrap();
        s.flush().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while *got.borrow() == 0 && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(*got.borrow(), 1);
    });
}
