//! The CMOS real-time clock, read once at boot for the wall clock.
//!
//! Reads wait for "update in progress" to clear and repeat until two
//! consecutive reads agree; BCD and 12-hour formats (status register B)
//! are decoded. The RTC is assumed to hold UTC (QEMU's default `-rtc base=utc`).

use rumpuser_pvh::arch::port::{inb, outb};
use rumpuser_pvh::clockmath::{bcd, unix_seconds};

fn cmos(reg: u8) -> u8 {
    // SAFETY: selects a CMOS register (NMI stays enabled: bit 7 clear) and
    // reads it; reading the time registers has no side effect.
    unsafe {
        outb(0x70, reg);
        inb(0x71)
    }
}

fn updating() -> bool {
    cmos(0x0a) & 0x80 != 0
}

fn raw() -> [u8; 7] {
    let mut spins = 0;
    while updating() && spins < 1_000_000 {
        spins += 1;
        core::hint::spin_loop();
    }
    [
        cmos(0x00),
        cmos(0x02),
        cmos(0x04),
        cmos(0x07),
        cmos(0x08),
        cmos(0x09),
        cmos(0x32),
    ]
}

/// The RTC's time as Unix seconds.
pub fn read_unix_seconds() -> i64 {
    let mut a = raw();
    for _ in 0..8 {
        let b = raw();
        if a == b {
            break;
        }
        a = b;
    }
    let status_b = cmos(0x0b);
    let binary = status_b & 0x04 != 0;
    let h24 = status_b & 0x02 != 0;
    let dec = |v: u8| if binary { v } else { bcd(v) };
    let [sec, min, hour_raw, day, mon, year, century] = a;
    let pm = hour_raw & 0x80 != 0;
    let mut hour = dec(hour_raw & 0x7f) as u32;
    if !h24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let cent = dec(century) as i64;
    let full_year = if (19..=30).contains(&cent) {
        cent * 100 + dec(year) as i64
    } else {
        2000 + dec(year) as i64
    };
    unix_seconds(
        full_year,
        dec(mon) as u32,
        dec(day) as u32,
        hour,
        dec(min) as u32,
        dec(sec) as u32,
    )
}
