//! IPv4 options (RFC 791 §3.1), as far as the translator looks at them.
//!
//! RFC 7915 §4.1 ignores options, except that a packet carrying an unexpired source
//! route is not translated: its sender gets Destination Unreachable, Source Route
//! Failed, as the translator cannot honour the route on the IPv6 side.

/// End of option list.
const EOOL: u8 = 0;
/// No operation (one byte).
const NOP: u8 = 1;
/// Loose and strict source and record route.
const LSRR: u8 = 131;
const SSRR: u8 = 137;
/// The most option bytes an IPv4 header holds (IHL 15).
pub const MAX_OPTIONS: usize = 40;

/// One step of the walk over the option list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The next option starts at this offset.
    Next(usize),
    /// A source route with addresses left to visit (its pointer still inside it).
    SourceRoute,
    /// The list ends here (end of list, end of the header, or malformed: what follows
    /// cannot be told apart from padding).
    End,
}

/// Looks at the option starting at `i` of the first `len` bytes of `opts`.
#[inline(always)]
pub fn step(opts: &[u8], i: usize, len: usize) -> Step {
    let len = if len > MAX_OPTIONS { MAX_OPTIONS } else { len };
    if i >= len {
        return Step::End;
    }
    let kind = match opts.get(i) {
        Some(&EOOL) | None => return Step::End,
        Some(&NOP) => return Step::Next(i + 1),
        Some(&k) => k,
    };
    let olen = match opts.get(i + 1) {
        Some(&l) if l >= 2 && i + l as usize <= len => l as usize,
        _ => return Step::End,
    };
    if kind == LSRR || kind == SSRR {
        // The pointer is 1-based within the option; past the end, the route is done.
        if olen >= 3 && opts.get(i + 2).is_some_and(|&p| (p as usize) < olen) {
            return Step::SourceRoute;
        }
    }
    Step::Next(i + olen)
}

/// Whether the first `len` bytes of `opts` (the options of an IPv4 header) hold an
/// unexpired source route. The data path takes the same steps through bpf_loop.
pub fn source_route_unexpired(opts: &[u8], len: usize) -> bool {
    let mut i = 0;
    // Each step moves on by at least one byte: MAX_OPTIONS steps cover any list.
    for _ in 0..MAX_OPTIONS {
        match step(opts, i, len) {
            Step::Next(n) => i = n,
            Step::SourceRoute => return true,
            Step::End => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_routes_found_expired_and_malformed() {
        // LSRR with two addresses, pointer at the first (4): unexpired.
        let lsrr = [LSRR, 11, 4, 1, 2, 3, 4, 5, 6, 7, 8, EOOL];
        assert!(source_route_unexpired(&lsrr, 12));
        // Pointer at the second address (8): one still to visit.
        let mut second = lsrr;
        second[2] = 8;
        assert!(source_route_unexpired(&second, 12));
        // Pointer past the last address (12 > 11): expired.
        let mut done = lsrr;
        done[2] = 12;
        assert!(!source_route_unexpired(&done, 12));
        // SSRR behind NOPs and a record-route option.
        let ssrr = [NOP, NOP, 7, 7, 4, 0, 0, 0, 0, SSRR, 7, 4, 9, 9, 9, 9];
        assert!(source_route_unexpired(&ssrr, 16));
        // Only other options.
        assert!(!source_route_unexpired(&[NOP, NOP, NOP, EOOL], 4));
        assert!(!source_route_unexpired(&[68, 8, 5, 0, 0, 0, 0, 0], 8), "timestamp");
        // A source route after the end of the list does not count.
        assert!(!source_route_unexpired(&[EOOL, LSRR, 7, 4, 1, 2, 3, 4], 8));
        // Malformed lengths end the walk without reading past `len`.
        assert!(!source_route_unexpired(&[7, 0, LSRR, 7, 4, 1, 2, 3, 4], 9), "zero length");
        assert!(!source_route_unexpired(&[LSRR, 40, 4, 1, 2, 3, 4, 0], 8), "runs off the end");
        assert!(!source_route_unexpired(&lsrr, 2), "cut short by len");
        assert!(!source_route_unexpired(&[], 40));
    }
}
