//! An RGB frame whose buffer is reused from frame to frame.

/// An 8-bit RGB image, rows packed (`width * 3` bytes each), plus where it came from and what
/// getting it cost.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    /// `width * height * 3` bytes, R G B.
    pub data: Vec<u8>,
    /// Frame number in its source (0-based, counting only delivered frames).
    pub seq: u64,
    /// Time spent waiting for / reading the encoded frame, in nanoseconds.
    pub capture_ns: u64,
    /// Time spent decoding it to RGB, in nanoseconds.
    pub decode_ns: u64,
}

impl Frame {
    /// An empty frame (no allocation).
    pub fn new() -> Self {
        Self::default()
    }

    /// A black frame of this size.
    pub fn with_size(width: usize, height: usize) -> Self {
        let mut f = Self::new();
        f.reshape(width, height);
        f
    }

    /// Sets the size; reallocates only when the buffer has to grow.
    pub fn reshape(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.data.resize(width * height * 3, 0);
    }

    /// Makes this frame a copy of `other` (reusing the buffer).
    pub fn copy_from(&mut self, other: &Frame) {
        self.reshape(other.width, other.height);
        self.data.copy_from_slice(&other.data);
        self.seq = other.seq;
        self.capture_ns = other.capture_ns;
        self.decode_ns = other.decode_ns;
    }

    /// The pixel at (x, y).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}
