//! The x86_64 machine layer: everything that touches CPU state or a
//! legacy device directly. `unsafe` in this crate lives here (plus the
//! heap, the page-table walker and the virtio HAL), each block with its
//! own `// SAFETY:` argument.
//!
//! * [`boot`]: PVH note, 32→64-bit trampoline, boot page tables and stack.
//! * [`cpu`]: CPUID, FPU/SSE enable, TSC, interrupt flag, halt.
//! * [`port`]: I/O port access.
//! * [`trap`]: GDT/TSS, IDT, interrupt stubs, exception reports.
//! * [`paging`]: the identity map (UC device memory, RAM above 4 GiB,
//!   unmapped NULL page, stack guard pages).
//! * [`pic`], [`lapic`], [`pit`]: the 8259 pair (device IRQs), the local
//!   APIC (one-shot / TSC-deadline timer), the 8254 (calibration only).

pub mod boot;
pub mod cpu;
pub mod lapic;
pub mod paging;
pub mod pic;
pub mod pit;
pub mod port;
pub mod trap;
