//! A one-slot queue between two threads that recycles its buffers.
//!
//! `push_latest` replaces a frame the consumer has not taken yet (the newest frame wins; the
//! old one is counted as dropped and goes back to the free list), `push_wait` waits for the
//! slot instead (files, where every frame counts). Buffers travel producer → consumer → free
//! list → producer, so a steady stream allocates nothing.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug)]
struct State<T> {
    slot: Option<T>,
    free: Vec<T>,
    closed: bool,
    dropped: u64,
    pushed: u64,
}

/// What [`LatestQueue::pop`] returns.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<T> {
    Item(T),
    /// Nothing arrived in time.
    Timeout,
    /// Closed and empty.
    Closed,
}

/// The queue; share it in an `Arc`.
#[derive(Debug)]
pub struct LatestQueue<T> {
    state: Mutex<State<T>>,
    cv: Condvar,
}

impl<T> LatestQueue<T> {
    /// A queue whose free list starts with `buffers` (made by `make`).
    pub fn new(buffers: usize, mut make: impl FnMut() -> T) -> Self {
        let mut free = Vec::with_capacity(buffers + 2);
        for _ in 0..buffers {
            free.push(make());
        }
        Self {
            state: Mutex::new(State {
                slot: None,
                free,
                closed: false,
                dropped: 0,
                pushed: 0,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic on the other side must not take this thread down too.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer to fill, if one is free.
    pub fn take_free(&self) -> Option<T> {
        self.lock().free.pop()
    }

    /// Gives a buffer back to the free list.
    pub fn recycle(&self, item: T) {
        let mut s = self.lock();
        if s.free.len() < s.free.capacity() {
            s.free.push(item);
        }
    }

    /// Puts `item` in the slot, replacing (and counting as dropped) a frame not taken yet.
    /// `false` (and the item is recycled) if the queue is closed.
    pub fn push_latest(&self, item: T) -> bool {
        let mut s = self.lock();
        if s.closed {
            if s.free.len() < s.free.capacity() {
                s.free.push(item);
            }
            return false;
        }
        if let Some(old) = s.slot.replace(item) {
            s.dropped += 1;
            if s.free.len() < s.free.capacity() {
                s.free.push(old);
            }
        }
        s.pushed += 1;
        drop(s);
        self.cv.notify_all();
        true
    }

    /// Waits until the slot is empty, then puts `item` in it; `false` if the queue is closed.
    pub fn push_wait(&self, item: T) -> bool {
        let mut s = self.lock();
        while s.slot.is_some() && !s.closed {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.closed {
            if s.free.len() < s.free.capacity() {
                s.free.push(item);
            }
            return false;
        }
        s.slot = Some(item);
        s.pushed += 1;
        drop(s);
        self.cv.notify_all();
        true
    }

    /// Takes the frame in the slot, waiting up to `timeout` for one.
    pub fn pop(&self, timeout: Duration) -> Pop<T> {
        let mut s = self.lock();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(item) = s.slot.take() {
                drop(s);
                self.cv.notify_all();
                return Pop::Item(item);
            }
            if s.closed {
                return Pop::Closed;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Pop::Timeout;
            }
            s = self
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// No more pushes; `pop` drains the slot, then returns [`Pop::Closed`].
    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Frames replaced before the consumer took them.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Frames pushed.
    pub fn pushed(&self) -> u64 {
        self.lock().pushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn latest_wins_and_drops_are_counted() {
        let q = LatestQueue::new(3, || 0u32);
        for i in 1..=5 {
            q.push_latest(i);
        }
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(5));
        assert_eq!(q.dropped(), 4);
        assert_eq!(q.pushed(), 5);
        assert_eq!(q.pop(Duration::from_millis(5)), Pop::Timeout);
        q.close();
        assert_eq!(q.pop(Duration::from_secs(5)), Pop::Closed);
        assert!(!q.push_latest(9));
    }

    #[test]
    fn push_wait_never_drops() {
        let q = Arc::new(LatestQueue::new(2, || 0u64));
        let p = q.clone();
        let t = std::thread::spawn(move || {
            for i in 0..200u64 {
                assert!(p.push_wait(i));
            }
            p.close();
        });
        let mut got = Vec::new();
        loop {
            match q.pop(Duration::from_secs(5)) {
                Pop::Item(i) => got.push(i),
                Pop::Closed => break,
                Pop::Timeout => panic!("stalled"),
            }
        }
        t.join().unwrap();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert_eq!(q.dropped(), 0);
    }

    #[test]
    fn close_wakes_a_waiting_producer() {
        let q = Arc::new(LatestQueue::new(1, || 0u8));
        assert!(q.push_wait(1));
        let p = q.clone();
        let t = std::thread::spawn(move || p.push_wait(2));
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert!(!t.join().unwrap());
        // The frame already in the slot is still delivered.
        assert_eq!(q.pop(Duration::ZERO), Pop::Item(1));
    }
}
