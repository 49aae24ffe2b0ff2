//! `display://0`: a minifb window on its own thread, fed through a latest-frame-wins queue.
//! Keys: `q`/Esc quit, space pauses, `v` cycles the visualization.

use crate::queue::{LatestQueue, Pop};
use crate::sink::{Controls, FrameSink};
use crate::stats::Histogram;
use crate::{Frame, Result, VideoError};
use minifb::{Key, KeyRepeat, Window, WindowOptions};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The window sink.
pub struct WindowSink {
    queue: Arc<LatestQueue<Frame>>,
    controls: Arc<Controls>,
    hist: Arc<Mutex<Histogram>>,
    thread: Option<JoinHandle<()>>,
    shown: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for WindowSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WindowSink")
    }
}

fn open_window(title: &str, w: usize, h: usize) -> std::result::Result<Window, String> {
    let mut win = Window::new(
        title,
        w,
        h,
        WindowOptions {
            resize: true,
            ..WindowOptions::default()
        },
    )
    .map_err(|e| e.to_string().replace('\n', " "))?;
    win.set_target_fps(0);
    Ok(win)
}

impl WindowSink {
    /// Opens a 640x480 window (resized to the first frame) on a new thread.
    pub fn open(title: &str) -> Result<Self> {
        let queue = Arc::new(LatestQueue::new(3, Frame::new));
        let controls = Arc::new(Controls::default());
        controls.set_title(title);
        let hist = Arc::new(Mutex::new(Histogram::default()));
        let shown = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (tx, rx) = mpsc::sync_channel::<std::result::Result<(), String>>(1);
        let (q, c, hi, sh) = (queue.clone(), controls.clone(), hist.clone(), shown.clone());
        let title = title.to_string();
        let thread = std::thread::Builder::new()
            .name("display".into())
            .spawn(move || {
                let mut win = match open_window(&title, 640, 480) {
                    Ok(w) => {
                        let _ = tx.send(Ok(()));
                        w
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let mut pixels: Vec<u32> = Vec::new();
                let (mut cur_w, mut cur_h) = (640usize, 480usize);
                let mut title_now = title.clone();
                let mut last_title = Instant::now();
                loop {
                    match q.pop(Duration::from_millis(15)) {
                        Pop::Item(frame) => {
                            let t = Instant::now();
                            if (frame.width, frame.height) != (cur_w, cur_h) {
                                match open_window(&title_now, frame.width, frame.height) {
                                    Ok(w) => win = w,
                                    Err(e) => {
                                        eprintln!("display://0: cannot reopen the window: {e}");
                                        c.quit.store(true, Ordering::Relaxed);
                                        break;
                                    }
                                }
                                (cur_w, cur_h) = (frame.width, frame.height);
                            }
                            pixels.resize(frame.width * frame.height, 0);
                            for (p, s) in pixels.iter_mut().zip(frame.data.chunks_exact(3)) {
                                *p = (s[0] as u32) << 16 | (s[1] as u32) << 8 | s[2] as u32;
                            }
                            let r = win.update_with_buffer(&pixels, frame.width, frame.height);
                            q.recycle(frame);
                            if let Err(e) = r {
                                eprintln!("display://0: {}", e.to_string().replace('\n', " "));
                                c.quit.store(true, Ordering::Relaxed);
                                break;
                            }
                            hi.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .record(t.elapsed().as_nanos() as u64);
                            sh.fetch_add(1, Ordering::Relaxed);
                        }
                        Pop::Timeout => win.update(),
                        Pop::Closed => break,
                    }
                    if !win.is_open()
                        || win.is_key_down(Key::Escape)
                        || win.is_key_pressed(Key::Q, KeyRepeat::No)
                    {
                        c.quit.store(true, Ordering::Relaxed);
                        break;
                    }
                    if win.is_key_pressed(Key::Space, KeyRepeat::No) {
                        c.paused.fetch_xor(true, Ordering::Relaxed);
                    }
                    if win.is_key_pressed(Key::V, KeyRepeat::No) {
                        c.cycle.fetch_add(1, Ordering::Relaxed);
                    }
                    if last_title.elapsed() > Duration::from_millis(500) {
                        last_title = Instant::now();
                        let t = c.title.lock().unwrap_or_else(|p| p.into_inner());
                        if *t != title_now {
                            title_now.clone_from(&t);
                            win.set_title(&title_now);
                        }
                    }
                }
            })
            .map_err(|e| VideoError::io("display thread", e))?;
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(VideoError::Usage(format!(
                    "display://0: cannot open a window ({e}); use --headless or a file output"
                )));
            }
            Err(_) => {
                return Err(VideoError::Usage(
                    "display://0: the window did not open within 20 s; use --headless".into(),
                ))
            }
        }
        Ok(Self {
            queue,
            controls,
            hist,
            thread: Some(thread),
            shown,
        })
    }
}

impl FrameSink for WindowSink {
    fn name(&self) -> String {
        "display://0".into()
    }
    fn write(&mut self, frame: &Frame) -> Result<()> {
        let mut b = self.queue.take_free().unwrap_or_default();
        b.copy_from(frame);
        self.queue.push_latest(b);
        Ok(())
    }
    fn finish(&mut self) -> Result<String> {
        self.queue.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(format!(
            "showed {} frames in the window ({} replaced by newer ones before they were shown)",
            self.shown.load(Ordering::Relaxed),
            self.queue.dropped()
        ))
    }
    fn controls(&self) -> Option<Arc<Controls>> {
        Some(self.controls.clone())
    }
    fn display_histogram(&self) -> Option<Histogram> {
        Some(self.hist.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl Drop for WindowSink {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
