//! The reconnect logic against a fake camera that goes away and comes back.

use dysample_video::source::{Backoff, FrameSource, Grab, Reconnecting};
use dysample_video::{Frame, Result, VideoError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Gives `frames` frames numbered from `first`, then reports a disconnect.
struct FakeCamera {
    next: u8,
    left: usize,
}

impl FrameSource for FakeCamera {
    fn name(&self) -> &str {
        "fake"
    }
    fn grab(&mut self) -> Result<Grab> {
        if self.left == 0 {
            return Err(VideoError::Disconnected {
                what: "fake".into(),
                detail: "No such device (os error 19)".into(),
            });
        }
        self.left -= 1;
        self.next += 1;
        Ok(Grab::Frame)
    }
    fn decode(&mut self, out: &mut Frame) -> Result<()> {
        out.reshape(1, 1);
        out.data.fill(self.next);
        Ok(())
    }
    fn is_live(&self) -> bool {
        true
    }
}

#[test]
fn reconnects_with_backoff_and_keeps_streaming() {
    let opens = Arc::new(AtomicUsize::new(0));
    let sleeps = Arc::new(Mutex::new(Vec::new()));
    let o = opens.clone();
    // Unplugged for three attempts, then back with frames 100, 101, ...
    let opener = Box::new(move || -> Result<Box<dyn FrameSource>> {
        let n = o.fetch_add(1, Ordering::SeqCst);
        if n < 3 {
            Err(VideoError::Io {
                what: "/dev/video9".into(),
                detail: "No such file or directory (os error 2)".into(),
            })
        } else {
            Ok(Box::new(FakeCamera {
                next: 99,
                left: 1000,
            }))
        }
    });
    let s = sleeps.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let mut src = Reconnecting::new(
        "/dev/video9".into(),
        Box::new(FakeCamera { next: 0, left: 2 }),
        opener,
        stop.clone(),
    )
    .with_sleeper(
        Box::new(move |d| s.lock().unwrap().push(d)),
        Backoff::new(Duration::from_millis(100), Duration::from_millis(300)),
    );
    let mut seen = Vec::new();
    let mut f = Frame::new();
    for _ in 0..4 {
        assert_eq!(src.grab().unwrap(), Grab::Frame);
        src.decode(&mut f).unwrap();
        seen.push(f.data[0]);
    }
    assert_eq!(
        seen,
        vec![1, 2, 100, 101],
        "frames before the unplug, then from the new device"
    );
    assert_eq!(opens.load(Ordering::SeqCst), 4);
    assert_eq!(src.reconnects(), 1);
    let ms: Vec<u128> = sleeps
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_millis())
        .collect();
    assert_eq!(ms, vec![100, 200, 300], "doubling, capped");
    assert!(src.is_live());
}

#[test]
fn stop_ends_a_source_that_never_comes_back() {
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    let opener = Box::new(move || -> Result<Box<dyn FrameSource>> {
        if t.fetch_add(1, Ordering::SeqCst) == 5 {
            st.store(true, Ordering::SeqCst); // Ctrl-C while waiting
        }
        Err(VideoError::Io {
            what: "cam".into(),
            detail: "gone".into(),
        })
    });
    let mut src = Reconnecting::new(
        "cam".into(),
        Box::new(FakeCamera { next: 0, left: 0 }),
        opener,
        stop,
    )
    .with_sleeper(
        Box::new(|_| {}),
        Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
    );
    assert_eq!(src.grab().unwrap(), Grab::End);
    assert_eq!(tries.load(Ordering::SeqCst), 6);
    assert_eq!(src.reconnects(), 0);
}

#[test]
fn corrupt_frames_are_not_disconnects() {
    struct Flaky(u32);
    impl FrameSource for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn grab(&mut self) -> Result<Grab> {
            self.0 += 1;
            if self.0 == 2 {
                Err(VideoError::Corrupt("bad JPEG".into()))
            } else {
                Ok(Grab::Frame)
            }
        }
        fn decode(&mut self, _out: &mut Frame) -> Result<()> {
            Ok(())
        }
    }
    let opener = Box::new(|| -> Result<Box<dyn FrameSource>> { panic!("must not reopen") });
    let mut src = Reconnecting::new(
        "flaky".into(),
        Box::new(Flaky(0)),
        opener,
        Arc::new(AtomicBool::new(false)),
    );
    assert_eq!(src.grab().unwrap(), Grab::Frame);
    assert!(src.grab().unwrap_err().is_corrupt_frame());
    assert_eq!(src.grab().unwrap(), Grab::Frame);
}
