//! Replay protection for one peer's authentic datagrams: each carries the sender's
//! epoch (when it started) and a sequence number from 1 within it. A datagram is
//! taken once, and only if it is from the newest epoch seen and within the last
//! [`WINDOW`] sequence numbers (datagrams may arrive out of order, not twice).

/// How far behind the newest sequence number a datagram may arrive.
pub const WINDOW: u64 = 64;

/// What one peer has sent: its epoch, the newest sequence number, and which of the
/// [`WINDOW`] before it have arrived (bit `n`: `top - n`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    epoch: u64,
    top: u64,
    seen: u64,
}

impl Replay {
    /// Whether a datagram of `epoch` and `seq` is new; if so it is noted. A newer epoch
    /// (the peer restarted) starts again from its sequence number.
    pub fn accept(&mut self, epoch: u64, seq: u64) -> bool {
        if seq == 0 || epoch < self.epoch {
            return false;
        }
        if epoch > self.epoch || self.top == 0 {
            *self = Self { epoch, top: seq, seen: 1 };
            return true;
        }
        if seq > self.top {
            let shift = seq - self.top;
            self.seen = if shift >= WINDOW { 1 } else { (self.seen << shift) | 1 };
            self.top = seq;
            return true;
        }
        let behind = self.top - seq;
        if behind >= WINDOW || self.seen & (1 << behind) != 0 {
            return false;
        }
        self.seen |= 1 << behind;
        true
    }

    /// The newest sequence number taken, 0 before the first datagram.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The peer's epoch, 0 before its first datagram.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_datagram_is_taken_once() {
        let mut r = Replay::default();
        assert!(r.accept(10, 1));
        assert!(!r.accept(10, 1));
        assert!(r.accept(10, 2));
        assert!(!r.accept(10, 2));
        assert!(!r.accept(10, 0));
    }

    #[test]
    fn out_of_order_within_the_window() {
        let mut r = Replay::default();
        assert!(r.accept(10, 100));
        assert!(r.accept(10, 90));
        assert!(!r.accept(10, 90));
        assert!(r.accept(10, 100 - (WINDOW - 1)));
        assert!(!r.accept(10, 100 - WINDOW), "older than the window");
        assert!(r.accept(10, 1000));
        assert!(!r.accept(10, 1000 - WINDOW));
        assert!(r.accept(10, 999));
        assert!(!r.accept(10, 100));
    }

    #[test]
    fn a_restart_is_a_newer_epoch_and_an_older_one_is_a_replay() {
        let mut r = Replay::default();
        assert!(r.accept(10, 500));
        assert!(r.accept(11, 1), "the peer restarted");
        assert_eq!(r.epoch(), 11);
        assert!(!r.accept(10, 501), "from before the restart");
        assert!(r.accept(11, 2));
    }

    #[test]
    fn the_window_slides_by_any_step() {
        let mut r = Replay::default();
        for seq in (1..2000).step_by(7) {
            assert!(r.accept(5, seq));
            assert!(!r.accept(5, seq));
        }
    }
}
