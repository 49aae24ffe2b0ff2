//! Containers that are not read natively go through ffmpeg; a stand-in `ffmpeg` script (named
//! by DYSAMPLE_FFMPEG) plays the part, so the pipe protocol is tested without ffmpeg installed.
//! One test per process state: this file's tests set the environment variable in order.

use dysample_video::source::{open_source, Grab, SourceOptions};
use dysample_video::uri::InputUri;
use dysample_video::y4m::Y4mWriter;
use dysample_video::Frame;
use std::os::unix::fs::PermissionsExt;

#[test]
fn through_ffmpeg_or_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    std::fs::write(&clip, "pretend mp4").unwrap();

    // No ffmpeg: the error says what is read natively and that ffmpeg is missing.
    std::env::set_var("DYSAMPLE_FFMPEG", dir.path().join("no-such-ffmpeg"));
    let e = open_source(&InputUri::File(clip.clone()), &SourceOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(".mp4 is not read natively") && e.contains("ffmpeg is not installed"),
        "{e}"
    );
    let e = open_source(
        &InputUri::Network("rtsp://cam/stream".into()),
        &SourceOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("ffmpeg"), "{e}");

    // A stand-in ffmpeg that answers -version and otherwise writes a Y4M stream to stdout.
    let y4m = dir.path().join("frames.y4m");
    let mut w = Y4mWriter::new(std::fs::File::create(&y4m).unwrap(), 8, 6, 15).unwrap();
    for k in 0..3u8 {
        let mut f = Frame::with_size(8, 6);
        f.data.fill(40 + 60 * k);
        w.write(&f).unwrap();
    }
    w.finish().unwrap();
    let fake = dir.path().join("ffmpeg");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n[ \"$1\" = -version ] && exit 0\nexec cat '{}'\n",
            y4m.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::env::set_var("DYSAMPLE_FFMPEG", &fake);
    let mut src = open_source(&InputUri::File(clip), &SourceOptions::default()).unwrap();
    assert!(
        src.describe().contains("through ffmpeg"),
        "{}",
        src.describe()
    );
    let mut f = Frame::new();
    let mut means = Vec::new();
    while src.grab().unwrap() == Grab::Frame {
        src.decode(&mut f).unwrap();
        means.push(f.data.iter().map(|&v| v as u32).sum::<u32>() / f.data.len() as u32);
    }
    assert_eq!(means.len(), 3);
    assert!(means[0] < means[1] && means[1] < means[2], "{means:?}");
    // --loop restarts ffmpeg.
    assert!(src.rewind().unwrap());
    assert_eq!(src.grab().unwrap(), Grab::Frame);

    // ffmpeg that fails: a one-line error.
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1\" = -version ] && exit 0\necho 'moov atom not found' >&2; exit 1\n",
    )
    .unwrap();
    let e = open_source(
        &InputUri::File(dir.path().join("clip.mp4")),
        &SourceOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("ffmpeg could not read it") && !e.contains('\n'),
        "{e}"
    );
    let _ = src.fps();
}
