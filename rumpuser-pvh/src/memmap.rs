//! Turning the PVH memory map into heap regions (pure arithmetic, tested
//! on the host).
//!
//! Usable memory is every RAM entry (type 1) of the map, clipped to page
//! boundaries, minus the first megabyte (BIOS data, option ROMs, the PVH
//! start info) and minus reserved ranges (the image itself, boot modules).

/// One range `[start, end)` of physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    /// Whether the two ranges share a byte.
    pub fn overlaps(&self, o: &Range) -> bool {
        self.start < o.end && o.start < self.end
    }
}

/// `hvm_memmap_table_entry.type` of usable RAM.
pub const E820_RAM: u32 = 1;

const PAGE: u64 = 4096;
const LOW_LIMIT: u64 = 1 << 20;

/// Computes up to `N` usable regions, largest first, from RAM ranges and
/// ranges to exclude. Returns the regions and how many there are.
pub fn usable<const N: usize>(ram: &[Range], exclude: &[Range]) -> ([Range; N], usize) {
    let mut out = [Range::default(); N];
    let mut n = 0;
    // Work list of candidate pieces; exclusions split them.
    let mut work = [Range::default(); 64];
    let mut w = 0;
    for r in ram {
        let start = r.start.max(LOW_LIMIT).next_multiple_of(PAGE);
        let end = r.end & !(PAGE - 1);
        if end > start && w < work.len() {
            work[w] = Range { start, end };
            w += 1;
        }
    }
    for x in exclude {
        let x = Range {
            start: x.start & !(PAGE - 1),
            end: x.end.next_multiple_of(PAGE),
        };
        let mut i = 0;
        while i < w {
            let r = work[i];
            if !r.overlaps(&x) {
                i += 1;
                continue;
            }
            // Remove r, push up to two remainders.
            work[i] = work[w - 1];
            w -= 1;
            for piece in [
                Range {
                    start: r.start,
                    end: x.start.min(r.end),
                },
                Range {
                    start: x.end.max(r.start),
                    end: r.end,
                },
            ] {
                if !piece.is_empty() && w < work.len() {
                    work[w] = piece;
                    w += 1;
                }
            }
        }
    }
    // Largest first.
    work[..w].sort_unstable_by_key(|r| core::cmp::Reverse(r.len()));
    for r in &work[..w] {
        if n < N {
            out[n] = *r;
            n += 1;
        }
    }
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    #[test]
    fn qemu_q35_128m() {
        // What QEMU's PVH start info reports for -m 128M on q35.
        let ram = [r(0, 0x9fc00), r(0x100000, 0x7fe0000)];
        let image = r(0x100000, 0x1a3456);
        let (regs, n) = usable::<4>(&ram, &[image]);
        assert_eq!(n, 1);
        assert_eq!(regs[0], r(0x1a4000, 0x7fe0000));
    }

    #[test]
    fn exclusions_split_and_sort() {
        let ram = [r(0x100000, 0x1000000), r(0x1_0000_0000, 0x1_4000_0000)];
        let ex = [r(0x200000, 0x300000), r(0x800123, 0x800456)];
        let (regs, n) = usable::<8>(&ram, &ex);
        assert_eq!(n, 4);
        assert_eq!(regs[0], r(0x1_0000_0000, 0x1_4000_0000));
        assert_eq!(regs[1], r(0x801000, 0x1000000));
        assert_eq!(regs[2], r(0x300000, 0x800000));
        assert_eq!(regs[3], r(0x100000, 0x200000));
        // Fewer slots than pieces: the largest survive.
        let (regs, n) = usable::<2>(&ram, &ex);
        assert_eq!(n, 2);
        assert_eq!(regs[1], r(0x801000, 0x1000000));
    }

    #[test]
    fn unaligned_and_low_ram_dropped() {
        let ram = [r(0, 0x9f000), r(0x100800, 0x101000), r(0x200001, 0x400fff)];
        let (regs, n) = usable::<4>(&ram, &[]);
        assert_eq!(n, 1);
        assert_eq!(regs[0], r(0x201000, 0x400000));
    }
}
