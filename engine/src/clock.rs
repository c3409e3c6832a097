//! Time as a dependency: storage never reads the wall clock directly, so tests can drive it.

use std::cell::Cell;
use std::rc::Rc;

/// Milliseconds since the Unix epoch, as Kafka timestamps are.
pub trait Clock {
    fn now_ms(&self) -> i64;
    /// A monotonic microsecond counter for measuring durations (not wall time).
    fn monotonic_us(&self) -> u64;
}

/// The real wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn monotonic_us(&self) -> u64 {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_micros() as u64
    }
}

/// A clock tests move by hand.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now_ms: Rc<Cell<i64>>,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        ManualClock {
            now_ms: Rc::new(Cell::new(start_ms)),
        }
    }
    pub fn advance_ms(&self, by: i64) {
        self.now_ms.set(self.now_ms.get() + by);
    }
    pub fn set_ms(&self, to: i64) {
        self.now_ms.set(to);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.get()
    }

    fn monotonic_us(&self) -> u64 {
        (self.now_ms.get().max(0) as u64) * 1000
    }
}
