//! The 8259A pair, used for PCI INTx lines.
//!
//! The firmware (SeaBIOS) routes every PCI interrupt pin to a legacy IRQ
//! and writes it into the function's Interrupt Line register; the PIC
//! pair delivers it through the LAPIC's LINT0 (ExtINT). This works on
//! both `pc` and `q35` without ACPI or IOAPIC routing tables. IRQs are
//! remapped to vectors [`VECTOR_BASE`]`..+16`, all masked until a driver
//! unmasks its line; lines in use are made level-triggered (ELCR), as PCI
//! requires.

use super::port::{inb, outb};

/// Vector of IRQ 0.
pub const VECTOR_BASE: u8 = 0x20;

const PIC1_CMD: u16 = 0x20;
const PIC1_DATA: u16 = 0x21;
const PIC2_CMD: u16 = 0xa0;
const PIC2_DATA: u16 = 0xa1;
const ELCR1: u16 = 0x4d0;
const ELCR2: u16 = 0x4d1;

/// Remaps both controllers and masks every line (IRQ 2, the cascade, stays open).
pub fn init() {
    // SAFETY: the standard ICW1..ICW4 initialisation sequence of the 8259A
    // pair at its fixed ports; nothing else uses the PIC.
    unsafe {
        outb(PIC1_CMD, 0x11);
        outb(PIC2_CMD, 0x11);
        outb(PIC1_DATA, VECTOR_BASE);
        outb(PIC2_DATA, VECTOR_BASE + 8);
        outb(PIC1_DATA, 4);
        outb(PIC2_DATA, 2);
        outb(PIC1_DATA, 0x01);
        outb(PIC2_DATA, 0x01);
        outb(PIC1_DATA, !(1u8 << 2));
        outb(PIC2_DATA, 0xff);
    }
}

fn mask_port(irq: u8) -> (u16, u8) {
    if irq < 8 {
        (PIC1_DATA, irq)
    } else {
        (PIC2_DATA, irq - 8)
    }
}

/// Masks `irq` (0..16).
pub fn mask(irq: u8) {
    let (port, bit) = mask_port(irq);
    // SAFETY: read-modify-write of the PIC's interrupt mask register.
    unsafe { outb(port, inb(port) | (1 << bit)) };
}

/// Unmasks `irq` (0..16).
pub fn unmask(irq: u8) {
    let (port, bit) = mask_port(irq);
    // SAFETY: read-modify-write of the PIC's interrupt mask register.
    unsafe { outb(port, inb(port) & !(1 << bit)) };
}

/// Makes `irq` level-triggered (PCI INTx) in the ELCR.
pub fn set_level_triggered(irq: u8) {
    if matches!(irq, 0 | 1 | 2 | 8 | 13) || irq >= 16 {
        return; // fixed edge-triggered lines
    }
    let (port, bit) = if irq < 8 {
        (ELCR1, irq)
    } else {
        (ELCR2, irq - 8)
    };
    // SAFETY: read-modify-write of the chipset's edge/level control register.
    unsafe { outb(port, inb(port) | (1 << bit)) };
}

/// End of interrupt for `irq`.
pub fn eoi(irq: u8) {
    // SAFETY: non-specific EOI commands to the controllers that delivered `irq`.
    unsafe {
        if irq >= 8 {
            outb(PIC2_CMD, 0x20);
        }
        outb(PIC1_CMD, 0x20);
    }
}

/// Whether an IRQ 7/15 is spurious (not in service); a spurious IRQ 15
/// still needs an EOI on the master (done here).
pub fn is_spurious(irq: u8) -> bool {
    let (cmd, bit) = match irq {
        7 => (PIC1_CMD, 7),
        15 => (PIC2_CMD, 7),
        _ => return false,
    };
    // SAFETY: OCW3 "read ISR", then read it back from the command port.
    let isr = unsafe {
        outb(cmd, 0x0b);
        inb(cmd)
    };
    if isr & (1 << bit) != 0 {
        return false;
    }
    if irq == 15 {
        // SAFETY: the master saw the cascade interrupt and needs its EOI.
        unsafe { outb(PIC1_CMD, 0x20) };
    }
    true
}
