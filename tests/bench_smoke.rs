//! `sluice bench` end to end: a 5-second produce + consume run against a real broker,
//! checked through its JSON summary. One test drives `sluice serve`; the other drives
//! Apache Kafka via scripts/apache-kafka.sh (ignored by default: it fetches Kafka from
//! Maven and starts a JVM; run with `cargo test --test bench_smoke -- --ignored`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_bench::Summary;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sluice-bench-smoke-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Removes the scratch dir when the test ends, passed or not.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "broker exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("broker did not listen on {port} within 60 s");
}

/// Kills the broker it wraps when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a 5-second end-to-end bench and checks its JSON summary.
fn bench_and_check(bootstrap: &str, dir: &Path, label: &str) -> Summary {
    let out_dir = dir.join("results");
    let output = Command::new(SLUICE)
        .args(["bench", "run", "--bootstrap", bootstrap, "--label", label])
        .args(["--partitions", "4", "--producers", "2", "--consumers", "2"])
        .args([
            "--record-size",
            "100..2000",
            "--duration",
            "5s",
            "--warmup",
            "1s",
        ])
        // A fixed rate keeps the run 5 s long on any machine and ~100 MB on disk; the
        // count is a second bound.
        .args([
            "--rate",
            "20000",
            "--records",
            "200000",
            "--drain-timeout",
            "20s",
            "--quiet",
            "--out-dir",
        ])
        .arg(&out_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run sluice bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sluice bench failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");

    let summary = Summary::load(&out_dir.join(format!("{label}.json"))).expect("JSON summary");
    assert!(
        summary.records_sent > 1000,
        "too few records for a meaningful check: {}",
        summary.records_sent
    );
    assert_eq!(
        summary.records_acknowledged, summary.records_sent,
        "every sent record is acknowledged"
    );
    assert_eq!(summary.records_failed, 0);
    assert_eq!(
        summary.records_consumed, summary.records_sent,
        "consumers read back every record"
    );
    assert!(!summary.consumers_incomplete);
    for (name, l) in [
        ("produce_ack", &summary.produce_ack),
        ("end_to_end", &summary.end_to_end),
        ("fetch", &summary.fetch),
    ] {
        assert!(l.count > 0, "{name} has samples");
        assert!(l.is_monotonic(), "{name} percentiles are monotonic: {l:?}");
        assert!(l.p50_ms > 0.0, "{name} p50 is positive");
    }
    // Warm-up records are sent and acknowledged but kept out of the latency histograms.
    assert!(summary.produce_ack.count < summary.records_sent);
    assert!(summary.produce.records_per_second > 0.0);
    for h in ["produce-ack", "end-to-end", "fetch"] {
        let path = out_dir.join(format!("{label}.{h}.hgrm"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.contains("#[Max"), "{} is an hgrm file", path.display());
    }
    summary
}

#[test]
fn bench_against_sluice_serve_acknowledges_and_consumes_every_record() {
    let dir = scratch_dir("sluice");
    let _cleanup = RemoveOnDrop(dir.clone());
    let port = free_port();
    let config = dir.join("sluice.toml");
    // Small segments: the engine preallocates each one.
    std::fs::write(
        &config,
        format!(
            "[engine]\ndata_dir = \"{}\"\nshards = 1\n[engine.log]\nsegment_bytes = 67108864\n\n[server]\nlisteners = \"127.0.0.1:{port}\"\n",
            dir.join("data").display()
        ),
    )
    .expect("write config");
    let log = dir.join("serve.log");
    let child = Command::new(SLUICE)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start sluice serve");
    let mut broker = KillOnDrop(child);
    wait_for_port(port, &mut broker.0, &log);
    bench_and_check(&format!("127.0.0.1:{port}"), &dir, "sluice-smoke");
}

#[test]
#[ignore = "fetches Apache Kafka from Maven and starts a JVM; run with --ignored"]
fn bench_against_apache_kafka_acknowledges_and_consumes_every_record() {
    let dir = scratch_dir("kafka");
    let _cleanup = RemoveOnDrop(dir.clone());
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/apache-kafka.sh");
    let data = dir.join("kafka");
    let started = Command::new(&script)
        .args(["start", "--port", &port.to_string(), "--data-dir"])
        .arg(&data)
        .stderr(Stdio::inherit())
        .output()
        .expect("run apache-kafka.sh start");
    assert!(started.status.success(), "apache-kafka.sh start failed");
    struct StopKafka(PathBuf, PathBuf);
    impl Drop for StopKafka {
        fn drop(&mut self) {
            let _ = Command::new(&self.0)
                .args(["stop", "--data-dir"])
                .arg(&self.1)
                .status();
        }
    }
    let _stop = StopKafka(script.clone(), data.clone());
    let pid = String::from_utf8_lossy(&started.stdout).trim().to_string();
    assert!(
        pid.parse::<u32>().is_ok(),
        "start prints the PID, got `{pid}`"
    );
    bench_and_check(&format!("127.0.0.1:{port}"), &dir, "kafka-smoke");
}
