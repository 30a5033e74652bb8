//! rumpuser-xen: placeholder until its issue is implemented.
#![no_std]
