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
        .args([
            display.as_str(),
            "-screen",
            "0",
            "1400x560x24",
            "-nolisten",
            "tcp",
        ])
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
    let o = Command::new("xwd")
        .args(["-root", "-silent", "-display", display])
        .output()
        .expect("xwd (apt-get install x11-apps)");
    assert!(o.status.success(), "xwd failed");
    let b = o.stdout;
    let be = |i: usize| u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
    let (header, format, width, height) = (be(0), be(2), be(4), be(5));
    let (byte_order, bpp, bpl, ncolors) = (be(7), be(11), be(12), be(19));
    let (rmask, gmask, bmask) = (be(14), be(15), be(16));
    assert_eq!((format, bpp), (2, 32), "unexpected XWD format");
    let data = &b[header + ncolors * 12..];
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let p = &data[y * bpl + x * 4..y * bpl + x * 4 + 4];
            let v = if byte_order == 0 {
                u32::from_le_bytes(p.try_into().unwrap())
            } else {
                u32::from_be_bytes(p.try_into().unwrap())
            } as usize;
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
        image::save_buffer(
            Path::new(&dir).join(format!("demo-{name}.png")),
            px,
            *w as u32,
            *h as u32,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "did not exit after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = reader.join().unwrap();
    assert_eq!(code, Some(130), "exit after Ctrl-C: {log}");
    assert!(
        log.contains("interrupted") && log.contains("p99 ms") && log.contains("network"),
        "no summary after Ctrl-C: {log}"
    );
    (img, log)
}

/// The bounding box (x0, y0, x1, y1) of the lit pixels: the window on the black root.
fn window_box(px: &[u8], w: usize) -> (usize, usize, usize, usize) {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, p) in px.chunks_exact(3).enumerate() {
        if p.iter().any(|&v| v > 8) {
            let (x, y) = (i % w, i / w);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
        }
    }
    assert!(x1 > x0, "the screen is blank");
    (x0, y0, x1, y1)
}

/// Where a `ww x wh` window centred on a `w x h` screen lies.
fn centred(w: usize, h: usize, ww: usize, wh: usize) -> (usize, usize, usize, usize) {
    let (x0, y0) = ((w - ww) / 2, (h - wh) / 2);
    (x0, y0, x0 + ww, y0 + wh)
}

fn count(px: &[u8], w: usize, b: (usize, usize, usize, usize), f: impl Fn(&[u8]) -> bool) -> usize {
    let (x0, y0, x1, y1) = b;
    px.chunks_exact(3)
        .enumerate()
        .filter(|(i, p)| {
            let (x, y) = (i % w, i / w);
            x >= x0 && x < x1 && y >= y0 && y < y1 && f(p)
        })
        .count()
}

#[test]
fn window_shows_the_rendered_views() {
    let x = xvfb();
    let seg = model("person-seg");
    let m = seg.to_str().unwrap();
    let pinkish = |p: &[u8]| p[0] as i32 - p[1] as i32 > 60 && p[2] as i32 - p[1] as i32 > 30;
    for view in ["overlay", "mask", "composite"] {
        let ((w, h, px), log) = shot(
            &x,
            &[
                "segment",
                "builtin://",
                "display://0",
                "--model",
                m,
                "--visualize",
                view,
            ],
            &format!("segment-{view}"),
        );
        let width = if view == "composite" { 1280 } else { 640 };
        // minifb centres the window on the screen.
        let b = centred(w, h, width, 480);
        if view != "mask" {
            let lit_box = window_box(&px, w);
            // The camera picture fills at least the left 640 columns; composite's right half is
            // the mask view, black wherever the current frame has no person, so the lit box
            // need not reach the window's right edge.
            assert!(
                lit_box.2 - lit_box.0 >= 640 - 8 && lit_box.0 >= b.0 && lit_box.2 <= b.2,
                "{view}: lit area {lit_box:?}, window {b:?}"
            );
        }
        let lit = count(&px, w, b, |p| p.iter().any(|&v| v > 8));
        if view != "mask" {
            assert!(
                lit > width * 480 / 3,
                "{view}: the window looks blank ({lit} lit pixels)"
            );
        }
        // Person colour outside the legend.
        let legend = (b.0, b.1, b.0 + 200, b.1 + 30);
        let pink = count(&px, w, b, pinkish) - count(&px, w, legend, pinkish);
        assert!(pink > 150, "{view}: only {pink} overlay-coloured pixels");
        if view == "mask" {
            // The mask view is class colours only: background black.
            let black = count(&px, w, b, |p| p.iter().all(|&v| v < 6));
            assert!(black > 640 * 480 / 2, "mask: {black} black pixels");
        }
        assert!(log.contains("showed"), "{log}");
    }
    let depth = model("depth");
    let ((w, _, px), _) = shot(
        &x,
        &[
            "depth",
            "builtin://",
            "display://0",
            "--model",
            depth.to_str().unwrap(),
        ],
        "depth-composite",
    );
    // Input on the left, the inferno colormap on the right: mostly purple (blue and red over
    // green), which the outdoor input is not.
    let b = centred(w, px.len() / 3 / w, 1280, 480);
    let lit = window_box(&px, w);
    assert!(lit.2 - lit.0 >= 1270, "depth window lit area {lit:?}");
    let mid = b.0 + 640;
    let purple = |p: &[u8]| p[2] as i32 > p[1] as i32 + 20 && p[0] as i32 > p[1] as i32;
    let (left, right) = (
        count(&px, w, (b.0, b.1, mid, b.3), purple),
        count(&px, w, (mid, b.1, b.2, b.3), purple),
    );
    assert!(
        right > 640 * 480 / 2 && left < 640 * 480 / 10,
        "purple pixels: input {left}, depth {right}"
    );
    // The depth view alone, in turbo: a 640-wide window of saturated colours (the grey street
    // clip has few), where the inferno composite's right half was purple.
    let ((w, h, px), log) = shot(
        &x,
        &[
            "depth",
            "builtin://",
            "display://0",
            "--model",
            depth.to_str().unwrap(),
            "--visualize",
            "depth",
            "--colormap",
            "turbo",
        ],
        "depth-depth",
    );
    let b = centred(w, h, 640, 480);
    let lit = window_box(&px, w);
    assert!(
        lit.2 - lit.0 >= 630 && lit.2 - lit.0 <= 650,
        "depth view lit area {lit:?}, window {b:?}"
    );
    let saturated = count(&px, w, b, |p| {
        p.iter().max().unwrap() - p.iter().min().unwrap() > 60
    });
    assert!(
        saturated > 640 * 480 * 2 / 3,
        "depth view: only {saturated} saturated pixels"
    );
    assert!(log.contains("showed"), "{log}");
}
