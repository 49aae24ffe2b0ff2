//! The minifb window under Xvfb: screenshots (xwd) show the rendered frame with the overlay
//! colours, `v` would cycle views (each view is started directly here), and Ctrl-C exits
//! cleanly with the summary. Set DYSAMPLE_SCREENSHOTS=DIR to keep the screenshots as PNGs.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Xvfb {
    child: Child,
    display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xvfb() -> Xvfb {
    let n = 60 + std::process::id() % 200;
    let display = format!(":{n}");
    let child = Command::new("Xvfb")
        .args([display.as_str(), "-screen", "0", "1400x560x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (apt-get install xvfb; tools/setup.sh installs it)");
    let sock = format!("/tmp/.X11-unix/X{n}");
    let t = Instant::now();
    while !Path::new(&sock).exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "Xvfb did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Xvfb { child, display }
}

/// The root window as RGB, through `xwd` (XWD ZPixmap, 24-bit depth in 32-bit pixels).
fn screenshot(display: &str) -> (usize, usize, Vec<u8>) {
    let o = Command::new("xwd").args(["-root", "-silent", "-display", display]).output().expect("xwd (apt-get install x11-apps)");
    assert!(o.status.success(), "xwd failed");
    let b = o.stdout;
    let be = |i: usize| u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
    let (header, format, width, height) = (be(0), be(2), be(4), be(5));
    let (byte_order, bpp, bpl, ncolors) = (be(7), be(11), be(12), be(19));
    let (rmask, gmask, bmask) = (be(13), be(14), be(15));
    assert_eq!((format, bpp), (2, 32), "unexpected XWD format");
    let data = &b[header + ncolors * 12..];
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let p = &data[y * bpl + x * 4..y * bpl + x * 4 + 4];
            let v = if byte_order == 0 { u32::from_le_bytes(p.try_into().unwrap()) } else { u32::from_be_bytes(p.try_into().unwrap()) } as usize;
            for m in [rmask, gmask, bmask] {
                rgb.push(((v & m) >> m.trailing_zeros()) as u8);
            }
        }
    }
    (width, height, rgb)
}

/// Runs the demo in a window until it has shown frames for a while, takes a screenshot, then
/// interrupts it like Ctrl-C. Returns the screenshot and the demo's stderr.
fn shot(x: &Xvfb, args: &[&str], name: &str) -> ((usize, usize, Vec<u8>), String) {
    let mut child = bin()
        .env("DISPLAY", &x.display)
        .args(args)
        .args(["--loop"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Two status lines: the window has been showing frames for over a second.
    let t = Instant::now();
    let mut status = 0;
    while status < 2 {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.contains(" fps |") => status += 1,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("no status lines from the demo: {}", reader.join().unwrap());
            }
        }
        assert!(t.elapsed() < Duration::from_secs(120));
    }
    let img = screenshot(&x.display);
    if let Some(dir) = std::env::var_os("DYSAMPLE_SCREENSHOTS") {
        let (w, h, px) = &img;
        std::fs::create_dir_all(&dir).unwrap();
        image::save_buffer(Path::new(&dir).join(format!("{name}.png")), px, *w as u32, *h as u32, image::ExtendedColorType::Rgb8).unwrap();
    }
    let st = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let t = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(t.elapsed() < Duration::from_secs(30), "did not exit after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = reader.join().unwrap();
    assert_eq!(code, Some(130), "exit after Ctrl-C: {log}");
    assert!(log.contains("interrupted") && log.contains("p99 ms") && log.contains("network"), "no summary after Ctrl-C: {log}");
    (img, log)
}

fn count(px: &[u8], w: usize, x0: usize, x1: usize, y1: usize, f: impl Fn(&[u8]) -> bool) -> usize {
    px.chunks_exact(3).enumerate().filter(|(i, p)| {
        let (x, y) = (i % w, i / w);
        x >= x0 && x < x1 && y < y1 && f(p)
    }).count()
}

#[test]
fn window_shows_the_rendered_views() {
    let x = xvfb();
    let seg = model("person-seg");
    let m = seg.to_str().unwrap();
    let pinkish = |p: &[u8]| p[0] as i32 - p[1] as i32 > 60 && p[2] as i32 - p[1] as i32 > 30;
    for view in ["overlay", "mask", "composite"] {
        let ((w, h, px), log) = shot(&x, &["segment", "builtin://", "display://0", "--model", m, "--visualize", view], &format!("segment-{view}"));
        let width = if view == "composite" { 1280 } else { 640 };
        // The window sits at the top left; the rest of the root stays black.
        let inside = count(&px, w, 0, width, 480.min(h), |p| p.iter().any(|&v| v > 8));
        assert!(inside > width * 480 / 3, "{view}: the window looks blank ({inside} lit pixels)");
        // Person colour below the legend.
        let pink = count(&px, w, 0, width, 480.min(h), pinkish) - count(&px, w, 0, 200, 30, pinkish);
        assert!(pink > 150, "{view}: only {pink} overlay-coloured pixels");
        if view == "mask" {
            // The mask view is class colours only: background black.
            let black = count(&px, w, 0, 640, 480, |p| p.iter().all(|&v| v < 6));
            assert!(black > 640 * 480 / 2, "mask: {black} black pixels");
        }
        assert!(log.contains("showed"), "{log}");
    }
    let depth = model("depth");
    let ((w, _, px), _) = shot(&x, &["depth", "builtin://", "display://0", "--model", depth.to_str().unwrap()], "depth-composite");
    // Left half the input, right half the colormap (inferno: no green-dominant pixels).
    let right = count(&px, w, 640, 1280, 480, |p| p.iter().any(|&v| v > 8));
    assert!(right > 640 * 480 / 2, "depth half blank: {right}");
}
